"""The search page at ``/`` (placeholder: the page itself is being built)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from .service import Service


def install(app: FastAPI, service: Service) -> None:
    """Add the page's routes (``/`` and its static files) to ``app``."""
    from fastapi.responses import HTMLResponse

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home() -> str:
        return "<!doctype html><title>semsearch</title><p>semsearch</p>"
