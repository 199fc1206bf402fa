"""Shared by the benchmarks: replace one ``## name`` section of bench/RESULTS.md."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(section: str, results: Path = RESULTS) -> None:
    """Replace (or append) the section whose first line, ``## name``, opens ``section``;
    every other section is left untouched."""
    heading = section.split("\n", 1)[0]
    if not heading.startswith("## "):
        raise ValueError("a section starts with its '## name' heading")
    text = results.read_text() if results.exists() else "# Benchmark results\n"
    begin = text.find("\n" + heading + "\n")
    if begin == -1:
        text = text.rstrip("\n") + "\n\n" + section.strip("\n") + "\n"
    else:
        begin += 1
        nxt = text.find("\n## ", begin + len(heading))
        end = len(text) if nxt == -1 else nxt + 1
        text = text[:begin] + section.strip("\n") + "\n" + ("\n" if nxt != -1 else "") + text[end:]
    results.write_text(text.rstrip("\n") + "\n")
