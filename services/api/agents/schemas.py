"""The agents wire format (seed 003): agents, their rules, their results sinks and syncs.

Bodies are camelCase like every route, except the rules object, whose keys are the seed's
own snake_case (`data_sinks.auto_push_on_job_complete`), so a user can paste it verbatim.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from libs.domain.endpoint_kinds import DeliveryStatus, EndpointStatus
from libs.domain.signing import SinkAuthScheme
from services.api.endpoints.schemas import RATE_LIMIT_DOC, REASON_DOC, RateLimit
from services.api.schemas import ApiModel, StorableText, WebhookUrl

MAX_RETRY_FAILED_PUSH = 3

AuthScheme = Literal["Bearer", "HmacSha256", "Basic"]
# The seed's authScheme names ↔ the stored endpoints.signature_scheme.
AUTH_SCHEMES: dict[str, SinkAuthScheme] = {
    "Bearer": SinkAuthScheme.BEARER,
    "HmacSha256": SinkAuthScheme.HMAC_SHA256,
    "Basic": SinkAuthScheme.BASIC,
}
WIRE_AUTH_SCHEMES: dict[str, str] = {stored.value: wire for wire, stored in AUTH_SCHEMES.items()}


# --- agents and rules ---------------------------------------------------------------------


class DataSinkRules(BaseModel):
    # Unknown keys are refused: a typo such as "auto_push" must not silently keep push off.
    model_config = ConfigDict(extra="forbid")

    auto_push_on_job_complete: StrictBool = Field(
        default=False,
        description="Push every completed job's results to the agent's sinks. Off by"
        " default: outbound push sends your data to a destination of your choice.",
    )
    retry_failed_push: StrictInt = Field(
        default=2,
        ge=0,
        le=MAX_RETRY_FAILED_PUSH,
        description="Retries after a failed push (5xx, timeout): 5 s, 30 s, 5 min. A 4xx is"
        " never retried.",
    )


class AgentRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data_sinks: DataSinkRules


class AgentIn(ApiModel):
    name: StorableText = Field(min_length=1, max_length=200)


class AgentPatch(ApiModel):
    """Change an agent's name and/or status (ACTIVE / INACTIVE); omitted fields stay."""

    name: StorableText | None = Field(default=None, min_length=1, max_length=200)
    status: EndpointStatus | None = None


class AgentOut(ApiModel):
    id: str
    organization_id: str
    name: str
    workspace_id: str
    status: EndpointStatus
    rules: AgentRules
    created_at: datetime
    updated_at: datetime


class AgentList(ApiModel):
    agents: list[AgentOut]


# --- data sources (results sinks) ---------------------------------------------------------


class DataSourceConfigIn(ApiModel):
    url: WebhookUrl = Field(description="Where results are POSTed.")
    auth_scheme: AuthScheme


class DataSourceSecretIn(ApiModel):
    value: StorableText = Field(
        min_length=1,
        max_length=4096,
        description="HmacSha256: the HMAC key; Bearer: the token; Basic: user:password."
        " Stored encrypted, never shown again.",
    )


class DataSourceIn(ApiModel):
    role: Literal["RESULTS_SINK"]
    type: Literal["HTTPS_WEBHOOK"]
    name: StorableText | None = Field(default=None, max_length=200)
    config: DataSourceConfigIn
    secret: DataSourceSecretIn | None = Field(
        default=None,
        description="Required on POST. A PUT without it keeps the stored secret (unless"
        " authScheme changes): pausing or renaming a sink needs no secret re-typed.",
    )
    format: Literal["JSON"] = "JSON"
    status: EndpointStatus = Field(
        default=EndpointStatus.ACTIVE,
        description="PUT it back to ACTIVE after a plan downgrade deactivated the sink.",
    )
    rate_limit_per_second: RateLimit | None = Field(default=None, description=RATE_LIMIT_DOC)


class DataSourceConfigOut(ApiModel):
    url: str = Field(description="Query values are masked: they may carry a token.")
    auth_scheme: AuthScheme


class DataSourceSecretOut(ApiModel):
    value_masked: str | None


class DataSourceOut(ApiModel):
    id: str
    agent_id: str
    organization_id: str
    role: Literal["RESULTS_SINK"] = "RESULTS_SINK"
    type: Literal["HTTPS_WEBHOOK"] = "HTTPS_WEBHOOK"
    name: str | None
    config: DataSourceConfigOut
    secret: DataSourceSecretOut
    format: Literal["JSON"] = "JSON"
    status: EndpointStatus
    deactivated_reason: str | None = Field(description=REASON_DOC)
    rate_limit_per_second: float | None = Field(description=RATE_LIMIT_DOC)
    created_at: datetime
    updated_at: datetime


class DataSourceList(ApiModel):
    data_sources: list[DataSourceOut]


class SyncOut(ApiModel):
    """One push attempt (the seed's agent_data_source_sync row)."""

    attempt_id: str = Field(description="The attempt's X-Webhook-Delivery.")
    delivery_id: str
    job_id: str | None = Field(description="The job pushed (the synthetic one for /test).")
    event_type: str
    attempt_number: int
    attempted_at: datetime
    status: Literal["SUCCEEDED", "FAILED"]
    succeeded: bool
    http_status: int | None
    error: str | None
    duration_ms: int
    delivery_status: DeliveryStatus = Field(
        description="Where the push stands: PENDING (retry due), SUCCEEDED, FAILED (4xx), DEAD."
    )


class SyncList(ApiModel):
    syncs: list[SyncOut]
