"""Security test fixtures: the api configured the way production is, from HOOKPOST_* variables."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from unittest import mock

import asyncpg
import httpx
import pytest

from libs.domain.plans import Plan
from libs.infra.settings import Settings
from services.api.organizations.service import create_organization
from tests.api import conftest as api_fixtures
from tests.api.conftest import Client, running_api

# The api tests' fixtures, shared here (pytest finds fixtures by their module-level name).
http = api_fixtures.http
settings = api_fixtures.settings
make_client = api_fixtures.make_client
client = api_fixtures.client


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
        prod = settings_from_env(HOOKPOST_ENV="prod", **variables)
        assert not prod.is_dev
        org = await create_organization(db_pool, "security", plan)
        async with running_api(prod) as app_client:
            assert isinstance(app_client, httpx.AsyncClient)
            yield Client(http=app_client, org_id=org.organizationId, token=org.apiToken)

    return start
