"""What a job's email says about selection: report mode and shortfalls are stated plainly."""

from __future__ import annotations

from processor.notify import selection_note
from processor.settings import Settings


def test_report_mode_is_stated_in_the_note() -> None:
    note = selection_note({"mode": "report", "requested": 50, "delivered": 50, "shortfall": 0}, Settings())
    assert note is not None and "report mode" in note and note.endswith(".")


def test_a_shortfall_in_enforce_mode_says_how_many_passed() -> None:
    note = selection_note({"mode": "enforce", "requested": 50, "delivered": 44, "shortfall": 6}, Settings())
    assert note is not None and "44 of 50" in note and "report" not in note


def test_a_full_enforced_delivery_needs_no_note() -> None:
    assert selection_note({"mode": "enforce", "requested": 50, "delivered": 50, "shortfall": 0},
                          Settings()) is None
