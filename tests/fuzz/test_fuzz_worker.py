"""Fuzz at the worker level: hostile and odd uploads through the whole door, one real worker.

One worker child process serves every case on the embedded stack, as in production. Each case
uploads what a client could (a manifest, photos under any names, any bytes), or puts any body
on the queue, and each generator states the reason code the person must get. The invariants,
for every case:

- the worker is alive afterwards;
- the job reaches exactly one terminal state within a deadline;
- at most one email, and only to the manifest's address;
- the person is told the specific reason (the photo's code in status.json, the email's kind);
- nothing is left under ``uploads/<job>/`` or in the worker's work folder once the job ended;
- the worker's peak memory (VmHWM, reset before the case) grows by less than 100 MB.

Most cases have 4 good photos beside the fuzzed one, under the 10 a job needs, so they end at
the gate. The delivery cases have 10 good photos under hostile names and in every format a
phone or browser sends (HEIC included): they pass the gate and run through prepare, training,
generation and delivery on the tiny model, with the same invariants.

CI runs a few dozen derandomized examples (``HYPOTHESIS_PROFILE=ci``); the long profile many
more with random seeds. The in-process suites next to this one fuzz the same layers with many
more examples each.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from processor.devkit.local_stack import LocalStack
from processor.devkit.profiles import production_timing, tiny_model_settings
from processor.links import address_proof
from processor.settings import Settings
from tests.fixtures.hypothesis_profiles import examples
from tests.integration.harness import (
    Fleet,
    WorkerProcess,
    job_status,
    keys,
    send_raw,
    wait_for,
)

pytestmark = [pytest.mark.fuzz, pytest.mark.slow]

ADDRESS = "fuzz.person@example.com"
MEMORY_BOUND = 100 * 2**20
TERMINAL = {"delivered", "rejected", "failed"}
GOOD = 4  # good photos beside the fuzzed one: always under the 10 a job needs, so it ends at the gate
BAD_MANIFEST = "bad_manifest"


@dataclass
class Case:
    """One upload: photos (name -> bytes) and a manifest (bytes), and what the person must hear."""

    label: str
    manifest: bytes
    photos: dict[str, bytes] = field(default_factory=dict)
    target: str | None = None      # the photo whose verdict is checked (None: no one photo)
    expect: frozenset[str | None] = frozenset()  # codes the target may get, or {bad_manifest}
    address: str | None = ADDRESS  # where the one email may go (None: nobody can be told)
    delivered: bool = False  # 10 good photos: the job must reach delivery

    @property
    def manifest_case(self) -> bool:
        return BAD_MANIFEST in self.expect


@dataclass
class FuzzWorld:
    stack: LocalStack
    settings: Settings
    worker: WorkerProcess
    work_dir: Path
    good: list[tuple[str, bytes]]
    delivery_warm: bool = False  # a first delivery loads the model: no case is charged for it

    def vm_hwm(self) -> int:
        text = Path(f"/proc/{self.worker.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+)", text).group(1)) * 1024  # type: ignore[union-attr]

    def reset_hwm(self) -> None:
        Path(f"/proc/{self.worker.pid}/clear_refs").write_text("5")


@pytest.fixture(scope="module")
def world(local_stack: LocalStack, job_photos: Path, tiny_model_dir: Path, deepface_home: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzWorld]:
    root = tmp_path_factory.mktemp("fuzz-worker")
    settings = local_stack.provision(f"fuzz{uuid.uuid4().hex[:6]}", **{
        **tiny_model_settings(tiny_model_dir, root / "cache", num_images=2), **production_timing(),
        "email_backend": "smtp", "deepface_home": deepface_home, "log_format": "json",
        "missing_photo_grace_s": 1.0, "dlq_sweep_interval_s": 1.0})
    fleet = Fleet(local_stack, settings, root / "fleet", [])
    worker = fleet.start("w")
    good = [(p.name, p.read_bytes()) for p in sorted(job_photos.glob("*.jpg"))]
    w = FuzzWorld(local_stack, settings, worker, fleet.work_dir("w"), good)
    # Warm up: the first jobs load the face models, which a case must not be charged for.
    for _ in range(2):
        _run_case(w, Case("warm-up", _manifest(), dict(good[:GOOD]), None, frozenset()), charge_memory=False)
    try:
        yield w
    finally:
        fleet.stop_all()


def _manifest(**fields: Any) -> bytes:
    return json.dumps({"version": 1, "email": ADDRESS, "name": "Ada", **fields}).encode()


def _proven(w: FuzzWorld, manifest: bytes, job_id: str) -> bytes:
    """The manifest as the front door writes it once the address is proven: with its proof (the
    worker emails nobody else). A manifest too broken to carry one stays as it is."""
    try:
        doc = json.loads(manifest) if len(manifest) <= 64 * 1024 else None
    except ValueError:
        return manifest
    if not isinstance(doc, dict) or not isinstance(doc.get("email"), str):
        return manifest
    return json.dumps({**doc, "proof": address_proof(w.stack.link_keys(w.settings)[0], job_id, doc["email"])}).encode()


def _emails(stack: LocalStack, job_id: str) -> list[email.message.EmailMessage]:
    out = []
    for path in stack.outbox_messages():
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if msg.get("X-Headshots-Job") == job_id:
            out.append(msg)
    return out  # type: ignore[return-value]


def _verdicts(w: FuzzWorld, job_id: str, status: dict[str, Any]) -> dict[str, str | None]:
    """A rejected job's reason code per photo name: status.json names no photo, so its numbered
    verdicts are joined to the names kept beside the results (results/<job>/photos.json)."""
    s3 = w.stack.client("s3", w.settings)
    kept = json.loads(s3.get_object(Bucket=w.settings.output_bucket, Key=f"results/{job_id}/photos.json")["Body"].read())
    names = {p["photo"]: p["file"] for p in kept["photos"]}
    photos = (status.get("validation") or {}).get("photos", [])
    assert not any(n in json.dumps(status, ensure_ascii=False) for n in names.values()), status
    return {names[p["photo"]]: p.get("reason") for p in photos}


def _run_case(w: FuzzWorld, case: Case, charge_memory: bool = True) -> dict[str, Any]:
    """Upload the case as a client would, then check every invariant; returns the status."""
    job_id = f"fz-{uuid.uuid4().hex[:16]}"
    s3 = w.stack.client("s3", w.settings)
    w.reset_hwm()
    before = w.vm_hwm()
    for name, body in case.photos.items():
        s3.put_object(Bucket=w.settings.input_bucket, Key=f"uploads/{job_id}/{name}", Body=body)
    s3.put_object(Bucket=w.settings.input_bucket, Key=f"uploads/{job_id}/manifest.json",
                  Body=_proven(w, case.manifest, job_id))
    status = wait_for(lambda: (job_status(w.stack, w.settings, job_id) or {}).get("state") in TERMINAL
                      and job_status(w.stack, w.settings, job_id), 300 if case.delivered else 120,
                      what=f"{case.label}: a terminal state",
                      on_timeout=w.worker.logs)
    time.sleep(0.3)  # the job's last deletes land right after the terminal write
    grown = w.vm_hwm() - before
    assert w.worker.alive, f"{case.label}: the worker died\n{w.worker.logs()[-3000:]}"
    mails = _emails(w.stack, job_id)
    assert len(mails) <= 1, f"{case.label}: {len(mails)} emails"
    if mails:
        assert case.address is not None and [a.addr_spec for a in mails[0]["To"].addresses] == [case.address]
    if case.manifest_case:  # the person fixes the upload
        assert status["state"] == "failed" and "manifest" in (status.get("error") or ""), status
        assert status["email"] == ("sent" if case.address else "none"), (case.label, status["email"])
        if mails:
            assert "manifest.json needs a fix" in str(mails[0]["Subject"])
    elif case.delivered:  # 10 good photos under any name and format: delivered, told so
        reasons = [p.get("reason") for p in (status.get("validation") or {}).get("photos", [])]
        assert len(reasons) == len(case.photos) and all(r is None for r in reasons), (case.label, reasons)
        assert status["state"] == "delivered" and len(mails) == 1, (case.label, status["state"], status.get("error"))
        assert keys(w.stack, w.settings.output_bucket, f"results/{job_id}/", w.settings), case.label
    elif case.target is None:  # good photos, too few: rejected, told so
        assert status["state"] == "rejected" and len(mails) == 1, (case.label, status["state"])
    else:
        verdicts = _verdicts(w, job_id, status)
        assert case.target in verdicts, (case.label, sorted(verdicts))
        assert verdicts[case.target] in case.expect, (case.label, verdicts[case.target], case.expect)
        assert status["state"] == "rejected" and len(mails) == 1
    wait_for(lambda: not keys(w.stack, w.settings.input_bucket, f"uploads/{job_id}/", w.settings), 10,
             what=f"{case.label}: uploads/{job_id}/ emptied")
    assert not (w.work_dir / job_id).exists(), f"{case.label}: the local job folder stayed"
    assert grown < MEMORY_BOUND or not charge_memory, f"{case.label}: the worker's peak memory grew by {grown / 2**20:.0f} MB"
    return status


# --- generators: each says what the person must be told ------------------------------------
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                           max_leaves=6)
control_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x9f), min_size=1, max_size=12)


@st.composite
def manifest_cases(draw: st.DrawFn) -> Case:
    """A broken manifest: EXPECT bad_manifest (email only to a readable address)."""
    kind = draw(st.sampled_from(["not_json", "wrong_types", "control_name", "long_name", "extra_field",
                                 "huge", "bad_version", "bad_email"]))
    if kind == "not_json":
        return Case(kind, draw(st.binary(min_size=1, max_size=300)).replace(b"{", b"["), address=None,
                    expect=frozenset({BAD_MANIFEST}))
    if kind == "wrong_types":
        bad_value = {"name": st.one_of(st.integers(), st.booleans(), st.lists(st.text(), max_size=2),
                                       st.dictionaries(st.text(max_size=4), st.integers(), max_size=2)),
                     "photos": st.one_of(st.integers(), st.text(), st.just([]),
                                         st.lists(st.integers(), min_size=1, max_size=2))}
        field_name = draw(st.sampled_from(sorted(bad_value)))
        return Case(kind, _manifest(**{field_name: draw(bad_value[field_name])}), expect=frozenset({BAD_MANIFEST}))
    if kind == "control_name":
        name = draw(st.text(max_size=6)) + draw(control_text.filter(lambda s: any(ord(c) < 32 or 127 <= ord(c) < 160 for c in s)))
        return Case(kind, _manifest(name=name), expect=frozenset({BAD_MANIFEST}))
    if kind == "long_name":
        return Case(kind, _manifest(name="A" * draw(st.integers(101, 5000))), expect=frozenset({BAD_MANIFEST}))
    if kind == "extra_field":
        return Case(kind, _manifest(**{draw(st.sampled_from(["cc", "bcc", "phots", "Email"])): "x"}),
                    expect=frozenset({BAD_MANIFEST}))
    if kind == "huge":  # bigger than the 64 KB the worker will read: refused unread
        return Case(kind, _manifest(name="B" * draw(st.integers(70_000, 2_000_000))), address=None,
                    expect=frozenset({BAD_MANIFEST}))
    if kind == "bad_version":
        return Case(kind, _manifest(version=draw(st.sampled_from([2, "1", True, 1.0, None]))),
                    expect=frozenset({BAD_MANIFEST}))
    bad = draw(st.sampled_from(["nobody", "a@b", "a b@c.de", "@x.y", "x@"]))
    return Case(kind, json.dumps({"version": 1, "email": bad}).encode(), address=None,
                expect=frozenset({BAD_MANIFEST}))


def _truncated(good: bytes, fraction: float) -> bytes:
    return good[: max(16, int(len(good) * fraction))]


def _png_bomb(width: int, height: int) -> bytes:
    """A PNG header claiming huge dimensions, with almost no data behind it."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def _gif_animation() -> bytes:
    import io

    from PIL import Image

    frames = [Image.new("RGB", (64, 64), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


hostile_names = st.one_of(
    st.just("é" * 150 + ".jpg"),                                     # 304 bytes: too long for a disk name
    st.just("e\u0301te\u0301.jpg"),                                  # decomposed, as a Mac sends it
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"),
            min_size=1, max_size=40).map(lambda s: s + ".jpg"),
    st.sampled_from(["a..b.jpg", "..jpg", ".hidden.jpg", " spaced name .jpg", "😀.JPG", "photo.jpeg.exe"]),
)


#: What a good photo under any name may be told: a verdict on what it shows, never "missing".
RENAMED_REASONS = frozenset({None, "no_face", "multiple_faces", "face_too_small", "blurry", "too_dark",
                             "too_bright", "duplicate", "different_person", "too_small"})
PHOTO_KINDS = ("truncated", "junk", "animated", "bomb", "huge_png", "missing", "renamed", "listed")


@st.composite
def photo_cases(draw: st.DrawFn, good: list[tuple[str, bytes]], kind: str) -> Case:
    """A photo the person uploaded (or listed): EXPECT its reason code."""
    others = dict(good[:GOOD])
    target_bytes = good[GOOD + draw(st.integers(0, len(good) - GOOD - 1))][1]
    name = draw(hostile_names) if kind in ("renamed", "missing", "listed") else f"{kind}.jpg"
    if kind == "missing":  # listed, never uploaded
        listed = [*others, name]
        return Case(kind, _manifest(photos=listed), others, name, frozenset({"missing"}))
    if kind == "renamed":  # a good photo under a hostile name: judged on what it shows
        return Case(kind, _manifest(), {**others, name: target_bytes}, name, RENAMED_REASONS)
    if kind == "listed":  # the same, named in the manifest's photo list: found under that exact name
        return Case(kind, _manifest(photos=[*others, name]), {**others, name: target_bytes}, name, RENAMED_REASONS)
    body = {
        "truncated": lambda: _truncated(target_bytes, draw(st.floats(0.02, 0.7))),
        "junk": lambda: draw(st.binary(min_size=1, max_size=2000)),
        "animated": _gif_animation,
        "bomb": lambda: _png_bomb(draw(st.integers(60_000, 200_000)), draw(st.integers(60_000, 200_000))),
        "huge_png": lambda: _png_bomb(draw(st.integers(3_000, 7_000)), draw(st.integers(3_000, 7_000))),
    }[kind]()
    expect = {"truncated": {"unreadable"}, "junk": {"unreadable", "unsupported_format"},
              "animated": {"unsupported_format"}, "bomb": {"too_large"},
              "huge_png": {"too_large", "unreadable"}}[kind]
    return Case(kind, _manifest(), {**others, name: body}, name, frozenset(expect))


DELIVERY_FORMATS = ("HEIF", "PNG", "WEBP", "JPEG")


def _reencoded(body: bytes, fmt: str) -> bytes:
    """The same photo as a phone or browser may send it: HEIC (stored sideways, rotation in the
    container and EXIF, as an iPhone writes it), PNG, WebP or JPEG."""
    import io

    from PIL import Image

    from processor.devkit.samples import write_heic

    img = Image.open(io.BytesIO(body)).convert("RGB")
    if fmt == "HEIF":
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            return write_heic(img, Path(tmp) / "p.heic").read_bytes()
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 90} if fmt != "PNG" else {}))
    return buf.getvalue()


