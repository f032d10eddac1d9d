"""Log configuration: structlog, JSON for machines, console for people, and redaction.

Logs leave the machine (CloudWatch, terminals, CI), so a person's email address, their photo
bytes and their face embeddings must never reach them, whatever a caller passes. The
:func:`redact_sensitive` processor enforces that on every event, including the rendered
traceback and stdlib log records routed through structlog.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from processor.settings import Settings

EMAIL_RE = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
EMAIL_MASK = "<email>"
#: A float sequence at least this long is treated as an embedding (numbers in logs are short).
EMBEDDING_MIN_LEN = 16
_MAX_DEPTH = 6


def _looks_like_embedding(value: Any) -> bool:
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:  # numpy / torch arrays
        kind = getattr(dtype, "kind", None)
        is_float = kind == "f" if kind else "float" in str(dtype)
        size = 1
        for dim in shape:
            size *= int(dim)
        return is_float and size >= EMBEDDING_MIN_LEN
    if isinstance(value, (list, tuple)) and len(value) >= EMBEDDING_MIN_LEN:
        return all(isinstance(v, float) for v in value)
    return False


def _embedding_label(value: Any) -> str:
    shape = getattr(value, "shape", None)
    dims = "x".join(str(int(d)) for d in shape) if shape is not None else str(len(value))
    return f"<embedding {dims}>"


def scrub(value: Any, depth: int = 0) -> Any:
    """``value`` with emails masked, bytes and embeddings replaced by short labels."""
    if isinstance(value, str):
        return EMAIL_RE.sub(EMAIL_MASK, value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if _looks_like_embedding(value):
        return _embedding_label(value)
    if depth >= _MAX_DEPTH:
        return "<nested>"
    if isinstance(value, Mapping):
        return {scrub(k, depth + 1): scrub(v, depth + 1) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(scrub(v, depth + 1) for v in value)
    if isinstance(value, (list, set, frozenset)):
        return [scrub(v, depth + 1) for v in value]
    if isinstance(value, BaseException):
        return EMAIL_RE.sub(EMAIL_MASK, f"{type(value).__name__}: {value}")
    # anything else is rendered by the renderer via str()/repr(): scrub that text now
    return EMAIL_RE.sub(EMAIL_MASK, str(value))


def redact_sensitive(logger: Any, method_name: str,
                     event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: scrub every value of the event (see :func:`scrub`)."""
    for key in list(event_dict):
        if key in ("exc_info", "stack_info") and not isinstance(event_dict[key], str):
            continue  # rendered (and then scrubbed) by format_exc_info further down the chain
        event_dict[key] = scrub(event_dict[key])
    return event_dict


def configure_logging(settings_or_format: Settings | str = "console", level: str | None = None) -> None:
    """Configure structlog and stdlib logging once, for the worker, the CLI and tests.

    ``settings_or_format`` is a Settings (its log_format/log_level) or ``"json"``/``"console"``.
    """
    if isinstance(settings_or_format, Settings):
        fmt, level = settings_or_format.log_format, level or settings_or_format.log_level
    else:
        fmt = settings_or_format
    if fmt not in ("json", "console"):
        raise ValueError(f"log format must be 'json' or 'console', not {fmt!r}")
    numeric = logging.getLevelName((level or "INFO").upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redact_sensitive,
    ]
    renderer: Any = (structlog.processors.JSONRenderer() if fmt == "json"
                     else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    ))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_headshots", False):
            root.removeHandler(old)
    handler._headshots = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(numeric)
    # SDK wire logs can carry request bodies (emails, presigned URLs): keep them out.
    for noisy in ("botocore", "aiobotocore", "boto3", "urllib3", "werkzeug", "mail.log", "filelock"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
