"""How every AWS client of the service is made: endpoint, region, timeouts, no SDK retries.

One place so that S3, SQS and SES all point at the same endpoint (moto locally, AWS in
production) and all leave retrying to :mod:`processor.aws.retry`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, Self, TypeVar

import aioboto3
from botocore.config import Config
from botocore.exceptions import ClientError

from processor.aws.retry import (
    BOTOCORE_NO_RETRIES,
    DEFAULT_POLICY,
    RetryPolicy,
    aws_retrying,
)
from processor.settings import Settings

T = TypeVar("T")


def client_kwargs(settings: Settings, service: str) -> dict[str, Any]:
    """Keyword arguments for ``session.client(service, **kwargs)`` (aioboto3 or boto3)."""
    s3_options = {"addressing_style": "path"} if settings.aws_endpoint_url else {}
    config = Config(
        region_name=settings.aws_region,
        retries=dict(BOTOCORE_NO_RETRIES),
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=32,
        s3=s3_options or None,
        signature_version="s3v4" if service == "s3" else None,
    )
    kwargs: dict[str, Any] = {"region_name": settings.aws_region, "config": config}
    if settings.aws_endpoint_url:
        kwargs["endpoint_url"] = settings.aws_endpoint_url
    return kwargs


def new_session() -> aioboto3.Session:
    """An aioboto3 session using the standard credential chain (env, profile, instance role)."""
    return aioboto3.Session()


class AsyncAwsClient:
    """One aioboto3 client held open for an ``async with`` block, every call retried.

    The S3 and SQS edges subclass it; each says which service it speaks and how a final
    ``ClientError`` becomes one of its own exceptions (:meth:`_translate`).
    """

    service: str = ""
    _name = "client"

    def __init__(self, settings: Settings, session: aioboto3.Session | None = None,
                 policy: RetryPolicy = DEFAULT_POLICY) -> None:
        self.settings = settings
        self._session = session or new_session()
        self._policy = policy
        self._stack: AsyncExitStack | None = None
        self._client: Any = None

    async def __aenter__(self) -> Self:
        self._stack = AsyncExitStack()
        self._client = await self._stack.enter_async_context(
            self._session.client(self.service, **client_kwargs(self.settings, self.service)))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._stack is not None:
            await self._stack.aclose()
        self._stack, self._client = None, None

    @property
    def client(self) -> Any:
        """The underlying aiobotocore client (tests attach fault-injection hooks to it)."""
        if self._client is None:
            raise RuntimeError(f"{type(self).__name__} used outside 'async with'")
        return self._client

    def _translate(self, exc: ClientError) -> Exception:
        """The exception to raise for a ``ClientError`` that retrying did not cure."""
        return exc

    async def _call(self, op: Callable[[], Awaitable[T]]) -> T:
        try:
            async for attempt in aws_retrying(self._policy):
                with attempt:
                    return await op()
        except ClientError as exc:
            translated = self._translate(exc)
            if translated is exc:
                raise
            raise translated from exc
        raise AssertionError("unreachable")  # pragma: no cover
