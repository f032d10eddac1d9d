"""The front door served locally: a thin HTTP adapter in front of the Lambda's own handler.

Why not moto's Lambda: it needs Docker. Instead each HTTP request becomes the function-URL
event (payload 2.0) AWS would send, goes through :func:`frontdoor.lambda_handler.handle_event`
(the code the Lambda runs), and the result becomes the HTTP response. One server serves
several deployments (one per resource set the local stack provisions, so tests keep their own
buckets): each is mounted under ``/_/<name>`` (the default one at ``/``), and the prefix is
stripped before the handler sees the path, as a function URL has no base path.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import boto3
import structlog

from frontdoor.app import FrontDoor
from frontdoor.aws import FrontDoorAws
from frontdoor.lambda_handler import handle_event
from processor.settings import Settings

log = structlog.get_logger(__name__)

MOUNT_PREFIX = "/_/"


class FrontDoorServer:
    """A threaded WSGI server on ``host`` and a free port, routing mounts to front-door apps."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        from werkzeug.serving import WSGIRequestHandler, make_server

        class QuietHandler(WSGIRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass  # the front door logs each request itself, without query strings

        self._apps: dict[str, FrontDoor] = {}
        self._factories: dict[str, Callable[[], FrontDoor]] = {}
        self._lock = threading.Lock()
        self.server = make_server(host, port, self.wsgi, threaded=True, request_handler=QuietHandler)
        self.host = host
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, name="frontdoor", daemon=True)
        self.thread.start()

    @property
    def origin(self) -> str:
        """The browser origin of every mount (the one the input buckets' CORS allows)."""
        return f"http://{self.host}:{self.port}"

    def mount(self, name: str, settings: Settings, credentials: dict[str, str]) -> str:
        """Serve a front door for ``settings`` at ``/_/<name>`` (``""``: at ``/``); its base URL.

        ``credentials`` are the front door's own access keys, so whatever it signs (presigned
        URLs, POST policies) is signed by the front door, not by whoever started the stack.
        """
        url = self.origin + (f"{MOUNT_PREFIX}{name}" if name else "")

        def factory() -> FrontDoor:
            session = boto3.Session(aws_access_key_id=credentials["AccessKeyId"],
                                    aws_secret_access_key=credentials["SecretAccessKey"],
                                    region_name=settings.aws_region)
            mounted = Settings(**{**settings.model_dump(), "frontdoor_url": url})
            return FrontDoor(mounted, FrontDoorAws(mounted, session=session))
        with self._lock:
            self._factories[name] = factory
            self._apps.pop(name, None)
        return url

    def _app_for(self, path: str) -> tuple[FrontDoor | None, str]:
        name, rest = "", path
        if path.startswith(MOUNT_PREFIX):
            name, _, tail = path[len(MOUNT_PREFIX):].partition("/")
            rest = "/" + tail
        with self._lock:
            if name not in self._apps and name in self._factories:
                self._apps[name] = self._factories[name]()
            return self._apps.get(name), rest

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        raw = environ.get("REQUEST_URI") or environ.get("RAW_URI") or environ.get("PATH_INFO", "/")
        parts = urlsplit(raw)
        app, path = self._app_for(parts.path)
        if app is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no front door is mounted here"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").lower()] = environ[key]
        event = {
            "version": "2.0", "rawPath": path, "rawQueryString": parts.query, "headers": headers,
            "requestContext": {"domainName": headers.get("host", ""), "http": {
                "method": environ["REQUEST_METHOD"], "path": path, "protocol": environ.get("SERVER_PROTOCOL"),
                "sourceIp": environ.get("REMOTE_ADDR", ""), "userAgent": headers.get("user-agent", "")}},
            "body": base64.b64encode(body).decode(), "isBase64Encoded": True,
        }
        result = handle_event(app, event)
        payload = result.get("body") or ""
        data = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode("utf-8")
        status = int(result["statusCode"])
        start_response(f"{status} {HTTPStatus(status).phrase}", list(result.get("headers", {}).items()))
        return [data]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
