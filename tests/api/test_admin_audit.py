"""Plan changes by the operator, the downgrade that deactivates, and the audit log."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from libs.domain.plans import Plan
from libs.infra.settings import Settings
from tests.api.conftest import (
    Client,
    MakeClient,
    admin_url,
    assert_error,
    running_api,
    subscription_body,
)
from tests.api.doors import SUBSCRIPTIONS

SUBS = SUBSCRIPTIONS.path


def plan_url(org_id: str) -> str:
    return admin_url(org_id, "/plan")


async def create(client: Client, events: list[str], status: str = "ACTIVE") -> str:
    response = await client.post(SUBS, json=subscription_body(events=events, status=status))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_downgrade_deactivates_endpoints_holding_gated_events(
    pro_client: Client, admin_auth: dict[str, str]
) -> None:
    gated = await create(pro_client, ["MAPPING_COMPLETED", "MAPPING_ERROR_RESOLVED"])
    fine = await create(pro_client, ["MAPPING_COMPLETED"])
    already_off = await create(pro_client, ["INVENTORY_DUPLICATE_RESOLVED"], status="INACTIVE")

    response = await pro_client.http.put(
        plan_url(pro_client.org_id), headers=admin_auth, json={"plan": "FREE"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "organizationId": pro_client.org_id,
        "plan": "FREE",
        "deactivatedEndpoints": [gated],
    }
    shown = (await pro_client.get(f"{SUBS}/{gated}")).json()
    assert (shown["status"], shown["deactivatedReason"]) == ("INACTIVE", "PLAN_DOWNGRADE")
    assert (await pro_client.get(f"{SUBS}/{fine}")).json()["status"] == "ACTIVE"
    off = (await pro_client.get(f"{SUBS}/{already_off}")).json()
    assert (off["status"], off["deactivatedReason"]) == ("INACTIVE", None)

    # The org is FREE now: the API gates by the new plan.
    body = subscription_body(events=["MAPPING_COMPLETED", "MAPPING_ERROR_RESOLVED"])
    error = assert_error(await pro_client.put(f"{SUBS}/{gated}", json=body), 403, "FORBIDDEN")
    assert error["events"] == ["MAPPING_ERROR_RESOLVED"]

    # Editing it while it stays INACTIVE keeps the reason; re-activating clears it.
    keep = subscription_body(name="still off", status="INACTIVE")
    kept = (await pro_client.put(f"{SUBS}/{gated}", json=keep)).json()
    assert kept["deactivatedReason"] == "PLAN_DOWNGRADE"
    back = (await pro_client.put(f"{SUBS}/{gated}", json=subscription_body())).json()
    assert (back["status"], back["deactivatedReason"]) == ("ACTIVE", None)

    entries = (await pro_client.get("/api/v1/audit-log")).json()["entries"]
    actions = [e["action"] for e in entries]
    assert "endpoints.deactivated.plan_downgrade" in actions
    assert "organization.plan_changed" in actions
    deactivation = next(e for e in entries if e["action"] == "endpoints.deactivated.plan_downgrade")
    assert deactivation["details"]["endpointIds"] == [gated]
    assert deactivation["details"]["reason"] == "PLAN_DOWNGRADE"
    change = next(e for e in entries if e["action"] == "organization.plan_changed")
    assert change["details"] == {"from": "PRO", "to": "FREE"}


async def test_upgrade_deactivates_nothing(client: Client, admin_auth: dict[str, str]) -> None:
    await create(client, ["MAPPING_COMPLETED"])
    response = await client.http.put(
        plan_url(client.org_id), headers=admin_auth, json={"plan": "ENTERPRISE"}
    )
    assert response.json()["deactivatedEndpoints"] == []
    # The new plan takes effect at once.
    assert (
        await client.post(SUBS, json=subscription_body(events=["MAPPING_ERROR_RESOLVED"]))
    ).status_code == 201


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token", "Bearer admin-test-tokenX", "Basic abc"]
)
async def test_admin_routes_need_the_admin_token(client: Client, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await client.http.put(plan_url(client.org_id), headers=headers, json={"plan": "PRO"})
    assert_error(response, 401, "UNAUTHORIZED")


async def test_an_org_token_is_not_an_admin_token(client: Client) -> None:
    response = await client.put(plan_url(client.org_id), json={"plan": "ENTERPRISE"})
    assert_error(response, 401, "UNAUTHORIZED")
    gated = await client.post(SUBS, json=subscription_body(events=["MAPPING_ERROR_RESOLVED"]))
    assert gated.status_code == 403  # still FREE


async def test_admin_routes_are_closed_when_no_admin_token_is_configured(
    settings: Settings, make_org: Callable
) -> None:
    org = await make_org()
    closed = settings.model_copy(update={"admin_token": None})
    async with running_api(closed) as http:
        for token in ("", "None", "null", "admin-test-token"):
            response = await http.put(
                plan_url(org.organizationId),
                headers={"Authorization": f"Bearer {token}"},
                json={"plan": "PRO"},
            )
            assert_error(response, 401, "UNAUTHORIZED")


async def test_unknown_org_and_bad_plan(
    http: httpx.AsyncClient, admin_auth: dict[str, str]
) -> None:
    assert_error(
        await http.put(plan_url("org_missing"), headers=admin_auth, json={"plan": "PRO"}),
        404,
        "NOT_FOUND",
    )
    for body in ({"plan": "GOLD"}, {"plan": "pro"}, {}, {"plan": None}, []):
        assert_error(
            await http.put(plan_url("org_missing"), headers=admin_auth, json=body),
            400,
            "BAD_REQUEST",
        )


async def test_audit_log_records_subscription_changes_newest_first(
    client: Client, make_client: MakeClient
) -> None:
    sub_id = await create(client, ["MAPPING_COMPLETED"])
    await client.put(f"{SUBS}/{sub_id}", json=subscription_body(name="renamed"))
    rotated = await client.post(f"{SUBS}/{sub_id}/rotate-secret")
    await client.delete(f"{SUBS}/{sub_id}")

    response = await client.get("/api/v1/audit-log")
    assert response.status_code == 200
    entries = response.json()["entries"]
    assert [e["action"] for e in entries] == [
        "subscription.deleted",
        "subscription.secret_rotated",
        "subscription.updated",
        "subscription.created",
    ]
    assert all(e["details"]["endpointId"] == sub_id for e in entries)
    assert set(entries[0]) == {"id", "action", "details", "createdAt", "updatedAt"}
    # Secrets never reach the audit log.
    assert rotated.json()["signingSecret"] not in response.text

    limited = (await client.get("/api/v1/audit-log?limit=2")).json()["entries"]
    assert [e["action"] for e in limited] == ["subscription.deleted", "subscription.secret_rotated"]

    stranger = await make_client(Plan.FREE)
    assert (await stranger.get("/api/v1/audit-log")).json() == {"entries": []}
