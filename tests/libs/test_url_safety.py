"""Registration-time URL safety: resolved addresses are judged, never the host string."""

from __future__ import annotations

import pytest

from libs.infra.url_safety import SafetyPolicy, UnsafeURLError, check_url

PROD = SafetyPolicy()

HOSTILE = [
    "https://127.0.0.1/h",
    "https://127.1/h",
    "https://2130706433/h",
    "https://0x7f000001/h",
    "https://0177.0.0.1/h",
    "https://[::1]/h",
    "https://[::ffff:127.0.0.1]/h",
    "https://0.0.0.0/h",
    "https://localhost/h",
    "https://localhost./h",
    "https://10.0.0.1/h",
    "https://172.16.5.4/h",
    "https://192.168.1.1/h",
    "https://169.254.169.254/latest/meta-data",
    "https://100.64.0.1/h",
    "https://192.0.0.1/h",
    "https://[fd00::1]/h",
    "https://[fe80::1]/h",
    "https://[64:ff9b::a00:1]/h",  # NAT64 of 10.0.0.1
    "https://[2002:c0a8:101::1]/h",  # 6to4 of 192.168.1.1
    "https://224.0.0.1/h",
    "https://[ff02::1]/h",
    "https://[::]/h",
    "http://93.184.216.34/h",  # plain http
    "ftp://93.184.216.34/h",
    "https://user:pw@93.184.216.34/h",
    "https:///nohost",
    "not a url",
]


@pytest.mark.parametrize("url", HOSTILE)
async def test_hostile_targets_are_refused_in_prod(url: str) -> None:
    with pytest.raises(UnsafeURLError):
        await check_url(url, PROD)


@pytest.mark.parametrize(
    "url", ["https://93.184.216.34/hook", "https://[2606:4700:4700::1111]/hook", "https://8.8.8.8"]
)
async def test_public_addresses_are_allowed_in_prod(url: str) -> None:
    assert await check_url(url, PROD)


async def test_dev_allows_loopback_and_http() -> None:
    dev = SafetyPolicy.from_settings(env_is_dev=True, allowed_cidrs=[])
    assert await check_url("http://127.0.0.1:9000/hook", dev)


async def test_allow_list_admits_only_its_networks() -> None:
    policy = SafetyPolicy.from_settings(env_is_dev=False, allowed_cidrs=["10.1.0.0/16"])
    assert await check_url("https://10.1.2.3/hook", policy)
    with pytest.raises(UnsafeURLError):
        await check_url("https://10.2.0.1/hook", policy)
