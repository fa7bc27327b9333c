"""Registration-time URL safety outside dev: https only, public addresses only."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from libs.infra.settings import Settings
from tests.api.conftest import Client, assert_error, running_api, subscription_body

SUBS = "/api/v1/webhook-subscriptions"


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.216.34/hook",  # plain http
        "https://127.0.0.1/hook",
        "https://localhost/hook",  # resolves to loopback
        "https://10.1.2.3/hook",
        "https://172.16.0.1/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://100.64.0.1/hook",  # CGNAT
        "https://0.0.0.0/hook",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[fd00::1]/hook",
        "https://[fe80::1]/hook",
        "https://2130706433/hook",  # 127.0.0.1 as one integer
        "https://0177.1/hook",  # 127.0.0.1 in octal shorthand
        "https://no-such-host.invalid/hook",  # does not resolve
        "https://224.0.0.1/hook",
    ],
)
async def test_unsafe_urls_are_refused_in_prod(prod_client: Client, url: str) -> None:
    error = assert_error(
        await prod_client.post(SUBS, json=subscription_body(webhookUrl=url)), 400, "BAD_REQUEST"
    )
    assert "webhook URL" in error["message"]
    assert (await prod_client.get(SUBS)).json() == {"subscriptions": []}


async def test_a_public_address_is_accepted_in_prod(prod_client: Client) -> None:
    url = "https://93.184.216.34/hook"
    response = await prod_client.post(SUBS, json=subscription_body(webhookUrl=url))
    assert response.status_code == 201, response.text
    sub_id = response.json()["id"]
    # A replace is checked the same way.
    unsafe = await prod_client.put(
        f"{SUBS}/{sub_id}", json=subscription_body(webhookUrl="https://10.0.0.1/hook")
    )
    assert_error(unsafe, 400, "BAD_REQUEST")
    assert (await prod_client.get(f"{SUBS}/{sub_id}")).json()["webhookUrl"] == url


async def test_dev_mode_allows_local_receivers(client: Client) -> None:
    response = await client.post(
        SUBS, json=subscription_body(webhookUrl="http://127.0.0.1:8080/hook")
    )
    assert response.status_code == 201, response.text


async def test_allowed_private_cidrs_open_a_private_range_in_prod(
    settings: Settings, make_org: Callable
) -> None:
    prod = settings.model_copy(update={"env": "prod", "allowed_private_cidrs": ["10.20.0.0/16"]})
    org = await make_org()
    async with running_api(prod) as http:
        headers = {"Authorization": f"Bearer {org.apiToken}"}
        ok = await http.post(
            SUBS, headers=headers, json=subscription_body(webhookUrl="https://10.20.1.1/h")
        )
        assert ok.status_code == 201, ok.text
        refused = await http.post(
            SUBS, headers=headers, json=subscription_body(webhookUrl="https://10.21.1.1/h")
        )
        assert_error(refused, 400, "BAD_REQUEST")
        assert isinstance(http, httpx.AsyncClient)
