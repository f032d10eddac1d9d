"""HTML pages from ``frontdoor/templates`` (Jinja2, autoescaped: names and file names are data)."""

from __future__ import annotations

from datetime import datetime, timezone
from importlib.resources import files
from typing import Any

import jinja2

TITLES = {400: "That did not work", 403: "This link is not valid", 404: "Not found", 405: "Not allowed",
          409: "Already started", 410: "This link has expired", 413: "Too large", 415: "Not understood",
          429: "Please slow down", 500: "Something went wrong", 503: "Not available right now"}


def _load(name: str) -> str | None:
    resource = files("frontdoor").joinpath("templates", name)
    return resource.read_text(encoding="utf-8") if resource.is_file() else None


_ENV = jinja2.Environment(loader=jinja2.FunctionLoader(_load), autoescape=True,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def when(epoch: int) -> str:
    """``Tuesday 14 July 2026, 09:30 UTC`` (as the email says it)."""
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return f"{moment:%A} {moment.day} {moment:%B %Y, %H:%M} UTC"


def render(template: str, **values: Any) -> str:
    return _ENV.get_template(template).render(**values)
