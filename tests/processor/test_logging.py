"""Log redaction and configuration: no email address, photo bytes or embedding gets out."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import numpy as np
import pytest
import structlog

from processor.logging import configure_logging, redact_sensitive, scrub
from processor.settings import Settings


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    structlog.reset_defaults()


def test_processor_masks_email_addresses_anywhere_in_values() -> None:
    event = {"event": "sent to ada.l+x@example.co.uk", "to": "bob@b.io",
             "nested": {"list": ["ok", "c@d.ef"], "tuple": ("e@f.gh",)}, "n": 3}
    out = redact_sensitive(None, "info", dict(event))
    text = json.dumps(out)
    assert "@" not in text
    assert out["event"] == "sent to <email>" and out["n"] == 3
    assert out["nested"]["list"] == ["ok", "<email>"]


def test_processor_replaces_bytes_with_their_length() -> None:
    out = redact_sensitive(None, "info", {"event": "x", "photo": b"\xff\xd8" * 10,
                                          "buf": bytearray(b"abc")})
    assert out["photo"] == "<20 bytes>" and out["buf"] == "<3 bytes>"


def test_processor_replaces_embedding_like_float_vectors() -> None:
    emb = np.random.default_rng(0).normal(size=128).astype(np.float32)
    out = redact_sensitive(None, "info", {"event": "x", "emb": emb, "as_list": emb.tolist(),
                                          "batch": np.zeros((2, 64)), "small": [0.1, 0.2, 0.3],
                                          "ids": list(range(100))})
    assert out["emb"] == "<embedding 128>" and out["as_list"] == "<embedding 128>"
    assert out["batch"] == "<embedding 2x64>"
    assert out["small"] == [0.1, 0.2, 0.3]       # a few numbers (scores, timings) stay
    assert out["ids"] == list(range(100))        # ints are not embeddings


def test_scrub_masks_emails_in_exceptions_and_arbitrary_objects() -> None:
    class Thing:
        def __str__(self) -> str:
            return "Thing(owner: ada@example.com)"

    assert scrub(ValueError("bad address ada@example.com")) == "ValueError: bad address <email>"
    assert scrub(Thing()) == "Thing(owner: <email>)"


def test_json_logs_are_redacted_end_to_end(capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    configure_logging(Settings(log_format="json", log_level="INFO"))
    log = structlog.get_logger("test")
    log.info("email_sent", to="ada@example.com", body=b"secret", embedding=[0.5] * 128, job_id="j1")
    log.debug("hidden", x=1)
    try:
        raise RuntimeError("smtp refused ada@example.com")
    except RuntimeError:
        log.exception("send_failed")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["event"] for line in lines] == ["email_sent", "send_failed"]
    assert lines[0]["to"] == "<email>" and lines[0]["body"] == "<6 bytes>"
    assert lines[0]["embedding"] == "<embedding 128>" and lines[0]["job_id"] == "j1"
    assert lines[0]["level"] == "info" and "timestamp" in lines[0]
    assert "RuntimeError" in lines[1]["exception"] and "ada@example.com" not in lines[1]["exception"]


def test_stdlib_log_records_are_redacted_too(capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    configure_logging("json", "INFO")
    logging.getLogger("some.library").warning("delivery to %s failed", "ada@example.com")
    [line] = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert line["event"] == "delivery to <email> failed" and line["logger"] == "some.library"


def test_console_format_is_human_readable(capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    configure_logging("console", "DEBUG")
    structlog.get_logger().debug("stage_done", stage="train", to="ada@example.com")
    err = capsys.readouterr().err
    assert "stage_done" in err and "stage=train" in err and "ada@example.com" not in err
    with pytest.raises(json.JSONDecodeError):
        json.loads(err.splitlines()[0])


def test_bad_format_or_level_is_refused(restore_logging: None) -> None:
    with pytest.raises(ValueError):
        configure_logging("xml")
    with pytest.raises(ValueError):
        configure_logging("json", "LOUD")


# --- library noise: dropped by exact text only, listed once -----------------------------------
KERNELS = ("Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure you already "
           "`pip install kernels` and the kernels >= 0.11.1")
TORCHVISION = ("`{0}ImageProcessor` requires torchvision (not installed); falling back to `{0}ImageProcessorPil` for "
               "backward compatibility. Install torchvision to use the default backend, or import "
               "`{0}ImageProcessorPil` directly to silence this warning.")
NUMPY_COPY = ("__array__ implementation doesn't accept a copy keyword, so passing copy=False failed. __array__ must "
              "implement 'dtype' and 'copy' keyword arguments. To learn more, see the migration guide "
              "https://numpy.org/devdocs/numpy_2_0_migration_guide.html#adapting-to-changes-in-the-copy-keyword")


def test_the_library_messages_the_service_cannot_fix_are_dropped_by_exact_text_and_nothing_else(
        restore_logging: None) -> None:
    class Seen(logging.Handler):  # on the loggers themselves: transformers' own stops propagation
        def __init__(self) -> None:
            super().__init__(logging.DEBUG)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(f"{record.name}: {record.getMessage()}")

    configure_logging("json", "INFO")
    configure_logging("json", "INFO")  # twice: one filter per message still
    bnb = logging.getLogger("bitsandbytes.backends.cpu.ops")
    transformers = logging.getLogger("transformers.utils.import_utils")
    other = logging.getLogger("some.library")
    assert len(bnb.filters) == 1 and len(transformers.filters) == 1
    seen = Seen()
    for logger in (bnb, transformers, other):
        logger.addHandler(seen)
    try:
        bnb.warning(KERNELS, ImportError("No module named 'kernels'"))
        transformers.warning(TORCHVISION.format("CLIP"))
        transformers.warning(TORCHVISION.format("Siglip"))
        bnb.warning("Failed to load CPU gemm_4bit_forward from kernels-community")  # not the exact text
        transformers.warning(TORCHVISION.format("CLIP") + " Also something new.")
        other.warning(TORCHVISION.format("CLIP"))  # another logger
    finally:
        for logger in (bnb, transformers, other):
            logger.removeHandler(seen)
    assert seen.messages == [
        "bitsandbytes.backends.cpu.ops: Failed to load CPU gemm_4bit_forward from kernels-community",
        f"transformers.utils.import_utils: {TORCHVISION.format('CLIP')} Also something new.",
        f"some.library: {TORCHVISION.format('CLIP')}"]


def test_the_warnings_dropped_are_the_exact_ones_from_the_named_modules(restore_logging: None) -> None:
    import warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        configure_logging("json", "INFO")
        for module in ("diffusers.schedulers.scheduling_euler_discrete", "myapp.arrays"):
            warnings.warn_explicit(NUMPY_COPY, DeprecationWarning, "x.py", 1, module=module)
        warnings.warn_explicit(NUMPY_COPY[:40], DeprecationWarning, "x.py", 1,
                               module="diffusers.schedulers.scheduling_euler_discrete")
    assert [(w.filename, str(w.message)[:20]) for w in seen] == [("x.py", NUMPY_COPY[:20])] * 2
