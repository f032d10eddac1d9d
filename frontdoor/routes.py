"""Which handler answers a request: a fixed table of methods and path patterns (pure).

Path parameters are captured here but checked by their handlers against the runtime's own
rules (job ids: :func:`processor.manifest.validate_job_id`; file names:
:data:`processor.links.FILE_NAME`), so a malformed id is a 404 that touches nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from frontdoor.http import HttpError

_SEGMENT = r"[^/]{1,255}"
ROUTES: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (method, name, re.compile(pattern)) for method, name, pattern in (
        ("GET", "upload_page", r"/"),
        ("GET", "health", r"/healthz"),
        ("GET", "static", r"/static/(?P<name>[a-z0-9-]{1,40}\.(?:js|css))"),
        ("POST", "create_job", r"/api/jobs"),
        ("POST", "verify_job", rf"/api/jobs/(?P<job>{_SEGMENT})/verify"),
        ("POST", "start_job", rf"/api/jobs/(?P<job>{_SEGMENT})/start"),
        ("GET", "job_status", rf"/api/jobs/(?P<job>{_SEGMENT})/status"),
        ("GET", "status_page", rf"/s/(?P<job>{_SEGMENT})"),
        ("GET", "gallery", rf"/g/(?P<job>{_SEGMENT})"),
        ("POST", "rate", rf"/g/(?P<job>{_SEGMENT})/rate"),
        ("GET", "download", rf"/d/(?P<job>{_SEGMENT})/(?P<file>{_SEGMENT})"),
    ))


@dataclass(frozen=True)
class Match:
    name: str
    params: dict[str, str] = field(default_factory=dict)


def route(method: str, path: str) -> Match:
    """The route for ``method path`` (HEAD answers as GET), or a 404/405 HttpError."""
    wanted = "GET" if method == "HEAD" else method
    allowed = []
    for route_method, name, pattern in ROUTES:
        m = pattern.fullmatch(path)
        if m is None:
            continue
        if route_method == wanted:
            return Match(name, {k: unquote(v) for k, v in m.groupdict().items()})
        allowed.append(route_method)
    if allowed:
        raise HttpError(405, "method_not_allowed", "That method is not allowed here.",
                        {"Allow": ", ".join(sorted(set(allowed)))})
    raise HttpError(404, "not_found", "There is nothing here.")
