"""The embedded local AWS stack: moto server in-process, resources, and an SMTP sink.

Used by ``headshots demo`` and the tests. The moto server speaks real HTTP on 127.0.0.1 and
a free port, so the worker talks to it exactly as it talks to AWS (``endpoint_url``), and a
child worker process needs nothing but the environment from :func:`settings_env`.

Three gaps of moto are papered over here rather than in the service: moto checks S3 write
preconditions and then writes without a lock, so conditional requests are serialised by a
small WSGI middleware (real S3 is atomic); ``/moto-api/data.json`` breaks after multipart
uploads, so sent SES mail is read from the in-process backend; and a rotation (moving
AWSCURRENT with UpdateSecretVersionStage) leaves moto's GetSecretValue without a stage
answering the old value, where AWS answers the new current one (:func:`_current_follows_rotation`).

The front door runs here too (moto's Lambda needs Docker): its own HTTP server in front of
the Lambda's handler (:mod:`processor.devkit.frontdoor_server`), with its own IAM user's
keys, the link key in Secrets Manager and a DynamoDB rate-limit table, as in production.
moto's blanket CORS (every origin allowed everywhere) is switched off, so a browser meets
the input bucket's own CORS rule: the front door's origin only, as Terraform sets it.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import json
import os
import re
import secrets
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import structlog
from botocore.config import Config

from processor.aws.clients import client_kwargs
from processor.settings import Settings

log = structlog.get_logger(__name__)

ACCOUNT_ID = "123456789012"  # moto's default account
_TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


#: botocore standard mode retries 500/503 and throttling with jittered backoff.
OPERATOR_RETRIES: dict[str, Any] = {"total_max_attempts": 5, "mode": "standard"}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def settings_env(settings: Settings) -> dict[str, str]:
    """``HEADSHOTS_*`` variables reproducing ``settings`` in another process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (list, tuple)):  # pydantic-settings reads sequences as JSON
            text = json.dumps(list(value))
        else:
            text = str(value)
        env[f"HEADSHOTS_{name.upper()}"] = text
    return env


def _slug(text: str, limit: int = 60) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "message"


