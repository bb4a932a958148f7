"""Importing tests/lib/spice_client.py, which needs python3-gi with SpiceClientGLib 2.0: Debian's /usr/bin/python3
has them, the interpreter running the tests may not. Without gi the script re-executes itself under
/usr/bin/python3; when that has none either, a test skips (and ends) and a benchmark exits 1, saying what to
install."""
import os
import sys


def import_spice_client(t=None, what="SPICE client"):
    """The spice_client module. T is the test's Tap (None for a benchmark); WHAT names the skipped part."""
    try:
        import spice_client
        return spice_client
    except (ImportError, ValueError) as e:
        if os.path.exists("/usr/bin/python3") and sys.executable != "/usr/bin/python3":
            os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
        why = f"python3-gi with SpiceClientGLib 2.0 is missing ({e}); tools/install-deps"
        if t is None:
            print(f"{os.path.basename(sys.argv[0])}: {why}", file=sys.stderr)
            sys.exit(1)
        t.skip(what, why)
        t.done()
