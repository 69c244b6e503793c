"""Markdown tables: the one writer behind every table the project prints or saves."""
from __future__ import annotations

from collections.abc import Iterable, Sequence


def markdown_table(rows: Iterable[Sequence[object]], columns: Sequence[str], align: str | None = None) -> str:
    """A GitHub-flavoured Markdown table, one line per row, no trailing newline.

    Args:
        rows: one sequence of ``len(columns)`` cells per row, each written as ``str(cell)``: format
            numbers before (units, digits and "–" for a missing value are the caller's choice). An
            empty cell is written as one space (``| |``).
        columns: the header texts.
        align: one letter per column, ``l`` (left) or ``r`` (right); by default the first column
            left and the others right: a name, then numbers.

    Raises:
        ValueError: ``align`` or a row does not have one entry per column.
    """
    align = align if align is not None else "l" + "r" * (len(columns) - 1)
    if len(align) != len(columns) or set(align) - {"l", "r"}:
        raise ValueError(f"align must be one of 'l'/'r' per column ({len(columns)}), got {align!r}")
    lines = [_line(columns), "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"]
    for k, row in enumerate(rows):
        cells = [str(cell) for cell in row]
        if len(cells) != len(columns):
            raise ValueError(f"row {k} has {len(cells)} cells for {len(columns)} columns: {cells}")
        lines.append(_line(cells))
    return "\n".join(lines)


def _line(cells: Sequence[str]) -> str:
    return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|"
