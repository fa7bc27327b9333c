"""`python -m tests.security.scripted_sender`: the real sender, with a scripted name lookup.

Everything is `hookpost sender` (services.sender.main.serve: consumer, HttpClient,
SafeResolver, the checks, the pinning) except where names resolve: instead of the system
resolver, the zone in HOOKPOST_TEST_DNS_ZONE (a JSON file `{"name": ["addr", ...]}`) answers.
That is how a test plays DNS rebinding on a shared machine with no DNS server of its own:
the api (patched in-process) saw a public address at registration; this sender is told a
private one at send time, exactly as a rebinding name would answer it.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path

from aiohttp.abc import AbstractResolver, ResolveResult

from libs.infra.logs import configure_logging
from libs.infra.settings import get_settings
from services.sender.main import serve

ZONE_VARIABLE = "HOOKPOST_TEST_DNS_ZONE"


class ScriptedResolver(AbstractResolver):
    def __init__(self, zone: dict[str, list[str]]) -> None:
        self._zone = {name.lower().rstrip("."): addresses for name, addresses in zone.items()}

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = self._zone.get(host.lower().rstrip("."))
        if not addresses:
            raise OSError(f"scripted zone has no answer for {host!r}")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        return None


def main() -> None:
    zone = json.loads(Path(os.environ[ZONE_VARIABLE]).read_text())
    configure_logging("sender")
    asyncio.run(serve(get_settings(), resolver=ScriptedResolver(zone)))


if __name__ == "__main__":
    main()
