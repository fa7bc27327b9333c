"""A database of its own per test: retention creates and drops partitions (and a migration
test starts from the schema before 0007), which the session's shared database must not see."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from libs.infra.settings import get_settings


@pytest.fixture
async def fresh_dsn() -> AsyncIterator[str]:
    server = get_settings().database_url.rpartition("/")[0]
    name = f"hookpost_retention_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(f"{server}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"{server}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