@st.composite
def delivery_cases(draw: st.DrawFn, good: list[tuple[str, bytes]]) -> Case:
    """10 good photos, three of them renamed with hostile names and re-encoded (the first as
    HEIC): EXPECT every one judged good and the job delivered."""
    photos = dict(good[:10])
    for i, (old, body) in enumerate(good[:3]):
        fmt = "HEIF" if i == 0 else draw(st.sampled_from(DELIVERY_FORMATS))
        name = draw(hostile_names.filter(lambda n: not n.startswith(".") and n not in photos))
        del photos[old]
        photos[name] = _reencoded(body, fmt)
    return Case("delivered", _manifest(), photos, None, frozenset({None}), delivered=True)


# --- the tests ----------------------------------------------------------------------------------
FUZZ = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                  HealthCheck.data_too_large])


@hsettings(max_examples=examples(10), **FUZZ)
@given(case=manifest_cases())
@example(case=Case("crlf_name", _manifest(name="Ada\r\nBcc: victim@evil.example"), expect=frozenset({BAD_MANIFEST})))
@example(case=Case("300mb_manifest_shape", _manifest(name="C" * 3_000_000), address=None,
                   expect=frozenset({BAD_MANIFEST})))
def test_any_manifest_ends_the_job_once_with_the_reason_and_leaves_nothing(world: FuzzWorld, case: Case) -> None:
    _run_case(world, case)


