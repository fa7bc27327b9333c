"""SSRF at registration: hostile webhook URLs are refused by the real api in prod mode.

Every target goes through POST (and PUT) on both front doors of the api configured from
HOOKPOST_ENV=prod: each must answer 400 in the SPEC §4 shape and store nothing. The library
corpus (tests/libs/test_url_safety.py) checks `check_url` alone; this one checks the api.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pydantic
import pytest

from libs.domain.plans import Plan
from services.api.organizations.service import create_organization
from tests.api.conftest import Client, assert_error, running_api, subscription_body
from tests.security.conftest import ProdApi, settings_from_env

SUBS = "/api/v1/webhook-subscriptions"
DESTS = "/api/v1/delivery-destinations"

# (url, what it reaches). All https, so the address is the only reason to refuse.
HOSTILE_TARGETS: list[tuple[str, str]] = [
    # loopback, every spelling
    ("https://127.0.0.1/h", "loopback"),
    ("https://127.1/h", "loopback, short form"),
    ("https://2130706433/h", "loopback as one decimal integer"),
    ("https://0x7f000001/h", "loopback as one hex integer"),
    ("https://0177.0.0.1/h", "loopback, octal first byte"),
    ("https://0x7f.1/h", "loopback, hex short form"),
    ("https://127.000.000.001/h", "loopback, zero-padded"),
    ("https://127.255.255.254:8443/h", "the rest of 127/8"),
    ("https://[::1]/h", "IPv6 loopback"),
    ("https://[0:0:0:0:0:0:0:1]/h", "IPv6 loopback, long form"),
    ("https://[::ffff:127.0.0.1]/h", "IPv4-mapped loopback"),
    ("https://[::ffff:7f00:1]/h", "IPv4-mapped loopback, hex"),
    ("https://[::127.0.0.1]/h", "IPv4-compatible loopback (deprecated form)"),
    ("https://[::ffff:0:7f00:1]/h", "IPv4-translated loopback (SIIT)"),
    ("https://0.0.0.0/h", "0.0.0.0 reaches loopback on Linux"),
    ("https://0/h", "0.0.0.0 as one integer"),
    ("https://[::]/h", "IPv6 unspecified"),
    ("https://localhost/h", "a name resolving to loopback"),
    ("https://localhost./h", "the same name, fully qualified"),
    ("https://LOCALHOST/h", "the same name, upper case"),
    # RFC 1918
    ("https://10.0.0.1/h", "RFC 1918 10/8"),
    ("https://10.1/h", "RFC 1918, short form"),
    ("https://172.16.0.1/h", "RFC 1918 172.16/12"),
    ("https://172.31.255.254/h", "RFC 1918 172.16/12, top"),
    ("https://192.168.1.1/h", "RFC 1918 192.168/16"),
    ("https://3232235777/h", "192.168.1.1 as one integer"),
    ("https://[::ffff:10.0.0.1]/h", "IPv4-mapped RFC 1918"),
    # link-local and the cloud metadata address
    ("https://169.254.169.254/latest/meta-data/", "cloud metadata"),
    ("https://0xa9fea9fe/latest/meta-data/", "cloud metadata as one hex integer"),
    ("https://[::ffff:169.254.169.254]/latest/meta-data/", "IPv4-mapped metadata"),
    ("https://169.254.0.1/h", "IPv4 link-local"),
    ("https://[fe80::1]/h", "IPv6 link-local"),
    # CGNAT
    ("https://100.64.0.1/h", "CGNAT 100.64/10"),
    ("https://100.127.255.254/h", "CGNAT, top"),
    # IPv6 ULA and site-local
    ("https://[fd00::1]/h", "IPv6 ULA fd00::/8"),
    ("https://[fc00::1]/h", "IPv6 ULA fc00::/8"),
    ("https://[fec0::1]/h", "IPv6 site-local (deprecated)"),
    # NAT64 and 6to4 forms of private addresses
    ("https://[64:ff9b::a00:1]/h", "NAT64 of 10.0.0.1"),
    ("https://[64:ff9b::7f00:1]/h", "NAT64 of 127.0.0.1"),
    ("https://[64:ff9b::a9fe:a9fe]/h", "NAT64 of 169.254.169.254"),
    ("https://[64:ff9b:1::c0a8:101]/h", "local-use NAT64 of 192.168.1.1"),
    ("https://[2002:a00:1::1]/h", "6to4 of 10.0.0.1"),
    ("https://[2002:7f00:1::1]/h", "6to4 of 127.0.0.1"),
    ("https://[2002:a9fe:a9fe::1]/h", "6to4 of 169.254.169.254"),
    # other special-purpose ranges
    ("https://192.0.0.1/h", "IETF protocol assignments"),
    ("https://198.18.0.1/h", "benchmarking"),
    ("https://224.0.0.1/h", "multicast"),
    ("https://255.255.255.255/h", "broadcast"),
    ("https://[ff02::1]/h", "IPv6 multicast"),
]
assert len(HOSTILE_TARGETS) >= 30


def destination_body(url: str) -> dict[str, Any]:
    return {"type": "WEBHOOK", "webhookUrl": url, "events": ["mapping.completed"]}


@pytest.fixture(scope="module")
async def prod_client(db_pool: asyncpg.Pool) -> AsyncIterator[Client]:
    """One prod-mode api and org for the whole corpus (the refusals change nothing)."""
    settings = settings_from_env(HOOKPOST_ENV="prod")
    org = await create_organization(db_pool, "ssrf-corpus", Plan.PRO)
    async with running_api(settings) as http:
        yield Client(http=http, org_id=org.organizationId, token=org.apiToken)


def assert_refused(response: Any) -> None:
    error = assert_error(response, 400, "BAD_REQUEST")
    assert "webhook URL" in error["message"], error


@pytest.mark.parametrize(("url", "reaches"), HOSTILE_TARGETS, ids=[t[1] for t in HOSTILE_TARGETS])
async def test_hostile_target_is_refused_on_both_doors(
    prod_client: Client, url: str, reaches: str
) -> None:
    assert_refused(await prod_client.post(SUBS, json=subscription_body(webhookUrl=url)))
    assert_refused(await prod_client.post(DESTS, json=destination_body(url)))
    assert (await prod_client.get(SUBS)).json() == {"subscriptions": []}
    assert (await prod_client.get(DESTS)).json() == {"destinations": []}


async def test_hostile_targets_are_refused_on_replace_and_change_nothing(
    prod_client: Client, db_pool: asyncpg.Pool
) -> None:
    public = "https://93.184.216.34/hook"
    sub = await prod_client.post(SUBS, json=subscription_body(webhookUrl=public))
    dest = await prod_client.post(DESTS, json=destination_body(public))
    assert sub.status_code == 201 and dest.status_code == 201, (sub.text, dest.text)
    try:
        for url, reaches in HOSTILE_TARGETS:
            sub_put = await prod_client.put(
                f"{SUBS}/{sub.json()['id']}", json=subscription_body(webhookUrl=url)
            )
            dest_put = await prod_client.put(
                f"{DESTS}/{dest.json()['id']}", json=destination_body(url)
            )
            for response in (sub_put, dest_put):
                assert response.status_code == 400, (reaches, response.text)
                assert_refused(response)
        stored = await db_pool.fetch(
            "SELECT url_masked FROM endpoints WHERE id = ANY($1::text[])",
            [sub.json()["id"], dest.json()["id"]],
        )
        assert [r["url_masked"] for r in stored] == [public, public]
    finally:
        await prod_client.delete(f"{SUBS}/{sub.json()['id']}")
        await prod_client.delete(f"{DESTS}/{dest.json()['id']}")


async def test_allow_listed_cidrs_are_accepted_in_prod_and_their_neighbours_refused(
    prod_api: ProdApi,
) -> None:
    allowed = '["10.20.0.0/16", "fd12:3456::/32"]'
    async with prod_api(HOOKPOST_ALLOWED_PRIVATE_CIDRS=allowed) as client:
        inside = [
            "https://10.20.0.0/h",
            "https://10.20.255.255/h",
            "https://[fd12:3456::1]/h",
            "https://[fd12:3456:ffff::1]/h",
        ]
        neighbours = [
            "https://10.19.255.255/h",
            "https://10.21.0.0/h",
            "https://[fd12:3457::1]/h",
            "https://[fd12:3455:ffff::1]/h",
            # the allow-list opens its own ranges, not the rest of the private world
            "https://127.0.0.1/h",
            "https://169.254.169.254/h",
            "https://[64:ff9b::a14:1]/h",  # NAT64 of 10.20.0.1: not the address allowed
        ]
        for url in inside:
            response = await client.post(DESTS, json=destination_body(url))
            assert response.status_code == 201, (url, response.text)
        for url in neighbours:
            assert_refused(await client.post(DESTS, json=destination_body(url)))
            assert_refused(await client.post(SUBS, json=subscription_body(webhookUrl=url)))
        listed = (await client.get(DESTS)).json()["destinations"]
        assert sorted(d["webhookUrl"] for d in listed) == sorted(inside)


async def test_prod_is_https_only_even_for_an_allow_listed_address(prod_api: ProdApi) -> None:
    async with prod_api(HOOKPOST_ALLOWED_PRIVATE_CIDRS='["10.20.0.0/16"]') as client:
        response = await client.post(DESTS, json=destination_body("http://10.20.0.1/h"))
        assert "https" in assert_error(response, 400, "BAD_REQUEST")["message"]


@pytest.mark.parametrize("env", ["development", "test", "local", "DEV", "Dev", "staging", ""])
def test_no_other_environment_name_is_accepted(env: str) -> None:
    # HOOKPOST_ENV=dev is the one switch to private targets: anything else does not start.
    with pytest.raises(pydantic.ValidationError):
        settings_from_env(HOOKPOST_ENV=env)
    assert settings_from_env(HOOKPOST_ENV="prod").is_dev is False
    assert settings_from_env(HOOKPOST_ENV="dev").is_dev is True
