"""Write one benchmark's section of ``benchmarks/RESULTS.md``.

Each benchmark script owns a section between two HTML comments, so rerunning
one script replaces its own numbers and leaves the others' in place.
"""

from __future__ import annotations

from pathlib import Path

HEADER = (
    "# Benchmark results\n\n"
    "Written by the scripts in `benchmarks/`; each section says how it was run,\n"
    "on which machine and with which versions. Rerun a script to refresh its part.\n"
)


def write_section(path: str | Path, name: str, text: str) -> None:
    """Put ``text`` between the markers of section ``name`` in ``path``."""
    path = Path(path)
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    block = f"{begin}\n{text.strip()}\n{end}\n"
    old = path.read_text(encoding="utf-8") if path.exists() else HEADER
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        new = head + block + ("\n" + tail if tail else "")
    else:
        new = old.rstrip("\n") + "\n\n" + block
    path.write_text(new, encoding="utf-8")
