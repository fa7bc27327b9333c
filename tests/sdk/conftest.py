"""The SDK and documentation tests verify real deliveries: they run the same stack of real
service processes as tests/e2e (api, dispatcher, senders on the real broker and database)."""

from __future__ import annotations

from tests.e2e.conftest import api_client, stack, stack_env  # noqa: F401  (fixtures)
