"""The HTTP API over one `Service` (FastAPI): placeholder with /health and /api/search."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..errors import SemsearchError, UsageError
from . import page
from .service import DEFAULT_K, Service


def create_app(service: Service) -> FastAPI:
    """The app: the API under /api, /health, and the search page at /."""
    app = FastAPI(title="semsearch")

    @app.exception_handler(SemsearchError)
    def _error(request: Request, exc: SemsearchError) -> JSONResponse:
        return JSONResponse(
            {"error": str(exc)}, status_code=400 if isinstance(exc, UsageError) else 500
        )

    @app.get("/health")
    def health() -> dict[str, Any]:
        return service.health()

    @app.get("/api/search")
    def search(q: str, k: int = DEFAULT_K, mode: str = "hybrid") -> dict[str, Any]:
        return service.search(q, k, mode=mode)

    page.install(app, service)
    return app
