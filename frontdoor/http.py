"""Requests and responses as plain values, and their Lambda function-URL (payload 2.0) form.

Why values: the routes and pages are tested without any server, and the local adapter
(``processor/devkit/frontdoor_server.py``) and the Lambda runtime hand the very same event
to the very same :func:`frontdoor.lambda_handler.handler`.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

#: Every response: no sniffing, no framing, no referrer (links carry secrets), HTTPS only.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=31536000",
    "Cross-Origin-Opener-Policy": "same-origin",
}
MAX_BODY_BYTES = 64 * 1024


class HttpError(Exception):
    """A request the front door refuses: status, a stable code and a sentence for a person."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}  # more JSON fields for an API client (e.g. how many photos are missing)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    source_ip: str = ""
    domain: str = ""  # the host the client called (function URL domain)

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Request:
        """A function URL (payload format 2.0) event, as Lambda delivers it."""
        ctx = event.get("requestContext") or {}
        http = ctx.get("http") or {}
        raw = event.get("body") or ""
        body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode("utf-8")
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        query = {}
        for key, value in parse_qsl(event.get("rawQueryString") or "", keep_blank_values=True):
            query.setdefault(key, value)  # the first value wins; repeats are ignored
        return cls(method=str(http.get("method") or "GET").upper(), path=str(event.get("rawPath") or "/"),
                   query=query, headers=headers, body=body, source_ip=str(http.get("sourceIp") or ""),
                   domain=str(ctx.get("domainName") or headers.get("host") or ""))

    def json(self) -> Any:
        """The body as JSON, or a 400 saying why not."""
        if len(self.body) > MAX_BODY_BYTES:
            raise HttpError(413, "body_too_large", f"The request body is over {MAX_BODY_BYTES // 1024} KB.")
        if media_type(self.headers.get("content-type", "")) != "application/json":
            # Exactly: a cross-site page may send text/plain (even "text/plain;charset=json")
            # without a preflight, and must not spend a visitor's limits.
            raise HttpError(415, "not_json", "Send the request as application/json.")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise HttpError(400, "bad_json", "The request body is not valid JSON.") from None

    def form(self) -> dict[str, list[str]]:
        """An ``application/x-www-form-urlencoded`` body (every value of each field)."""
        if len(self.body) > MAX_BODY_BYTES:
            raise HttpError(413, "body_too_large", f"The request body is over {MAX_BODY_BYTES // 1024} KB.")
        if "application/x-www-form-urlencoded" not in self.headers.get("content-type", ""):
            raise HttpError(415, "not_a_form", "Send the form as application/x-www-form-urlencoded.")
        out: dict[str, list[str]] = {}
        try:
            pairs = parse_qsl(self.body.decode("utf-8"), keep_blank_values=True, max_num_fields=300)
        except (UnicodeDecodeError, ValueError):
            raise HttpError(400, "bad_form", "The form could not be read.") from None
        for key, value in pairs:
            out.setdefault(key, []).append(value)
        return out

    def client_ip(self, trusted_proxy: str = "none") -> str:
        """Who is asking: the connection's address, or, only when the setting names the proxy in
        front (``cloudfront``, which Terraform then makes the only way in), the viewer address
        that proxy reports. Any other forwarding header is anybody's to forge and is ignored."""
        if trusted_proxy == "cloudfront":
            viewer = self.headers.get("cloudfront-viewer-address", "").strip()
            if viewer:
                return viewer.rsplit(":", 1)[0].strip("[]")  # "<ip>:<port>", the port last
        return self.source_ip

    def bearer(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[7:].strip() or None if auth[:7].lower() == "bearer " else None


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def to_result(self) -> dict[str, Any]:
        """The function URL's response format (binary bodies base64-encoded)."""
        headers = {**SECURITY_HEADERS, **self.headers}
        text = headers.get("Content-Type", "").startswith(("text/", "application/json", "application/javascript"))
        if text:
            return {"statusCode": self.status, "headers": headers, "body": self.body.decode("utf-8"),
                    "isBase64Encoded": False}
        return {"statusCode": self.status, "headers": headers,
                "body": base64.b64encode(self.body).decode(), "isBase64Encoded": True}


def media_type(content_type: str) -> str:
    """``application/json; charset=utf-8`` -> ``application/json`` (lower case, no parameters)."""
    return content_type.split(";", 1)[0].strip().lower()


def json_response(status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(data).encode(), {"Content-Type": "application/json",
                                                        "Cache-Control": "no-store", **(headers or {})})


def html_response(status: int, html: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, html.encode(), {"Content-Type": "text/html; charset=utf-8",
                                            "Cache-Control": "no-store", **(headers or {})})


def redirect(location: str, status: int = 302) -> Response:
    return Response(status, b"", {"Location": location, "Cache-Control": "no-store"})

