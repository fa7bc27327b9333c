"""Outbound POSTs: one shared aiohttp session, SSRF checks on every resolved address.

The connector's resolver is wrapped so that every address a name resolves to is checked
and only checked addresses are returned: aiohttp then connects to exactly those (no second
lookup, so DNS rebinding cannot slip a private address in), while the Host header and TLS
SNI keep the name. aiohttp never calls a resolver for a literal IP, so those are checked
here before the request starts. Redirects are never followed; only ~4 KB of an answer is read.
"""

from __future__ import annotations

import email.utils
import ipaddress
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from libs.infra import telemetry
from libs.infra.url_safety import (
    SafetyPolicy,
    UnsafeURLError,
    check_address,
    check_url_shape,
    literal_address,
)

EXCERPT_BYTES = 4096
USER_AGENT = "hookpost/0.1 (+webhooks)"


class SafeResolver(AbstractResolver):
    """Resolves with the default resolver, then refuses the name unless every address passes."""

    def __init__(self, policy: SafetyPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = DefaultResolver()
        results = await self._inner.resolve(host, port, family)
        if not results:
            raise UnsafeURLError(f"webhook URL host {host!r} does not resolve")
        for result in results:
            # a scoped IPv6 address ("fe80::1%eth0") is judged without its zone
            check_address(ipaddress.ip_address(result["host"].split("%", 1)[0]), self._policy)
        return results

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


@dataclass(frozen=True)
class HttpResult:
    succeeded: bool
    http_status: int | None
    error: str | None
    response_excerpt: str | None
    duration_ms: int
    refused: bool = False  # the URL failed the safety checks: no connection was made
    timed_out: bool = False  # no complete answer within the send timeout
    retry_after_s: float | None = None  # a 429's or 503's Retry-After, capped


# What a POST may raise that is a failed attempt, not a bug (UnsafeURLError is a ValueError;
# TimeoutError and aiohttp's connection errors are OSErrors).
_SEND_FAILURES = (aiohttp.ClientError, OSError, ValueError)

# Answers whose Retry-After is honoured (RFC 9110 §10.2.3; 429: RFC 6585).
_RETRY_AFTER_STATUSES = frozenset({429, 503})


def retry_after(value: str | None, cap_s: float, now: float | None = None) -> float | None:
    """Seconds to wait, from a Retry-After of delay-seconds or an HTTP-date; None when absent
    or unreadable; never below 0 nor above `cap_s`."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), cap_s)


def _clean_text(raw: bytes) -> str:
    # Postgres text cannot hold NUL; a receiver's body may.
    return raw.decode("utf-8", errors="replace").replace("\x00", "")


async def read_excerpt(content: aiohttp.StreamReader, limit: int = EXCERPT_BYTES) -> bytes:
    """At most `limit` bytes of a body, never the whole of a large one."""
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = await content.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class HttpClient:
    def __init__(
        self,
        policy: SafetyPolicy,
        timeout_s: float,
        max_connections: int,
        propagate_trace: bool = False,
        resolver: AbstractResolver | None = None,
        retry_after_cap_s: float = 3600.0,
    ) -> None:
        self._policy = policy
        self._retry_after_cap_s = retry_after_cap_s
        # No aiohttp instrumentation: nothing adds `traceparent` unless this says so.
        self._propagate_trace = propagate_trace
        self._timeout_s = timeout_s
        self._max_connections = max_connections
        # The name lookup behind the safety checks: aiohttp's default unless one is given
        # (the security tests give a scripted one to play DNS rebinding against a real sender).
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> HttpClient:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,
            resolver=SafeResolver(self._policy, self._resolver),
            ttl_dns_cache=10,  # cached answers are the checked ones
            keepalive_timeout=30,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            cookie_jar=aiohttp.DummyCookieJar(),  # never carry one customer's cookies
            headers={"User-Agent": USER_AGENT},
            auto_decompress=False,
            trust_env=False,  # no proxy from the environment: the address check is the rule
        )
        return self

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def preflight(self, url: str) -> None:
        """Checks that need no DNS: scheme, host, and a literal IP host's address."""
        host, _port = check_url_shape(url, self._policy)
        literal = literal_address(host)
        if literal is not None:
            check_address(literal, self._policy)

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], url_masked: str
    ) -> HttpResult:
        """One attempt's POST, in a CLIENT span that records only the masked URL."""
        # One coroutine and no closures: an attempt's objects live as long as its POST, and
        # the collector walks each of them (BENCHMARKS.md, "Session 18").
        assert self._session is not None, "start() the client first"
        with telemetry.client_span("POST", url_masked) as span:
            sent = telemetry.strip_trace_headers(headers)
            if self._propagate_trace:
                sent.update(telemetry.trace_headers())
            started = time.monotonic()
            try:
                self.preflight(url)
                async with self._session.post(
                    url, data=body, headers=sent, allow_redirects=False
                ) as response:
                    status = response.status
                    excerpt = _clean_text(await read_excerpt(response.content))
                    waits = (
                        retry_after(response.headers.get("Retry-After"), self._retry_after_cap_s)
                        if status in _RETRY_AFTER_STATUSES
                        else None
                    )
            except _SEND_FAILURES as exc:
                result = self._failure(exc, url, url_masked, _elapsed_ms(started))
            else:
                result = _answered(status, excerpt, waits, _elapsed_ms(started))
            telemetry.record_http_outcome(span, result.http_status, result.error)
            return result

    def _failure(self, exc: Exception, url: str, url_masked: str, elapsed_ms: int) -> HttpResult:
        """A POST that got no answer (one of _SEND_FAILURES)."""
        refused = timed_out = False
        if isinstance(exc, UnsafeURLError):
            error, refused = f"refused: {exc}", True
        elif isinstance(exc, TimeoutError):
            error = f"timeout: no complete answer within {self._timeout_s:g}s"
            timed_out = True
        elif isinstance(exc, aiohttp.ClientConnectorError):
            error = f"connection failed: {exc.os_error or exc}"
        else:
            error = f"request failed: {type(exc).__name__}: {exc}"
        return HttpResult(
            succeeded=False,
            http_status=None,
            error=error.replace(url, url_masked)[:1000],
            response_excerpt=None,
            duration_ms=elapsed_ms,
            refused=refused,
            timed_out=timed_out,
        )


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _answered(status: int, excerpt: str, waits: float | None, elapsed_ms: int) -> HttpResult:
    succeeded = 200 <= status < 300
    if succeeded:
        error = None
    elif 300 <= status < 400:
        error = f"HTTP {status}: redirects are not followed"
    else:
        error = f"HTTP {status}"
    return HttpResult(
        succeeded=succeeded,
        http_status=status,
        error=error,
        response_excerpt=excerpt,
        duration_ms=elapsed_ms,
        retry_after_s=waits,
    )
