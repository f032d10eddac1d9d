"""How every AWS client of the service is made: endpoint, region, timeouts, no SDK retries.

One place so that S3, SQS and SES all point at the same endpoint (moto locally, AWS in
production) and all leave retrying to :mod:`processor.retry`.
"""

from __future__ import annotations

from typing import Any

import aioboto3
from botocore.config import Config

from processor.retry import BOTOCORE_NO_RETRIES
from processor.settings import Settings


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
