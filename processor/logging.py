"""Log configuration: structlog, JSON for machines, console for people, and redaction.

Logs leave the machine (CloudWatch, terminals, CI), so a person's email address, their photo
bytes and their face embeddings must never reach them, whatever a caller passes. The
:func:`redact_sensitive` processor enforces that on every event, including the rendered
traceback and stdlib log records routed through structlog.

The console shows the service's own lines only. Library warnings are fixed where they start
(``dtype=``, the LoRA loaded only where it has weights, progress bars off); the few whose
cause is in a library we cannot change are dropped by their exact text, all of them listed
in :data:`LIBRARY_NOISE` with the reason.
"""

from __future__ import annotations

import logging
import re
import sys
import warnings
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

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


@dataclass(frozen=True)
class LibraryNoise:
    """A library message with no cause the service can fix, dropped by its exact text.

    ``kind="log"``: a record of the logger named ``source`` whose message (as the library
    wrote it, before %-arguments) is ``message``; ``{name}`` stands for one identifier.
    ``kind="warning"``: a ``category`` warning raised from a module matching ``source``.
    """

    kind: Literal["log", "warning"]
    source: str
    message: str
    reason: str
    category: type[Warning] = Warning

    def pattern(self) -> re.Pattern[str]:
        return re.compile(re.escape(self.message).replace(re.escape("{name}"), r"\w+"))


#: Every message the service drops, and why its cause cannot be fixed here. Nothing else is.
LIBRARY_NOISE: tuple[LibraryNoise, ...] = (
    LibraryNoise(
        "log", "bitsandbytes.backends.cpu.ops",
        "Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure you already "
        "`pip install kernels` and the kernels >= 0.11.1",
        "diffusers imports bitsandbytes whenever it is installed (it is, for 8-bit Adam on GPUs), and on "
        "a CPU with AVX512-BF16 bitsandbytes then fetches a kernel from the Hugging Face Hub through the "
        "`kernels` package. Installing `kernels` would make every worker start download code from the "
        "Hub; the service never runs 4-bit layers on a CPU, so the fallback it announces is never used."),
    LibraryNoise(
        "log", "transformers.utils.import_utils",
        "`{name}ImageProcessor` requires torchvision (not installed); falling back to `{name}ImageProcessorPil` "
        "for backward compatibility. Install torchvision to use the default backend, or import "
        "`{name}ImageProcessorPil` directly to silence this warning.",
        "diffusers' pipeline modules import CLIPImageProcessor and SiglipImageProcessor by name (the service "
        "never uses them: SDXL has no safety checker). PyPI's torchvision wheels are CUDA builds, which fail "
        "against the CPU torch build CI and the demo run ('operator torchvision::nms does not exist'), and "
        "the PIL fallback is what the service wants anyway."),
    LibraryNoise(
        "warning", r"diffusers\.schedulers\.",
        "__array__ implementation doesn't accept a copy keyword, so passing copy=False failed. __array__ must "
        "implement 'dtype' and 'copy' keyword arguments. To learn more, see the migration guide "
        "https://numpy.org/devdocs/numpy_2_0_migration_guide.html#adapting-to-changes-in-the-copy-keyword",
        "diffusers' schedulers call np.array() on a torch tensor in set_timesteps, and torch's "
        "Tensor.__array__ takes no copy argument (a torch bug); the arrays are right either way.",
        DeprecationWarning),
    LibraryNoise(
        "warning", r"torch\.jit\._script",
        "`torch.jit.script_method` is deprecated. Please switch to `torch.compile` or `torch.export`.",
        "torch's own torch.utils.mkldnn still uses it, and is imported with torch._inductor.",
        DeprecationWarning),
)


class _DropNoise(logging.Filter):
    def __init__(self, noise: LibraryNoise) -> None:
        super().__init__()
        self.noise = noise
        self.regex = noise.pattern()

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and self.regex.fullmatch(record.msg))


def drop_library_noise() -> None:
    """Install the filters of :data:`LIBRARY_NOISE` (idempotent; before the libraries load)."""
    for noise in LIBRARY_NOISE:
        if noise.kind == "log":
            logger = logging.getLogger(noise.source)
            if not any(isinstance(f, _DropNoise) and f.noise == noise for f in logger.filters):
                logger.addFilter(_DropNoise(noise))
        else:
            warnings.filterwarnings("ignore", message=re.escape(noise.message), category=noise.category,
                                    module=noise.source)


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
    drop_library_noise()

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