class _SerialisedConditionalWrites:
    """WSGI middleware: one conditional (If-Match / If-None-Match) request at a time."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        conditional = environ.get("HTTP_IF_MATCH") or environ.get("HTTP_IF_NONE_MATCH")
        if conditional and environ.get("REQUEST_METHOD") in ("PUT", "POST", "DELETE"):
            with self.lock:
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


class _ConsistentKeys:
    """WSGI middleware: a read of a key never overlaps a write of the same key.

    Real S3 is strongly consistent: a GET sees the old object or the new one. moto disposes an
    overwritten object's buffer while a GET of it may still be streaming, and the reader gets an
    empty body (a checksum mismatch). Requests on one key are serialised (striped locks, the
    answer read whole inside the lock); different keys run in parallel as before."""

    def __init__(self, app: Callable[..., Any], stripes: int = 256) -> None:
        self.app = app
        self.locks = [threading.Lock() for _ in range(stripes)]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD", "PUT", "DELETE") or path.count("/") < 2 \
                or environ.get("QUERY_STRING", "").startswith(("list-type", "uploads", "delete")):
            return self.app(environ, start_response)
        with self.locks[hash(path) % len(self.locks)]:
            return list(self.app(environ, start_response))


class _BucketPostCors:
    """WSGI middleware: a browser's form POST to a bucket gets the bucket's CORS answer.

    Real S3 adds ``Access-Control-Allow-Origin`` to a POST upload's response when the bucket's
    CORS rules allow that origin and method; moto answers OPTIONS by the rules but forgets the
    POST itself, so a browser would see every upload fail.
    """

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    def _allowed(self, bucket: str, origin: str) -> bool:
        from moto.s3.models import s3_backends
        from moto.s3.utils import cors_matches_origin

        try:
            rules = s3_backends[ACCOUNT_ID]["aws"].get_bucket(bucket).cors
        except Exception:  # noqa: BLE001 - no such bucket: no CORS answer
            return False
        return any(cors_matches_origin(origin, r.allowed_origins or []) and "POST" in (r.allowed_methods or [])
                   for r in rules)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        origin = environ.get("HTTP_ORIGIN")
        bucket = environ.get("PATH_INFO", "").strip("/")
        if environ.get("REQUEST_METHOD") != "POST" or not origin or not bucket or "/" in bucket \
                or environ.get("QUERY_STRING"):
            return self.app(environ, start_response)

        def respond(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if self._allowed(bucket, origin) and not any(k.lower() == "access-control-allow-origin" for k, _ in headers):
                headers = [*headers, ("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
            return start_response(status, headers, exc_info)
        return self.app(environ, respond)


def _current_follows_rotation() -> None:
    """After UpdateSecretVersionStage moves AWSCURRENT, a GetSecretValue without a stage answers
    the new current version, as AWS does (moto kept answering the old one). Idempotent."""
    from moto.secretsmanager.models import SecretsManagerBackend

    original = SecretsManagerBackend.update_secret_version_stage
    if getattr(original, "_follows_rotation", False):
        return

    def update_secret_version_stage(self: Any, secret_id: str, version_stage: str, remove_from_version_id: str,
                                    move_to_version_id: str) -> tuple[str, str]:
        out = original(self, secret_id, version_stage, remove_from_version_id, move_to_version_id)
        if version_stage == "AWSCURRENT" and move_to_version_id:
            self.secrets[secret_id].set_default_version_id(move_to_version_id)
        return out

    update_secret_version_stage._follows_rotation = True  # type: ignore[attr-defined]
    SecretsManagerBackend.update_secret_version_stage = update_secret_version_stage  # type: ignore[method-assign]


class _MotoServer:
    """moto's WSGI app on a werkzeug threaded server in a daemon thread."""

    def __init__(self, host: str) -> None:
        from moto.moto_server import werkzeug_app
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        # S3 answers CORS by each bucket's own rules (as real S3 does), not moto's allow-all.
        werkzeug_app.DISABLE_GLOBAL_CORS = True
        _current_follows_rotation()

        class QuietHandler(MotoRequestHandler):  # type: ignore[misc,valid-type]
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass  # one line per request drowns the worker's own logs

        app = _BucketPostCors(_ConsistentKeys(_SerialisedConditionalWrites(
            DomainDispatcherApplication(create_backend_app))))
        self.server = make_server(host, 0, app, threaded=True, request_handler=QuietHandler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, name="moto-server", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class _OutboxHandler:
    """aiosmtpd handler writing each message to ``<outbox>/<n>-<subject-slug>.eml``."""

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or envelope.content
        subject = email.message_from_bytes(raw, policy=email.policy.default).get("Subject", "")
        with self._lock:
            n = next(self._counter)
        path = self.outbox / f"{n:04d}-{_slug(str(subject))}.eml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(raw)
        tmp.replace(path)
        log.info("smtp_sink_wrote", file=path.name, size=len(raw))
        return "250 Message accepted for delivery"


@dataclass(frozen=True)
class SentEmail:
    """One message SES accepted (read from moto's in-process backend)."""

    message_id: str
    source: str
    destinations: tuple[str, ...]
    raw: str

    def parsed(self) -> email.message.EmailMessage:
        return email.message_from_string(self.raw, policy=email.policy.default)  # type: ignore[return-value]


@dataclass(frozen=True)
class DlqMessage:
    message_id: str
    body: str
    receive_count: int


class LocalStack:
    """moto server + buckets/queues/notification/SES sender + SMTP sink, as a context manager.

    ``LocalStack(settings)`` owns a new server; :meth:`attach` makes a handle on a stack that
    already runs (by ``settings.aws_endpoint_url``) without starting anything.
    """

    def __init__(self, settings: Settings | None = None, outbox: Path | None = None,
                 host: str = "127.0.0.1", smtp: bool = True, frontdoor: bool = True,
                 frontdoor_port: int = 0) -> None:
        self._base = settings or Settings(email_backend="smtp")
        self.host = host
        self._outbox = outbox
        self._smtp_enabled = smtp
        self._frontdoor_enabled = frontdoor
        self._frontdoor_port = frontdoor_port
        self._frontdoor: Any = None
        self._frontdoor_keys: dict[str, str] = {}
        self._ratelimit_table: str | None = None
        self._server: _MotoServer | None = None
        self._smtp: Any = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._owned = True
        self.settings: Settings = self._base
        self.credentials: dict[str, str] = dict(_TEST_CREDENTIALS)

    # --- lifecycle -------------------------------------------------------------------
    @classmethod
    def attach(cls, settings: Settings, credentials: dict[str, str] | None = None) -> LocalStack:
        """A handle on a running stack (e.g. in a child worker process); starts nothing.

        ``credentials`` (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, optionally
        ``AWS_SESSION_TOKEN``): whose rights this handle uses, for a stack that enforces IAM.
        """
        if not settings.aws_endpoint_url:
            raise ValueError("attach needs settings.aws_endpoint_url")
        stack = cls(settings)
        stack._owned = False
        if credentials:
            stack.credentials = dict(credentials)
        for key, value in _TEST_CREDENTIALS.items():
            os.environ.setdefault(key, value)
        return stack

    def start(self) -> LocalStack:
        for key, value in _TEST_CREDENTIALS.items():
            os.environ.setdefault(key, value)
        self._server = _MotoServer(self.host)
        endpoint = f"http://{self.host}:{self._server.port}"
        updates: dict[str, Any] = {"aws_endpoint_url": endpoint}
        if self._smtp_enabled:
            if self._outbox is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="headshots-outbox-")
                self._outbox = Path(self._tmp.name)
            self._outbox.mkdir(parents=True, exist_ok=True)
            self._start_smtp()
            updates.update(smtp_host=self.host, smtp_port=self._smtp.port)
        base = Settings(**{**self._base.model_dump(), **updates})
        if self._frontdoor_enabled:
            self._start_frontdoor(base)
        self.settings = self.provision(settings=base)
        log.info("local_stack_started", endpoint=endpoint,
                 smtp_port=self._smtp.port if self._smtp else None)
        return self

    def _start_smtp(self) -> None:
        from aiosmtpd.controller import Controller

        assert self._outbox is not None
        controller = Controller(_OutboxHandler(self._outbox), hostname=self.host, port=free_port(self.host))
        controller.start()
        self._smtp = controller

    def _start_frontdoor(self, base: Settings) -> None:
        """The front door's server, its own IAM user and keys, and the rate-limit table."""
        from processor.devkit.frontdoor_server import FrontDoorServer

        stack_id = uuid.uuid4().hex[:8]
        iam = self.client("iam", base)
        user = f"headshots-frontdoor-{stack_id}"
        iam.create_user(UserName=user)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        self._frontdoor_keys = {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"],
                                "UserName": user}
        table = f"headshots-ratelimit-{stack_id}"
        ddb = self.client("dynamodb", base)
        ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
        ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={"Enabled": True,
                                                                          "AttributeName": "expires_at"})
        self._ratelimit_table = table
        self._frontdoor = FrontDoorServer(self.host, self._frontdoor_port)
        log.info("frontdoor_started", url=self._frontdoor.origin)

    def stop(self) -> None:
        if self._frontdoor is not None:
            self._frontdoor.stop()
            self._frontdoor = None
        if self._smtp is not None:
            self._smtp.stop()
            self._smtp = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> LocalStack:
        return self.start() if self._owned else self

    def __exit__(self, *exc: object) -> None:
        if self._owned:
            self.stop()

    async def __aenter__(self) -> LocalStack:
        import asyncio

        return await asyncio.to_thread(self.__enter__)

    async def __aexit__(self, *exc: object) -> None:
        import asyncio

        await asyncio.to_thread(self.__exit__)

    # --- properties ------------------------------------------------------------------
    @property
    def endpoint_url(self) -> str:
        assert self.settings.aws_endpoint_url
        return self.settings.aws_endpoint_url

    @property
    def outbox(self) -> Path:
        if self._outbox is None:
            raise RuntimeError("this stack has no SMTP sink")
        return self._outbox

    @property
    def frontdoor_origin(self) -> str:
        if self._frontdoor is None:
            raise RuntimeError("this stack runs no front door")
        return str(self._frontdoor.origin)

    @property
    def frontdoor_credentials(self) -> dict[str, str]:
        """The front door's own IAM user and access key (what its signatures carry)."""
        return dict(self._frontdoor_keys)

    def mount_frontdoor(self, settings: Settings, name: str) -> Settings:
        """``settings`` served by a front door at ``/_/<name>``, creating nothing (its key, table
        and CORS exist already, e.g. applied by Terraform); returns them with its URL."""
        if self._frontdoor is None:
            raise RuntimeError("this stack runs no front door")
        url = self._frontdoor.mount(name, settings, self._frontdoor_keys)
        return Settings(**{**settings.model_dump(), "frontdoor_url": url})

    def link_keys(self, settings: Settings | None = None) -> tuple[bytes, ...]:
        """The link-signing key of ``settings`` (tests sign links of their own with it)."""
        s = settings or self.settings
        assert s.link_secret_id
        value = self.client("secretsmanager", s).get_secret_value(SecretId=s.link_secret_id)["SecretString"]
        return (value.encode(),)

    def outbox_messages(self) -> list[Path]:
        """The ``.eml`` files written so far, oldest first."""
        return sorted(self.outbox.glob("*.eml"))

    def settings_env(self, settings: Settings | None = None) -> dict[str, str]:
        """Environment for a worker process pointed at this stack (HEADSHOTS_* + dummy creds)."""
        env = settings_env(settings or self.settings)
        env.update(self.credentials)
        env["AWS_DEFAULT_REGION"] = (settings or self.settings).aws_region
        return env

    def client(self, service: str, settings: Settings | None = None) -> Any:
        """A blocking boto3 client on this stack (setup and test inspection).

        Unlike the service's own clients (tenacity retries around each call), this operator
        client lets botocore retry. S3 documents 500/503 as retryable, and moto's threaded
        server under load answered one status poll with a 500 (CI, two workers); a poll must
        ride that out rather than fail the test.
        """
        kwargs = client_kwargs(settings or self.settings, service)
        kwargs["config"] = kwargs["config"].merge(Config(retries=OPERATOR_RETRIES))
        kwargs.update(aws_access_key_id=self.credentials["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=self.credentials["AWS_SECRET_ACCESS_KEY"],
                      aws_session_token=self.credentials.get("AWS_SESSION_TOKEN"))
        return boto3.client(service, **kwargs)

    # --- resources -------------------------------------------------------------------
    def provision(self, name: str | None = None, settings: Settings | None = None,
                  **overrides: Any) -> Settings:
        """Create a full resource set and return Settings pointing at it.

        With ``name``: fresh ``<name>-input``/``<name>-output`` buckets and ``<name>-jobs``
        (+ ``-dlq``) queues, so a test does not see another test's objects or messages.
        Idempotent for existing resources.
        """
        base = settings or self.settings
        values = {**base.model_dump(), **overrides}
        if name is not None:
            values.update(input_bucket=f"{name}-input", output_bucket=f"{name}-output")
        queue_name = f"{name}-jobs" if name else "headshots-jobs"
        probe = Settings(**{**values, "queue_url": "", "dlq_url": ""})
        sqs = self.client("sqs", probe)
        s3 = self.client("s3", probe)
        ses = self.client("ses", probe)

        dlq_url = sqs.create_queue(QueueName=f"{queue_name}-dlq",
                                   Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        queue_url = sqs.create_queue(QueueName=queue_name, Attributes={
            "VisibilityTimeout": str(probe.visibility_timeout_s),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                         "maxReceiveCount": str(probe.max_receive_count)}),
        })["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

        for bucket in (probe.input_bucket, probe.output_bucket):
            try:
                s3.create_bucket(Bucket=bucket)
            except s3.exceptions.BucketAlreadyOwnedByYou:
                pass
        input_arn = f"arn:aws:s3:::{probe.input_bucket}"
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage", "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": input_arn}},
            }],
        })})
        s3.put_bucket_notification_configuration(Bucket=probe.input_bucket, NotificationConfiguration={
            "QueueConfigurations": [{
                "Id": "manifest-arrived", "QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "uploads/"},
                                                   {"Name": "suffix", "Value": "/manifest.json"}]}},
            }],
        })
        self._drain_test_events(sqs, queue_url)
        ses.verify_email_identity(EmailAddress=probe.email_sender)
        final = Settings(**{**values, "queue_url": queue_url, "dlq_url": dlq_url})
        if self._frontdoor is not None:
            return self.frontdoor_for(final, name, overrides.get("link_secret_id"))
        return final

    def frontdoor_for(self, settings: Settings, name: str | None = None, link_secret_id: str | None = None) -> Settings:
        """``settings`` plus a front door of its own: a link key, the input bucket's CORS rule
        and a mount at ``/_/<name>`` (``None``: at ``/``). Also for buckets made elsewhere
        (e.g. applied by Terraform to this stack).

        A named set gets its own key, so its links, tokens and rate-limit counters are its own.
        """
        if self._frontdoor is None:
            raise RuntimeError("this stack runs no front door")
        sm = self.client("secretsmanager", settings)
        s3 = self.client("s3", settings)
        secret = link_secret_id or (f"{name}-link-key" if name else settings.link_secret_id or "headshots-link-key")
        try:
            sm.create_secret(Name=secret, SecretString=secrets.token_urlsafe(48),
                             Description="HMAC key of the emailed links (local stack)")
        except sm.exceptions.ResourceExistsException:
            pass  # idempotent, like every other resource here
        s3.put_bucket_cors(Bucket=settings.input_bucket, CORSConfiguration={"CORSRules": [{
            "AllowedOrigins": [self._frontdoor.origin], "AllowedMethods": ["POST"], "AllowedHeaders": ["*"],
            "MaxAgeSeconds": 3000}]})
        values = {"link_secret_id": secret, "frontdoor_ratelimit_table": settings.frontdoor_ratelimit_table
                  or self._ratelimit_table}
        mounted = Settings(**{**settings.model_dump(), **values})
        values["frontdoor_url"] = self._frontdoor.mount(name or "", mounted, self._frontdoor_keys)
        return Settings(**{**settings.model_dump(), **values})

    @staticmethod
    def _drain_test_events(sqs: Any, queue_url: str) -> None:
        """S3 sends ``s3:TestEvent`` when notifications are set; start each queue empty."""
        resp = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        for msg in resp.get("Messages", []):
            if '"s3:TestEvent"' in msg.get("Body", ""):
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=msg["ReceiptHandle"])
            else:
                sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=msg["ReceiptHandle"],
                                              VisibilityTimeout=0)

    # --- inspection ------------------------------------------------------------------
    def ses_sent_messages(self) -> list[SentEmail]:
        """Every message SES accepted, from moto's in-process backend (owning process only)."""
        if not self._owned:
            raise RuntimeError("sent SES mail is only readable in the process running the stack")
        from moto.ses.models import ses_backends

        backend = ses_backends[ACCOUNT_ID][self.settings.aws_region]
        return [SentEmail(m.id, m.source, tuple(m.destinations), m.raw_data)
                for m in list(backend.sent_messages) if hasattr(m, "raw_data")]

    def dlq_messages(self, settings: Settings | None = None) -> list[DlqMessage]:
        """The dead-letter queue's messages, left in place (made visible again after reading)."""
        s = settings or self.settings
        sqs = self.client("sqs", s)
        seen: dict[str, DlqMessage] = {}
        handles: list[str] = []
        while True:
            resp = sqs.receive_message(QueueUrl=s.dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                       VisibilityTimeout=30,
                                       MessageSystemAttributeNames=["ApproximateReceiveCount"])
            batch = resp.get("Messages", [])
            if not batch:
                break
            for m in batch:
                handles.append(m["ReceiptHandle"])
                seen[m["MessageId"]] = DlqMessage(m["MessageId"], m["Body"],
                                                  int(m["Attributes"]["ApproximateReceiveCount"]))
        for handle in handles:
            sqs.change_message_visibility(QueueUrl=s.dlq_url, ReceiptHandle=handle, VisibilityTimeout=0)
        return list(seen.values())
