"""The REST service: FastAPI app, API keys with scopes, error mapping, masking.

``create_app(settings=None, store=None)`` builds the app; ``huitouke serve`` runs it on
uvicorn. Importing this package is cheap (the tables module is imported by the migrations);
FastAPI loads only when the app is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from huitouke.settings import Settings
    from huitouke.store.db import Store

__all__ = ["create_app"]


def create_app(
    settings: Settings | None = None, store: Store | None = None, **kwargs: Any
) -> FastAPI:
    """See :func:`huitouke.service.app.create_app`."""
    from huitouke.service.app import create_app as _create_app

    return _create_app(settings, store, **kwargs)
