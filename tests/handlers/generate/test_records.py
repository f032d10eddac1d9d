"""Generation records survive the JSON round trip the runtime's checkpoints rely on."""

from __future__ import annotations

import json
from pathlib import Path

from handlers.generate.records import Attempt, ImageRecord, SelectionResult


def _record() -> ImageRecord:
    history = (Attempt(4, 0, 11, False, "identity", 0.3, 1, 0.5, ((4, 0), (5, 0))),
               Attempt(4, 1, 12, True, None, 0.02, 1, 0.4, ((4, 1),)))
    return ImageRecord(4, "headshot of sks person", 12, 1, "p004-a1.png", True, 0.02, history)


def test_image_record_round_trips_through_json_with_its_history_and_batches() -> None:
    record = _record()
    again = ImageRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record
    assert again.history[0].batch == ((4, 0), (5, 0))


def test_the_face_box_survives_the_checkpoint_round_trip_and_old_records_have_none() -> None:
    from dataclasses import replace

    record = replace(_record(), face_box=(10, 20, 30, 40))
    assert ImageRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    old = {k: v for k, v in _record().to_dict().items() if k != "face_box"}  # a checkpoint from before
    assert ImageRecord.from_dict(old).face_box is None


def test_summary_counts_attempts_rejections_and_shortfall(tmp_path: Path) -> None:
    record = _record()
    result = SelectionResult(tmp_path, (record,), record.history, requested=3, mode="enforce",
                             threshold=0.12, seconds=2.0, generated=2)
    s = result.summary()
    assert (s["delivered"], s["shortfall"], s["attempts"], s["rejected"], s["regenerations"]) == (1, 2, 2, 1, 1)
    assert s["acceptance_rate"] == 0.5 and s["seconds_per_image"] == 1.0
    assert s["rejections_by_reason"] == {"identity": 1}
    assert result.path(record) == tmp_path / "p004-a1.png"