@pytest.mark.parametrize("kind", PHOTO_KINDS)
@hsettings(max_examples=examples(2), **FUZZ)
@given(data=st.data())
def test_any_photo_or_name_is_judged_by_name_with_its_reason_and_leaves_nothing(world: FuzzWorld, kind: str,
                                                                              data: st.DataObject) -> None:
    _run_case(world, data.draw(photo_cases(world.good, kind)))


def test_a_listed_photo_whose_name_has_edge_spaces_is_found_and_judged_not_missing(world: FuzzWorld) -> None:
    # Found in the long mode (a "missing" case named " spaced name .jpg" was reported without
    # its leading space): the manifest stripped listed names, so an uploaded, listed photo
    # with an edge space would have been called missing.
    others = dict(world.good[:GOOD])
    name = " spaced name .jpg"
    _run_case(world, Case("listed_spaced", _manifest(photos=[*others, name]),
                          {**others, name: world.good[GOOD][1]}, name, RENAMED_REASONS))


@hsettings(max_examples=examples(1), **FUZZ)
@given(data=st.data())
def test_ten_good_photos_under_any_name_and_format_are_delivered_and_leave_nothing(world: FuzzWorld,
                                                                                  data: st.DataObject) -> None:
    if not world.delivery_warm:  # training and generation load the model once per worker
        _run_case(world, Case("warm-up-delivery", _manifest(), dict(world.good[:10]), None, frozenset({None}),
                              delivered=True), charge_memory=False)
        world.delivery_warm = True
    _run_case(world, data.draw(delivery_cases(world.good)))


@hsettings(max_examples=examples(4), **FUZZ)
@given(body=st.one_of(st.text(max_size=200), json_values.map(json.dumps)))
def test_any_queue_body_leaves_the_worker_serving(world: FuzzWorld, body: str) -> None:
    send_raw(world.stack, world.settings, body if body.strip() else "{}")
    _run_case(world, Case("after-body", _manifest(name=None), dict(world.good[:GOOD]), None, frozenset()))
