"""The front door's AWS edge (blocking boto3, as a Lambda runs it): S3, DynamoDB, Secrets Manager, SES.

Everything it may touch is exactly its IAM grant (``terraform/modules/frontdoor``): read
``results/`` and ``jobs/<job>/status.json``, list one job's ``uploads/<job>/``, put under
``uploads/`` (the POST policies it signs and the manifest it writes), put under
``feedback/`` and ``clicks/``, read the link key, keep the rate-limit counters, send the
code email as the configured sender. Presigned URLs and POST policies are signed here with
the front door's own credentials (the Lambda role's), never the worker's.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from processor.job.photo_names import PhotoNames, photo_names_key
from processor.job.state import JobStatus
from processor.links import settled_key
from processor.manifest import job_prefix, results_prefix, uploads_prefix
from processor.send_rule import Answer, Reached, SendFailed
from processor.settings import Settings
from processor.smtp import send_smtp

KEY_CACHE_S = 300.0
#: The shortest link key accepted (the HMAC's strength; Terraform checks the same).
MIN_KEY_BYTES = 32


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int | None:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def _missing(exc: ClientError) -> bool:
    """Whether a GET or HEAD of one of the worker's records found nothing: S3's own answer.

    The one place that decides it. The front door's role may read ``results/`` and
    ``status.json`` but may not list the output bucket, and S3 then answers a missing key with
    ``403 AccessDenied``, not 404 (it will not tell a caller who cannot list what exists). So
    403 means "not there (yet)" here. Why not grant ``s3:ListBucket`` instead: listing the
    output bucket would let the public front door enumerate every job id, and a prefix
    condition cannot narrow it to one job. A real permission fault (a broken policy) reads as
    missing too; the IAM call ledger (``tests/frontdoor/test_iam_ledger.py``) is what catches those.
    """
    return _code(exc) in ("NoSuchKey", "404", "NotFound", "AccessDenied", "403") or _status(exc) in (403, 404)


#: Tries of one email (only what certainly did not go out is tried again).
SEND_TRIES = 3
_SES_THROTTLING = ("Throttling", "ThrottlingException", "TooManyRequestsException")


def ses_seen(exc: BaseException) -> SendFailed:
    """What a (blocking botocore) SES call's exception says: how far the request got, SES's answer.

    botocore's blocking client raises ``EndpointConnectionError`` only when no connection was
    made; a reset or timeout after the request went out is another error (``ConnectionClosedError``,
    ``ReadTimeoutError``): nobody can tell whether SES took the message."""
    if isinstance(exc, ClientError):
        status = _status(exc) or 0
        if _code(exc) in _SES_THROTTLING or status == 429:
            return SendFailed(Reached.NOTHING, Answer.REFUSED_FOR_NOW, _code(exc) or str(status))
        if 400 <= status < 500:
            return SendFailed(Reached.MESSAGE, Answer.REFUSED, _code(exc) or str(status))
        return SendFailed(Reached.MESSAGE, Answer.NONE, _code(exc) or str(status))
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        return SendFailed(Reached.NOTHING, Answer.NONE, type(exc).__name__)
    return SendFailed(Reached.MESSAGE, Answer.NONE, type(exc).__name__)


@dataclass(frozen=True)
class PostPolicy:
    url: str
    fields: dict[str, str]


class FrontDoorAws:
    """One set of clients per Lambda container (or local mount), reused across requests."""

    def __init__(self, settings: Settings, session: boto3.Session | None = None) -> None:
        self.settings = settings
        self.session = session or boto3.Session()
        config = Config(region_name=settings.aws_region, connect_timeout=3, read_timeout=10,
                        retries={"total_max_attempts": 3, "mode": "standard"},
                        s3={"addressing_style": "path"} if settings.aws_endpoint_url else None,
                        signature_version="s3v4")
        kwargs: dict[str, Any] = {"region_name": settings.aws_region, "config": config}
        if settings.aws_endpoint_url:
            kwargs["endpoint_url"] = settings.aws_endpoint_url
        self.s3 = self.session.client("s3", **kwargs)
        plain = {**kwargs, "config": config.merge(Config(signature_version=None))}
        self.secrets = self.session.client("secretsmanager", **plain)
        self.dynamodb = self.session.client("dynamodb", **plain) if settings.frontdoor_ratelimit_table else None
        # No SDK retries for SES: botocore would retry a reset after SES took the message (a second
        # code email); send_email retries only what the send rule says certainly did not go out.
        once = {**kwargs, "config": config.merge(Config(signature_version=None, retries={"total_max_attempts": 1}))}
        self.ses = self.session.client("ses", **once) if settings.email_backend == "ses" else None
        self._keys: tuple[bytes, ...] = ()
        self._since = 0.0
        self._keys_at = -KEY_CACHE_S
        self._lock = threading.Lock()

    # --- the link key (AWSCURRENT and AWSPREVIOUS verify; the settled one signs) -------------
    def signing_keys(self) -> tuple[bytes, ...]:
        """The keys that verify: the current one, then the one before the last rotation."""
        return self._read_keys()[0]

    def signing_key(self) -> bytes:
        """The key that signs now: the current one once every cache has surely read it (see
        :func:`processor.links.settled_key`), else the previous one."""
        keys, since = self._read_keys()
        return settled_key(keys[0], since, keys[1] if len(keys) > 1 else None, time.time())

    def _read_keys(self) -> tuple[tuple[bytes, ...], float]:
        with self._lock:
            if self._keys and time.monotonic() - self._keys_at < KEY_CACHE_S:
                return self._keys, self._since
            secret_id = self.settings.link_secret_id
            if not secret_id:
                raise RuntimeError("HEADSHOTS_LINK_SECRET_ID is not set")
            current, since = self._secret(secret_id, "AWSCURRENT")
            keys = [current]
            previous, _ = self._secret(secret_id, "AWSPREVIOUS", missing_ok=True)
            if previous and previous != current:
                keys.append(previous)
            short = [len(k) for k in keys if len(k) < MIN_KEY_BYTES]
            if short:
                raise RuntimeError(f"the link key must be at least {MIN_KEY_BYTES} bytes (one holds {short[0]})")
            self._keys, self._since, self._keys_at = tuple(keys), since, time.monotonic()
            return self._keys, self._since

    def _secret(self, secret_id: str, stage: str, missing_ok: bool = False) -> tuple[bytes, float]:
        """A version's value and when it was made (epoch seconds)."""
        try:
            resp = self.secrets.get_secret_value(SecretId=secret_id, VersionStage=stage)
        except ClientError as exc:
            if missing_ok and _code(exc) in ("ResourceNotFoundException", "InvalidRequestException"):
                return b"", 0.0
            raise
        value = resp.get("SecretString")
        created = resp.get("CreatedDate")
        return (value.encode() if value is not None else bytes(resp["SecretBinary"]),
                created.timestamp() if created is not None else 0.0)

    # --- uploads ---------------------------------------------------------------------
    def presign_post(self, key: str, fields: dict[str, str], conditions: list[Any]) -> PostPolicy:
        post = self.s3.generate_presigned_post(Bucket=self.settings.input_bucket, Key=key, Fields=fields,
                                               Conditions=conditions,
                                               ExpiresIn=self.settings.frontdoor_upload_ttl_s)
        return PostPolicy(url=post["url"], fields=dict(post["fields"]))

    def put_manifest(self, job_id: str, manifest: dict[str, Any]) -> bool:
        """Write ``uploads/<job>/manifest.json`` once (If-None-Match); False if it was there."""
        try:
            self.s3.put_object(Bucket=self.settings.input_bucket, Key=uploads_prefix(job_id) + "manifest.json",
                               Body=json.dumps(manifest, indent=2).encode(), ContentType="application/json",
                               IfNoneMatch="*")
        except ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "ConditionalRequestConflict") or \
                    exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (409, 412):
                return False
            raise
        return True

    def uploaded(self, job_id: str) -> dict[str, int]:
        """What is under ``uploads/<job>/``: name -> size (one listing; a job has at most 20
        photos and its manifest, and no policy can put anything else there)."""
        prefix = uploads_prefix(job_id)
        resp = self.s3.list_objects_v2(Bucket=self.settings.input_bucket, Prefix=prefix, MaxKeys=1000)
        return {obj["Key"][len(prefix):]: int(obj["Size"]) for obj in resp.get("Contents", [])}

    # --- reads of the worker's records -----------------------------------------------
    def status(self, job_id: str) -> JobStatus | None:
        body = self._get(job_prefix(job_id) + "status.json")
        return JobStatus.from_json(body) if body is not None else None

    def photo_names(self, job_id: str) -> PhotoNames | None:
        """A rejected job's photo names (``results/<job>/photos.json``), or None once they have
        expired with the results (or a job that ended before they were kept there)."""
        body = self._get(photo_names_key(job_id))
        return PhotoNames.model_validate_json(body) if body is not None else None

    def results_doc(self, job_id: str) -> dict[str, Any] | None:
        body = self._get(results_prefix(job_id) + "results.json")
        return json.loads(body) if body is not None else None

    def result_exists(self, job_id: str, name: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.settings.output_bucket, Key=results_prefix(job_id) + name)
        except ClientError as exc:
            if _missing(exc):
                return False
            raise
        return True

    def _get(self, key: str) -> bytes | None:
        try:
            return self.s3.get_object(Bucket=self.settings.output_bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if _missing(exc):
                return None
            raise

    def presign_get(self, job_id: str, name: str, disposition: str) -> str:
        """A fresh GET of one result, signed now with the front door's credentials."""
        return self.s3.generate_presigned_url(
            "get_object", ExpiresIn=self.settings.frontdoor_redirect_ttl_s,
            Params={"Bucket": self.settings.output_bucket, "Key": results_prefix(job_id) + name,
                    "ResponseContentDisposition": f'{disposition}; filename="{name}"'})

    # --- feedback and rate limits ----------------------------------------------------
    def put_feedback(self, key: str, doc: dict[str, Any], once: bool = False) -> bool:
        """Write a feedback record; ``once``: only if the key is new (If-None-Match), False if it was there."""
        extra = {"IfNoneMatch": "*"} if once else {}
        try:
            self.s3.put_object(Bucket=self.settings.output_bucket, Key=key, Body=json.dumps(doc).encode(),
                               ContentType="application/json", **extra)
        except ClientError as exc:
            if once and (_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict")
                         or _status(exc) in (409, 412)):
                return False
            raise
        return True

    def count(self, counter: str) -> int:
        """A counter's value without changing it (0 when it does not exist)."""
        assert self.dynamodb is not None and self.settings.frontdoor_ratelimit_table
        resp = self.dynamodb.get_item(TableName=self.settings.frontdoor_ratelimit_table, Key={"pk": {"S": counter}},
                                      ProjectionExpression="#n", ExpressionAttributeNames={"#n": "n"},
                                      ConsistentRead=True)
        return int(resp.get("Item", {}).get("n", {}).get("N", 0))

    def increment(self, counter: str, expires_at: int, delta: int = 1) -> int:
        """Atomically add ``delta`` to ``counter``; the count after this request."""
        assert self.dynamodb is not None and self.settings.frontdoor_ratelimit_table
        resp = self.dynamodb.update_item(
            TableName=self.settings.frontdoor_ratelimit_table, Key={"pk": {"S": counter}},
            UpdateExpression="ADD #n :d SET #e = if_not_exists(#e, :exp)",
            ExpressionAttributeNames={"#n": "n", "#e": "expires_at"},
            ExpressionAttributeValues={":d": {"N": str(delta)}, ":exp": {"N": str(expires_at)}},
            ReturnValues="UPDATED_NEW")
        return int(resp["Attributes"]["n"]["N"])

    # --- the code email --------------------------------------------------------------
    def send_email(self, message: EmailMessage) -> None:
        """One message through SES (``ses:SendRawEmail`` as the configured sender) or, locally,
        the SMTP sink the settings name, judged by the worker's send rule
        (:mod:`processor.send_rule`): retried only while it certainly did not go out, and
        :class:`SendFailed` otherwise (``UNKNOWN``: it may have gone; never sent again)."""
        for attempt in Retrying(stop=stop_after_attempt(SEND_TRIES), wait=wait_exponential(0.2, max=1.0),
                                retry=retry_if_exception(lambda e: isinstance(e, SendFailed) and e.retryable),
                                reraise=True):
            with attempt:
                self._send_once(message)

    def _send_once(self, message: EmailMessage) -> None:
        if self.ses is None:
            send_smtp(self.settings.smtp_host, self.settings.smtp_port, message, timeout_s=10)
            return
        try:
            self.ses.send_raw_email(Source=str(message["From"]), Destinations=[str(message["To"])],
                                    RawMessage={"Data": message.as_bytes()})
        except Exception as exc:
            raise ses_seen(exc) from exc
