"""Shared by the benchmarks: the deskvm-vs-QEMU result table and its marked section in docs/PERFORMANCE.md."""
import os

from deskvm_harness import SRCDIR

PERFORMANCE_MD = os.path.join(SRCDIR, "docs", "PERFORMANCE.md")


def result_table(marker, summary, rows):
    """The marked block for docs/PERFORMANCE.md: the summary line, then one table row per (label, deskvm, qemu,
    advantage), the values already formatted and advantage a ratio where > 1 favours deskvm."""
    lines = [
        f"<!-- {marker}:begin (written by tests/bench/{marker}.py --write) -->",
        summary,
        "",
        "| metric | deskvm | QEMU 7.2 | deskvm advantage |",
        "|---|---|---|---|",
    ]
    for label, a, b, advantage in rows:
        lines.append(f"| {label} | {a} | {b} | {advantage:.2f}x |")
    lines.append(f"<!-- {marker}:end -->")
    return "\n".join(lines)


def write_section(marker, heading, intro, text):
    """Puts text in place of the marked block in docs/PERFORMANCE.md; without one, appends it under a new heading,
    after the intro paragraph if there is one."""
    path = PERFORMANCE_MD
    doc = open(path).read() if os.path.exists(path) else "# deskvm performance\n"
    b, e = f"<!-- {marker}:begin", f"<!-- {marker}:end -->"
    if b in doc and e in doc:
        doc = doc[:doc.index(b)] + text + doc[doc.index(e) + len(e):]
    else:
        doc = doc.rstrip("\n") + f"\n\n## {heading}\n\n" + (intro + "\n\n" if intro else "") + text + "\n"
    with open(path, "w") as fh:
        fh.write(doc)
    print(f"wrote {path}")
