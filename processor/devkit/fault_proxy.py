"""A fault-injecting HTTP proxy in front of the local AWS endpoint (moto server mode).

Why a proxy and not botocore hooks: the fault suite runs workers as real child processes, and
a proxy reaches them through the one setting they already have (``HEADSHOTS_AWS_ENDPOINT_URL``)
without any test code inside the worker. It is as rude as AWS (:class:`Fault`): per service and
operation (S3 ``PutObject``, SQS ``ReceiveMessage``/``DeleteMessage``/``ChangeMessageVisibility``/
``SendMessage``, SES ``SendRawEmail``), a chosen share or the first N calls are throttled
(``503 SlowDown``, ``ThrottlingException``, ``Throttling``, as AWS words them), answered with a
5xx, reset before the request reaches the service, **reset after it landed** (the caller sees
an error for a request that took effect), answered late, or held until the caller's timeout;
:meth:`FaultProxy.outage` makes a whole service fail for a while. With ``audit=True`` it judges
every job write against the job's lease (:mod:`processor.devkit.write_audit`). Everything else
is forwarded untouched.
"""

from __future__ import annotations

import http.client
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from processor.devkit.iam_ledger import Call, access_denied_body, calls_from_request, missing_key_status
from processor.devkit.write_audit import WriteAudit

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([a-z0-9-]+)/aws4_request")
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"}

_S3_SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>FAULT</RequestId></Error>"
)
_SES_THROTTLING = (
    b'<ErrorResponse xmlns="http://ses.amazonaws.com/doc/2010-12-01/"><Error><Type>Sender</Type>'
    b"<Code>Throttling</Code><Message>Maximum sending rate exceeded.</Message></Error>"
    b"<RequestId>FAULT</RequestId></ErrorResponse>"
)
_SESV2_THROTTLING = b'{"message": "Maximum sending rate exceeded."}'
_S3_INTERNAL = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message><RequestId>FAULT</RequestId></Error>"
)
_SES_INTERNAL = (
    b'<ErrorResponse xmlns="http://ses.amazonaws.com/doc/2010-12-01/"><Error><Type>Receiver</Type>'
    b"<Code>InternalFailure</Code><Message>Internal failure.</Message></Error>"
    b"<RequestId>FAULT</RequestId></ErrorResponse>"
)

FaultKind = Literal["throttle", "server_error", "reset_before", "reset_after", "drop_after", "delay", "hang",
                    "stall"]


@dataclass(frozen=True)
class Request:
    """What a fault's ``match`` sees of a request."""

    service: str
    operation: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Fault:
    """One rude behaviour: on ``service`` (and ``operation``, if given: ``PutObject``,
    ``ReceiveMessage``, ``SendRawEmail``...; and ``match``, if given), the ``first`` N matching
    calls and a ``rate`` share of the rest get ``kind``:

    - ``throttle`` / ``server_error``: AWS's own error answer, the request never reaches it;
    - ``reset_before``: the connection is reset (RST) once the whole request was received,
      without forwarding it: it did not take effect;
    - ``reset_after``: forwarded, then reset instead of the answer: it took effect, the caller
      cannot know;
    - ``drop_after``: forwarded, then closed cleanly without the answer;
    - ``delay``: forwarded, answered ``seconds`` late (a slow request, e.g. a slow claim);
    - ``hang``: forwarded, then held ``seconds`` and reset (a timeout after the request landed);
    - ``stall``: held ``seconds`` before it is forwarded, then reset without forwarding it: a
      request stuck on the way (the fault suite kills its worker meanwhile).

    ``until``: monotonic time after which the fault stops (an outage window).
    """

    service: str
    kind: FaultKind
    operation: str | None = None
    rate: float = 0.0
    first: int = 0
    seconds: float = 0.0
    match: Callable[[Request], bool] | None = None
    until: float | None = None
    seen: int = 0
    fired: int = 0
    fired_at: list[float] = field(default_factory=list)

    def applies(self, req: Request) -> bool:
        if self.until is not None and time.monotonic() > self.until:
            return False
        if req.service != self.service or (self.operation and req.operation != self.operation):
            return False
        return self.match is None or self.match(req)


def operation_of(service: str, method: str, path: str, headers: dict[str, str], body: bytes) -> str:
    """The API operation a request calls: ``PutObject``, ``ReceiveMessage``, ``SendRawEmail``..."""
    if service == "s3":
        found = calls_from_request("s3", method, path, headers, body, "us-east-1", "0")
        return found[0].action.split(":", 1)[1] if found else method
    target = next((v for k, v in headers.items() if k.lower() == "x-amz-target"), "")
    if target:
        return target.rsplit(".", 1)[-1]
    form = parse_qs(body.decode("utf-8", "replace")) if body else {}
    query = parse_qs(urlsplit(path).query)
    return (form.get("Action") or query.get("Action") or [method])[0]


