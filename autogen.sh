#!/bin/sh
# Regenerates the autotools build files (configure, Makefile.in) from configure.ac and Makefile.am.
set -e
cd "$(dirname "$0")"
mkdir -p build-aux m4
autoreconf --force --install --verbose >/dev/null
echo "autogen.sh: now run ./configure && make"
