"""The stale-write audit: every job write seen at the HTTP edge, judged against the job's lease.

Why at the edge: a worker cannot report the writes it should not have made. The fault proxy
(:class:`processor.devkit.fault_proxy.FaultProxy` with ``audit=True``) shows each S3 write of a
job's keys (``jobs/<job>/...``, ``results/<job>/...``) to :meth:`WriteAudit.before` on its way
in, and its answer to :meth:`WriteAudit.after`. Every fenced write carries its writer's lease
epoch (``x-amz-meta-headshots-epoch``, :mod:`processor.aws.storage`); the audit reads the
job's status.json straight from S3 before forwarding the write. A write that then lands (2xx)
is **stale** when the lease had already moved on: a later epoch was claimed, or the job had
ended (only its cleanup deletes may follow). A write that was in flight while the lease moved
is not counted (it is the residual window docs/delivery.md measures). A job write carrying no
epoch is counted as **unfenced**.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

_JOB_KEY = re.compile(r"^/(?P<bucket>[^/]+)/(?P<area>jobs|results)/(?P<job>[A-Za-z0-9._-]{1,128})/(?P<rest>.*)$")
EPOCH_HEADER = "x-amz-meta-headshots-epoch"
_TERMINAL = {"delivered", "rejected", "failed"}


@dataclass(frozen=True)
class AuditedWrite:
    job_id: str
    key: str
    epoch: int | None
    lease_epoch: int | None  # status.json's epoch just before the write went upstream
    state: str | None

    @property
    def stale(self) -> bool:
        if self.state in _TERMINAL and not self.key.endswith("/status.json"):
            return True  # the job had ended: nothing of it may be written any more
        return self.epoch is not None and self.lease_epoch is not None and self.lease_epoch > self.epoch


@dataclass
class WriteAudit:
    """Counts what the proxy forwarded: ``stale`` and ``unfenced`` job writes that landed."""

    upstream: tuple[str, int]
    stale: list[AuditedWrite] = field(default_factory=list)
    unfenced: list[AuditedWrite] = field(default_factory=list)
    landed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _s3: Any = None

    def before(self, method: str, path: str, headers: dict[str, str]) -> AuditedWrite | None:
        """A job write about to go upstream, with the lease as S3 holds it now (None: not one)."""
        if method not in ("PUT", "POST"):
            return None
        parts = urlsplit(path)
        m = _JOB_KEY.match(unquote(parts.path))
        if m is None or "uploadId" in parts.query:
            return None
        lowered = {k.lower(): v for k, v in headers.items()}
        raw = lowered.get(EPOCH_HEADER)
        epoch = int(raw) if raw and raw.isdigit() else None
        lease_epoch, state = self._lease(m["bucket"], m["job"])
        return AuditedWrite(m["job"], f"{m['area']}/{m['job']}/{m['rest']}", epoch, lease_epoch, state)

    def after(self, write: AuditedWrite | None, status: int) -> None:
        if write is None or not 200 <= status < 300:
            return
        with self._lock:
            self.landed += 1
            if write.stale:
                self.stale.append(write)
            elif write.epoch is None:
                self.unfenced.append(write)

    def _lease(self, bucket: str, job_id: str) -> tuple[int | None, str | None]:
        """The job's lease epoch and state as S3 holds them now (a signed GET, as S3 wants)."""
        with self._lock:
            if self._s3 is None:
                import boto3
                from botocore.config import Config

                self._s3 = boto3.client("s3", endpoint_url=f"http://{self.upstream[0]}:{self.upstream[1]}",
                                        region_name="us-east-1",
                                        config=Config(retries={"total_max_attempts": 3, "mode": "standard"},
                                                      s3={"addressing_style": "path"}))
            s3 = self._s3
        try:
            body = s3.get_object(Bucket=bucket, Key=f"jobs/{job_id}/status.json")["Body"].read()
            data = json.loads(body)
            return int(data.get("lease_epoch", 0)), str(data.get("state"))
        except Exception:  # noqa: BLE001 - no status yet (a first claim), or unreadable: not judged
            return None, None
