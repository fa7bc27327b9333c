"""Security test fixtures: the api configured the way production is, from HOOKPOST_* variables."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from unittest import mock

import asyncpg
import httpx
import pytest

from libs.common.plans import Plan
from libs.common.settings import Settings
from services.api.organizations.service import create_organization
from tests.api.conftest import Client, running_api


def settings_from_env(**variables: str) -> Settings:
    """Settings read the way a service reads them, with these HOOKPOST_* variables set."""
    with mock.patch.dict(os.environ, variables):
        return Settings()


ProdApi = Callable[..., AbstractAsyncContextManager[Client]]


@pytest.fixture
def prod_api(db_pool: asyncpg.Pool) -> ProdApi:
    """`async with prod_api(HOOKPOST_…="…") as client`: the in-process api with
    HOOKPOST_ENV=prod (plus the given variables) and a fresh org's client."""

    @asynccontextmanager
    async def start(plan: Plan = Plan.PRO, **variables: str) -> AsyncIterator[Client]:
        settings = settings_from_env(HOOKPOST_ENV="prod", **variables)
        assert not settings.is_dev
        org = await create_organization(db_pool, "security", plan)
        async with running_api(settings) as http:
            assert isinstance(http, httpx.AsyncClient)
            yield Client(http=http, org_id=org.organizationId, token=org.apiToken)

    return start
