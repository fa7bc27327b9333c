"""The dashboard's routes, mounted by services/api/app.py under /app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from services.api.dashboard import (
    agent_pages,
    auth_pages,
    endpoint_pages,
    log_pages,
    settings_pages,
)

STATIC = Path(__file__).parent / "static"
# In the order they are matched: the endpoint pages' /app/{slug} routes last.
PAGES = (auth_pages, log_pages, settings_pages, agent_pages, endpoint_pages)


def install(app: FastAPI) -> None:
    # Static files first; the endpoint pages' /app/{slug} routes last, after every fixed path.
    app.mount("/app/static", StaticFiles(directory=STATIC), name="dashboard-static")
    for module in PAGES:
        app.include_router(module.router)
