"""Tables the benchmarks write into docs/benchmarks.md, each between its own pair of HTML-comment markers, so a
figure there is always a script's output. Imported by the scripts beside it (bench/ is their sys.path[0])."""

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_between(markers: tuple[str, str], text: str) -> None:
    """Replace what lies between the markers with text; a missing pair is an error, not a silent no-op."""
    start, end = markers
    docs = DOCS.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(docs):
        raise SystemExit(f"{DOCS} has no {start} ... {end} markers")
    DOCS.write_text(pattern.sub(lambda _: f"{start}\n{text}\n{end}", docs), encoding="utf-8")
