"""A rejected job's photo names leave status.json at its end and live beside its results."""

from __future__ import annotations

import json
from typing import Any

from processor.job.photo_names import PhotoNames, anonymous_photos, photo_names, photo_names_key
from processor.job.state import JobState, JobStatus
from tests.fixtures.jobs import HOSTILE_PHOTO_NAMES

DUPLICATE = ("This is the same shot as {}. Replace it with a different one: another day, outfit, angle or "
             "background.")


def _running(names: tuple[str, ...]) -> dict[str, Any]:
    """A validation record as the running job writes it: each photo by name, the last a duplicate
    of the first (the gate quotes the other photo's name in its message)."""
    photos: list[dict[str, Any]] = [
        {"file": n, "ok": False, "reason": "unreadable", "message": "We could not open this file as a photo.",
         "box": [1, 2, 3, 4], "identity_distance": 0.7} for n in names[:-1]]
    photos.append({"file": names[-1], "ok": False, "reason": "duplicate", "duplicate_of": names[0],
                   "message": DUPLICATE.format(names[0]), "sharpness": 12.0})
    return {"accepted": False, "usable": 0, "required": 10, "problem": "We need at least 10 good photos.",
            "photos": photos, "accepted_files": list(names)}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_an_ended_rejected_jobs_status_names_no_photo_and_its_names_record_holds_every_one() -> None:
    running = _running(HOSTILE_PHOTO_NAMES)
    ended = JobStatus.new("j", 1.0).transition(JobState.VALIDATING, 1.0).end(JobState.REJECTED, 2.0,
                                                                             validation=running)
    kept = json.loads(ended.to_json())
    for name in HOSTILE_PHOTO_NAMES:
        assert not any(name in s for s in _strings(kept)), name
    photos = kept["validation"]["photos"]
    assert [p["photo"] for p in photos] == list(range(1, len(HOSTILE_PHOTO_NAMES) + 1))
    assert photos[-1]["message"] == DUPLICATE.format("photo 1")  # the other photo, by its number
    assert "accepted_files" not in kept["validation"] and "box" not in json.dumps(kept)

    names = PhotoNames.model_validate_json(photo_names(running).to_json())
    assert [(p.photo, p.file) for p in names.photos] == list(enumerate(HOSTILE_PHOTO_NAMES, start=1))
    assert names.by_number()[len(HOSTILE_PHOTO_NAMES)].message == DUPLICATE.format(HOSTILE_PHOTO_NAMES[0])
    assert photo_names_key("job-1") == "results/job-1/photos.json"  # under the results' lifecycle rule


def test_a_message_that_may_still_quote_a_name_is_dropped_not_kept() -> None:
    """A duplicate named "a" cannot be found in its message for sure ("same", "another", ...):
    the message goes, never the name with it; so does a name that is also a word of a message."""
    running = {"photos": [
        {"file": "a", "ok": True, "reason": None, "message": "Good photo."},
        {"file": "b.jpg", "ok": False, "reason": "duplicate", "duplicate_of": "a", "message": DUPLICATE.format("a")},
        {"file": "Good", "ok": True, "reason": None, "message": "Good photo."}]}
    assert anonymous_photos(running) == [
        {"photo": 1, "ok": True, "reason": None, "message": None},
        {"photo": 2, "ok": False, "reason": "duplicate", "message": None},
        {"photo": 3, "ok": True, "reason": None, "message": None}]
