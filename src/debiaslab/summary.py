"""``python -m debiaslab.summary``: the pipeline's headline numbers as plain-text tables.

`dvc metrics show` lists every number of every file in one wide table; this prints the tables of
the results report (:mod:`debiaslab.report`, which the `report` stage writes to reports/summary.md
and reports/index.html) for the terminal, from the same JSON files under metrics/.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from .errors import DebiaslabError
from .report import Section, collect


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def render_text(sections: list[Section]) -> str:
    """Every table of the report's sections, with its title and note; no plots."""
    blocks = []
    for s in sections:
        if not s.tables:
            continue
        parts = [f"== {s.title} =="]
        for t in s.tables:
            parts.append(f"{t.title}\n{table(t.header, t.rows)}")
            if t.note:
                parts[-1] += "\n" + textwrap.fill(t.note, 100)
        blocks.append("\n\n".join(parts))
    return "\n\n\n".join(blocks)


def main(argv: list[str] | None = None) -> None:
    root = Path((argv or sys.argv[1:] or ["metrics"])[0])
    try:
        text = render_text(collect(root))
    except DebiaslabError as err:
        print(f"error: summary: {err}", file=sys.stderr)
        sys.exit(2)
    print(text or f"no metrics under {root}/ yet: run `dvc repro`")


if __name__ == "__main__":
    main()
