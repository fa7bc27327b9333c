"""Liveness, readiness and metrics: the only routes outside /api/v1."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.api.backlog import gauges
from services.api.state import State

router = APIRouter(tags=["operations"])

_DB_CHECK_TIMEOUT_S = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Answers while the process runs; never asks the database or the broker."""
    return {"status": "ok"}


async def _database_ok(state: State) -> bool:
    try:
        return await asyncio.wait_for(state.pool.fetchval("SELECT 1"), _DB_CHECK_TIMEOUT_S) == 1
    except Exception:
        return False


@router.get("/readyz")
async def readyz(state: State) -> JSONResponse:
    """200 only when both PostgreSQL and RabbitMQ answer; 503 (with what is missing) else."""
    checks = {"database": await _database_ok(state), "broker": await state.broker.is_connected()}
    ready = all(checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/metrics")
async def metrics(state: State) -> Response:
    await gauges.refresh(state.pool)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