class _QuietServer(ThreadingHTTPServer):
    """A peer that hung up on a reset, a stall or a late answer is the point, not an error."""

    def handle_error(self, request: object, client_address: object) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@dataclass
class FaultCounts:
    """What the proxy did, per signing service (``s3``, ``ses``, ``sqs``)."""

    forwarded: dict[str, int] = field(default_factory=dict)
    injected: dict[str, int] = field(default_factory=dict)


def signing_service(authorization: str | None, query: str) -> str | None:
    """The SigV4 service name of a request (header or presigned query), or None if unsigned."""
    for text in (authorization or "", query.replace("%2F", "/")):
        m = _SCOPE.search(text) or re.search(r"X-Amz-Credential=[^/&]+/\d{8}/[^/&]+/([a-z0-9-]+)/", text)
        if m:
            return m.group(1)
    return None


class FaultProxy:
    """``with FaultProxy(upstream, rates={"s3": 0.3, "ses": 0.3}) as proxy: proxy.url``.

    ``fail_first={"ses": 1}`` makes the first call of a service fail whatever the dice say, so
    a test of a service called once per job sees at least one fault. ``drop_after_forward=
    {"ses": 1}`` forwards the first call of a service and then closes the connection without
    its answer: the request took effect, the caller cannot know (a timeout after the send).
    """

    def __init__(self, upstream: str, rates: dict[str, float] | None = None, seed: int = 0,
                 signed_only: bool = True, fail_first: dict[str, int] | None = None,
                 drop_after_forward: dict[str, int] | None = None, ledger: bool = False,
                 account: str = "123456789012", faults: Sequence[Fault] = (), audit: bool = False,
                 policy: dict[str, Any] | None = None) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rates = dict(rates or {})
        self.fail_first = dict(fail_first or {})  # the first N calls of a service always fail
        self.drop_after_forward = dict(drop_after_forward or {})
        self.dropped: dict[str, int] = {}
        self.faults: list[Fault] = list(faults)
        #: With ``audit=True``: stale and unfenced job writes (processor.devkit.write_audit).
        self.audit: WriteAudit | None = WriteAudit(self._upstream) if audit else None
        #: With ``ledger=True``: every forwarded call as IAM sees it (processor.devkit.iam_ledger).
        self.calls: list[Call] | None = [] if ledger else None
        #: The caller's identity policy: S3 reads of missing keys get AWS's answer for it (403
        #: without s3:ListBucket, :func:`~processor.devkit.iam_ledger.missing_key_status`), not moto's 404.
        self.policy = policy
        self.account = account
        self.signed_only = signed_only
        self.counts = FaultCounts()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy",
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add(self, fault: Fault) -> Fault:
        """Arm another fault now (e.g. once a job reached a given stage)."""
        with self._lock:
            self.faults.append(fault)
        return fault

    def outage(self, service: str, seconds: float, kind: FaultKind = "server_error",
               operation: str | None = None) -> Fault:
        """Every call of ``service`` (or one operation) fails as ``kind`` for ``seconds`` from now."""
        return self.add(Fault(service, kind, operation=operation, rate=1.0, until=time.monotonic() + seconds))

    def _planned(self, req: Request) -> Fault | None:
        """The first armed fault that fires on this request (counts kept per fault)."""
        with self._lock:
            for fault in self.faults:
                if not fault.applies(req):
                    continue
                fault.seen += 1
                if fault.seen <= fault.first or (fault.rate > 0 and self._rng.random() < fault.rate):
                    fault.fired += 1
                    fault.fired_at.append(time.monotonic())
                    self.counts.injected[req.service] = self.counts.injected.get(req.service, 0) + 1
                    return fault
        return None

    def _decide(self, service: str | None) -> bool:
        """True when this request gets a fault instead of an answer."""
        key = service or "unsigned"
        with self._lock:
            rate = self.rates.get(key, 0.0) if (service or not self.signed_only) else 0.0
            seen = self.counts.injected.get(key, 0) + self.counts.forwarded.get(key, 0)
            inject = seen < self.fail_first.get(key, 0) or (rate > 0 and self._rng.random() < rate)
            bucket = self.counts.injected if inject else self.counts.forwarded
            bucket[key] = bucket.get(key, 0) + 1
        return inject

    def _record(self, service: str | None, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        if self.calls is None or service is None:
            return
        region = re.search(r"/\d{8}/([a-z0-9-]+)/", headers.get("Authorization", ""))
        found = calls_from_request(service, method, path, headers, body,
                                   region.group(1) if region else "us-east-1", self.account)
        with self._lock:
            self.calls.extend(found)

    def _denies_missing(self, service: str | None, method: str, path: str) -> bool:
        """True when AWS would answer this read of a missing key 403 (the caller cannot list)."""
        if self.policy is None or service != "s3" or method not in ("GET", "HEAD"):
            return False
        calls = calls_from_request("s3", method, path, {}, b"", "us-east-1", self.account)
        return any(missing_key_status(self.policy, c) == 403 for c in calls)

    def _drop(self, service: str | None) -> bool:
        """True when this (forwarded) request's answer is to be dropped."""
        key = service or "unsigned"
        with self._lock:
            if self.dropped.get(key, 0) >= self.drop_after_forward.get(key, 0):
                return False
            self.dropped[key] = self.dropped.get(key, 0) + 1
            return True

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _reply(self, status: int, headers: dict[str, str], body: bytes,
                       length: str | None = None) -> None:
                # The service's own Date passes through (S3's clock dates a lease's age).
                self.send_response_only(status)
                if not any(k.lower() == "date" for k in headers):
                    self.send_header("Date", self.date_time_string())
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", length or str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _reset(self) -> None:
                """Close with RST (SO_LINGER 0): the peer's next read fails with ECONNRESET."""
                self.close_connection = True
                try:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                except OSError:
                    pass

            def _error(self, service: str, kind: str) -> None:
                """AWS's own words for a throttle or a 5xx, per service and protocol."""
                if kind == "throttle":
                    if service == "sqs":
                        self._reply(400, {"Content-Type": "application/x-amz-json-1.0",
                                          "x-amzn-query-error": "ThrottlingException;Sender"},
                                    b'{"__type": "com.amazonaws.sqs#ThrottlingException", "message": "Rate exceeded"}')
                    else:
                        self._fault(service)
                    return
                if service == "s3":
                    self._reply(500, {"Content-Type": "application/xml"}, _S3_INTERNAL)
                elif service == "ses":
                    self._reply(500, {"Content-Type": "text/xml"}, _SES_INTERNAL)
                else:
                    self._reply(500, {"Content-Type": "application/x-amz-json-1.0"},
                                b'{"__type": "com.amazonaws.sqs#InternalError", "message": "injected"}')

            def _fault(self, service: str) -> None:
                if service == "s3":
                    self._reply(503, {"Content-Type": "application/xml"}, _S3_SLOWDOWN)
                elif self.path.startswith("/v2/"):
                    self._reply(429, {"Content-Type": "application/json",
                                      "x-amzn-ErrorType": "TooManyRequestsException"},
                                _SESV2_THROTTLING)
                elif service == "ses":
                    self._reply(400, {"Content-Type": "text/xml"}, _SES_THROTTLING)
                else:
                    self._reply(503, {"Content-Type": "application/json"},
                                b'{"__type": "ServiceUnavailable", "message": "injected"}')

            def _handle(self) -> None:
                body = self._body()
                service = signing_service(self.headers.get("Authorization"), urlsplit(self.path).query)
                raw_headers = dict(self.headers.items())
                fault = None
                if service is not None and proxy.faults:
                    fault = proxy._planned(Request(service, operation_of(service, self.command, self.path,
                                                                         raw_headers, body),
                                                   self.command, self.path, raw_headers, body))
                if fault is not None and fault.kind in ("throttle", "server_error"):
                    self._error(service or "unsigned", fault.kind)
                    return
                if fault is not None and fault.kind in ("reset_before", "stall"):
                    time.sleep(fault.seconds if fault.kind == "stall" else 0)
                    self._reset()
                    return
                if proxy._decide(service):
                    self._fault(service or "unsigned")
                    return
                drop = proxy._drop(service) or (fault is not None and fault.kind == "drop_after")
                proxy._record(service, self.command, self.path, raw_headers, body)
                audited = proxy.audit.before(self.command, self.path, raw_headers) \
                    if proxy.audit is not None and service == "s3" else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                if body or "Content-Length" in self.headers or "Transfer-Encoding" in self.headers:
                    headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection(*proxy._upstream, timeout=120)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    if proxy.audit is not None:
                        proxy.audit.after(audited, resp.status)
                    if fault is not None and fault.kind in ("reset_after", "hang"):
                        time.sleep(fault.seconds if fault.kind == "hang" else 0)
                        self._reset()  # it took effect; the caller sees a reset instead of the answer
                        return
                    if fault is not None and fault.kind == "delay":
                        time.sleep(fault.seconds)
                    if drop:  # the upstream acted on it; the caller never hears back
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    if resp.status == 404 and proxy._denies_missing(service, self.command, self.path):
                        self._reply(403, {"Content-Type": "application/xml"}, access_denied_body())
                        return
                    out = {k: v for k, v in resp.getheaders()
                           if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"}
                    # HEAD answers carry the object's length with no body: keep it.
                    length = resp.getheader("Content-Length") if self.command == "HEAD" else None
                    self._reply(resp.status, out, data, length)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815

        return Handler
