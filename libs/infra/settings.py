"""Every knob of hookpost, read from `HOOKPOST_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOOKPOST_", extra="ignore")

    env: Literal["dev", "prod"] = "prod"
    database_url: str = "postgresql://postgres:postgres@127.0.0.1:5432/hookpost"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    broker_prefix: str = "hookpost"

    # Scales every retry tier; tests run the real schedule a hundred times faster.
    retry_delay_scale: float = Field(default=1.0, gt=0)
    send_timeout_s: float = Field(default=30.0, gt=0)

    # base64 of 32 bytes; required in prod, a fixed development key otherwise.
    encryption_key: str | None = None
    admin_token: str | None = None

    # CIDRs a customer may deliver to even in prod (private networks they really own).
    allowed_private_cidrs: list[str] = Field(default_factory=list)

    # Consumer concurrency: prefetch is the number of messages in flight per replica.
    sender_prefetch: int = Field(default=600, ge=1)
    # Work queues behind a consistent-hash exchange on the endpoint id (every service of a
    # deployment must agree); 1: the one `<prefix>.sender` queue. docs/operations.md.
    sender_shards: int = Field(default=1, ge=1, le=64)
    # Event messages in flight per dispatcher: being dispatched, or waiting for the first
    # attempts it makes itself (which may hold half of them). Sized for slow endpoints: a
    # 2 s endpoint at 200 events/s keeps 400 messages waiting, beside what is left for the
    # others (BENCHMARKS.md, "Session 11").
    dispatcher_prefetch: int = Field(default=2048, ge=1)
    # First attempts a dispatcher replica POSTs itself, at most this many at once (and for at
    # most half its prefetch of messages); the rest, and every retry, go through the sender
    # queue. 0: every first attempt goes through the sender queue. An attempt sent on through
    # the queue costs several times the CPU of one made here, so a burst that overflowed
    # would make the dispatcher slowest exactly when it is busiest (BENCHMARKS.md).
    dispatcher_first_attempts: int = Field(default=1280, ge=0)

    # The most attempts in flight to one endpoint, across the engines of each kind: first
    # attempts across the dispatcher replicas, the rest across the senders (each replica takes
    # its share); below it each endpoint's limit adapts to its answers (AIMD). A healthy 2 s
    # endpoint at 200 events/s needs 400.
    endpoint_max_concurrency: int = Field(default=512, ge=1)
    # The longest Retry-After (429, 503) a receiver can make us wait: the longest retry tier.
    retry_after_cap_s: float = Field(default=3600.0, gt=0, le=3600.0)

    # Outbox relay: republish events whose publish was not confirmed after this long.
    outbox_relay_interval_s: float = Field(default=2.0, gt=0)
    outbox_relay_grace_s: float = Field(default=5.0, ge=0)
    # The reconciler (every dispatcher runs it): how often it looks, and how late an event not
    # yet dispatched and a PENDING delivery past its due time must be before it re-drives
    # them. The delivery bound stays above the send timeout (an attempt in flight is late).
    reconcile_interval_s: float = Field(default=15.0, gt=0)
    redrive_events_after_s: float = Field(default=60.0, gt=0)
    redrive_deliveries_after_s: float = Field(default=300.0, gt=0)
    # Retention (libs/infra/db/partitions.py, run by every dispatcher): events, deliveries,
    # attempts and audit entries are kept this many whole days before today (UTC), then their
    # day's partitions are dropped; maintenance runs at start and every interval.
    retention_days: int = Field(default=30, ge=1)
    partition_maintenance_interval_s: float = Field(default=3600.0, gt=0)

    # Export files: download links in export.ready point here and stay valid this long.
    public_base_url: str = "http://127.0.0.1:8000"
    export_link_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)

    payload_cap_bytes: int = 64 * 1024
    # Agent results sinks carry a job's full results, up to this; above it, a resultsRef.
    sink_payload_cap_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # The api refuses larger request bodies with 413 (a route may declare its own limit).
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # POST /api/v1/events per organization: a token bucket refilled at `rate_per_s`, holding
    # at most `burst` (both per api replica). 0 turns the limit off.
    events_rate_per_s: float = Field(default=200.0, ge=0)
    events_rate_burst: int = Field(default=400, ge=1)
    # /test calls (a POST to the endpoint's URL on demand): per endpoint and per organization,
    # per minute, with the bursts a person clicking "send test" needs; 0 turns a limit off.
    test_sends_per_endpoint_per_min: float = Field(default=10.0, ge=0)
    test_sends_per_org_per_min: float = Field(default=60.0, ge=0)
    # The api caches token → organization this long (a revoked token stops working on every
    # replica within it; changes made through a replica apply there at once). 0: no cache.
    token_cache_ttl_s: float = Field(default=1.0, ge=0)
    backpressure_pending_limit: int = 10_000
    # An endpoint is disabled as FAILING once every attempt to it has failed for this long
    # AND this many of its deliveries in a row ended DEAD (libs/domain/endpoint_health.py).
    endpoint_failing_after_s: float = Field(default=5 * 24 * 3600.0, ge=0)
    endpoint_failing_min_dead: int = Field(default=5, ge=1)
    active_endpoint_quota: int = 10
    shutdown_grace_s: float = 35.0

    # Dispatcher and sender serve /healthz, /readyz and /metrics here (the api on its own port).
    # Unset: 9100 when it is free, else any free port (logged), so that any number of workers
    # run side by side on one host; set (as Kubernetes' probes need), that port or exit.
    ops_host: str = "0.0.0.0"
    ops_port: int | None = Field(default=None, ge=0, le=65535)

    # Send `traceparent`/`tracestate` to customer endpoints too. Off: a receiver learns
    # nothing of our traces (and cannot join or pollute them) unless an operator opts in.
    propagate_trace_to_endpoints: bool = False

    # The dashboard (/app): how long a sign-in lasts, and the longest a portal link may live.
    dashboard_session_ttl_s: int = Field(default=12 * 3600, ge=60)
    portal_link_max_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)

    # `make chaos` only, and only with HOOKPOST_ENV=dev: an event accepted under this
    # Idempotency-Key is held between its commit and its publish (logged), so that the harness
    # can SIGKILL the api exactly there and watch the outbox relay re-drive it.
    chaos_hold_publish_key: str | None = None

    @property
    def chaos_hold_key(self) -> str | None:
        """The hold key where it may apply: never in prod, whatever the environment says."""
        return self.chaos_hold_publish_key if self.is_dev else None

    @property
    def is_dev(self) -> bool:
        return self.env == "dev"


@lru_cache
def get_settings() -> Settings:
    return Settings()
