"""The Lambda entry point: ``frontdoor.lambda_handler.handler`` behind a function URL.

The app (clients, the cached link key) is built once per container from the ``HEADSHOTS_*``
environment and reused by every request the container serves. The local adapter
(``processor/devkit/frontdoor_server.py``) calls :func:`handle_event` with the same events.
"""

from __future__ import annotations

from typing import Any

from frontdoor.app import FrontDoor, build_app
from frontdoor.http import Request

_app: FrontDoor | None = None


def handle_event(app: FrontDoor, event: dict[str, Any]) -> dict[str, Any]:
    """One function-URL event (payload 2.0) in, its result out."""
    return app.handle(Request.from_event(event)).to_result()


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    global _app
    if _app is None:
        from processor.logging import configure_logging
        from processor.settings import load_settings

        settings = load_settings()
        configure_logging(settings)
        _app = build_app(settings)
    return handle_event(_app, event)
