"""Shared by the benchmarks: replace one ``## name`` section of bench/RESULTS.md."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section headed ``## name``; other sections are untouched."""
    heading = f"## {name}\n"
    section = heading + body.strip("\n") + "\n"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    begin = text.find(heading)
    if begin == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        nxt = text.find("\n## ", begin + len(heading))
        end = len(text) if nxt == -1 else nxt + 1
        text = text[:begin] + section + ("\n" if nxt != -1 else "") + text[end:]
    RESULTS.write_text(text.rstrip("\n") + "\n")
