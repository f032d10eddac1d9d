"""Fuzz: queue bodies, S3 keys, job ids and photo names, before any of them touches a path.

Invariants: ``plan_message`` never raises on any body and only ever hands the worker job ids
that match the job-id rule; a bad body or key is dead-lettered with a reason, never run;
every photo name, however hostile, gets a local file name that is safe on the filesystem and
distinct within the job; the person's own names are what the plan reports.
"""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path
from urllib.parse import quote_plus

import pytest
from hypothesis import example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from processor.dispatch import MessageAction, plan_message
from processor.job.uploads import MAX_LOCAL_NAME_BYTES, local_name, plan_photos
from processor.manifest import (
    JOB_ID_PATTERN,
    InvalidJobId,
    Manifest,
    ManifestError,
    has_control_characters,
    job_id_from_key,
    validate_job_id,
)
from tests.fixtures.hypothesis_profiles import examples

pytestmark = pytest.mark.fuzz

BUCKET = "headshots-input"
CONTROL = "".join(map(chr, [*range(0, 32), 127, 0x85, 0x2028, 0x2029]))
any_text = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(CONTROL + "./\\%+ "), max_size=80)
# Names that stress byte lengths and normal forms: long runs of 2-4 byte characters.
wide_text = st.builds(lambda ch, n, ext: ch * n + ext, st.sampled_from(["é", "e\u0301", "李", "😀", "a"]),
                      st.integers(1, 300), st.sampled_from(["", ".jpg", ".JPEG", ".p\u0301ng", "."]))
names = any_text | wide_text | st.sampled_from(["..", ".", "", "manifest.json", "a/b.jpg", "../x.jpg"])

EXPECT_BAD_BODY = "dead_letter with a reason (the DLQ), never run"
EXPECT_BAD_KEY = "dead_letter 'bad job id: ...'"
EXPECT_GOOD_KEY = "run with exactly that job id"


def _event(keys: list[str], bucket: str = BUCKET) -> str:
    return json.dumps({"Records": [{"s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(k), "size": 1}}}
                                   for k in keys]})


def _valid_job_id(job_id: str) -> bool:
    return bool(JOB_ID_PATTERN.fullmatch(job_id)) and job_id not in (".", "..")


# --- raw queue bodies ----------------------------------------------------------------------
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                                                     max_size=4), max_leaves=20)
record_like = st.fixed_dictionaries({}, optional={
    "s3": st.fixed_dictionaries({}, optional={
        "bucket": st.fixed_dictionaries({}, optional={"name": st.sampled_from([BUCKET, "other"]) | json_values}),
        "object": st.fixed_dictionaries({}, optional={"key": names | json_values, "size": json_values,
                                                      "eTag": json_values})}) | json_values})
bodies = (st.text(max_size=200) | json_values.map(json.dumps)
          | st.lists(record_like, max_size=3).map(lambda rs: json.dumps({"Records": rs})))


@hsettings(max_examples=examples(300))
@given(bodies)
@example("")
@example('{"Records": [{"s3": {"bucket": {"name": "headshots-input"}, "object": {"key": "uploads/..%2F/manifest.json"}}}]}')
@example('{"Event": "s3:TestEvent"}')
def test_any_queue_body_gets_a_plan_and_only_valid_job_ids_run(body: str) -> None:
    plan = plan_message(body, BUCKET)
    assert plan.action in MessageAction
    if plan.action is MessageAction.RUN:
        assert plan.job_ids and all(_valid_job_id(j) for j in plan.job_ids)
    else:
        assert plan.reason, EXPECT_BAD_BODY


@hsettings(max_examples=examples(300))
@given(names)
@example("../../etc")
@example("a\r\nb")
@example("é")
@example("x" * 129)
def test_any_job_folder_name_runs_only_when_it_is_a_valid_job_id(job: str) -> None:
    plan = plan_message(_event([f"uploads/{job}/manifest.json"]), BUCKET)
    if _valid_job_id(job):
        assert plan.action is MessageAction.RUN and plan.job_ids == (job,), EXPECT_GOOD_KEY
    else:
        assert plan.action is MessageAction.DEAD_LETTER and plan.reason.startswith("bad job id"), EXPECT_BAD_KEY


@hsettings(max_examples=examples(200))
@given(any_text)
def test_job_id_rules_never_let_a_path_through(text: str) -> None:
    for fn in (validate_job_id, lambda t: job_id_from_key(f"uploads/{t}/manifest.json"), job_id_from_key):
        try:
            got = fn(text)
        except InvalidJobId as exc:
            assert str(exc)
            continue
        assert _valid_job_id(got) and "/" not in got and ".." != got


# --- photo names -> local names ---------------------------------------------------------------
@hsettings(max_examples=examples(400))
@given(names)
@example("é" * 150 + ".jpg")  # the 304-byte name
@example("\ud800.jpg")  # a lone surrogate: not encodable as a file name
@example("e\u0301" * 100 + ".jpg")
def test_every_photo_name_gets_a_safe_local_name(name: str) -> None:
    local = local_name(name)
    encoded = local.encode("utf-8")  # never raises: no surrogates
    assert 0 < len(encoded) <= MAX_LOCAL_NAME_BYTES
    assert "/" not in local and "\\" not in local and "\0" not in local
    assert local not in (".", "..") and not local.startswith(".") and not has_control_characters(local)
    assert local == local_name(name)
    assert os.path.basename(local) == local and Path(local).name == local


@hsettings(max_examples=examples(200))
@given(names, names)
def test_distinct_photo_names_never_share_a_local_file(a: str, b: str) -> None:
    if a != b:
        assert local_name(a) != local_name(b)


@hsettings(max_examples=examples(200))
@given(st.dictionaries(names, st.integers(0, 60 * 2**20), max_size=8),
       st.none() | st.lists(names, max_size=8, unique=True))
@example({"e\u0301.jpg": 10}, ["\u00e9.jpg"])  # the manifest in NFC, the upload from a Mac in NFD
def test_the_plan_reports_each_photo_by_the_persons_name_with_a_specific_reason(
        available: dict[str, int], listed: list[str] | None) -> None:
    plan = plan_photos(available, listed)
    locals_ = [p.local for p in plan]
    assert len(set(locals_)) == len(locals_)  # one local file per photo
    if listed:
        assert [p.name for p in plan] == listed[:200]
    for p in plan:
        assert len(p.local.encode()) <= MAX_LOCAL_NAME_BYTES
        if p.key_name is None:
            assert p.refused is not None and p.refused[0] == "missing"
        elif p.size is not None and p.size > 25 * 2**20:
            assert p.refused is not None and p.refused[0] == "too_large"
        else:
            assert p.refused is None
            assert unicodedata.normalize("NFC", p.key_name) == unicodedata.normalize("NFC", p.name)


@hsettings(max_examples=examples(200))
@given(st.lists(names, min_size=1, max_size=5))
def test_photo_names_the_manifest_accepts_keep_their_own_name_when_short(photos: list[str]) -> None:
    try:
        m = Manifest.model_validate({"version": 1, "email": "a@b.co", "photos": photos})
    except (ValueError, ManifestError):
        return
    for name in m.photos or []:
        local = local_name(name)
        if len(name.encode("utf-8", "surrogatepass")) <= MAX_LOCAL_NAME_BYTES and not name.startswith("."):
            assert local == name
