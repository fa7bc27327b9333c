"""Planted failures for the hard faults of `make chaos` (issue 17 item 7): for each fault, the
loss it could cause is planted, and the run's checks (chaos/verify.py for the rows,
chaos/judge.py for the rest) must report it. Pure functions over planted data: no service
runs here, which is the point (a checker is tested apart from the run it judges)."""

from __future__ import annotations

import pytest

from chaos.hard_faults import NOT_MADE, _channel_peer_port, down_for
from chaos.judge import (
    API_BOUND_S,
    CorpusItem,
    Judgement,
    PoisonRow,
    judge_answers,
    judge_dead_queues,
    judge_fault,
    judge_poison,
)
from chaos.load import Answer
from chaos.verify import DeliveryRow, EndpointRow
from libs.domain.endpoint_kinds import EndpointKind
from tests.chaos.test_verify import DELIVERIES, ENDPOINTS, EVENTS, MF, POSTS, dead, run

# --------------------------------------------------------------- what a broker crash can lose
# kill -9 of the single node, SIGKILL of the cluster's leader, pg_ctl -m immediate: an accepted
# event or its messages gone with the server's unflushed state.


def test_an_event_lost_with_a_crashed_server_is_lost() -> None:
    """Accepted (202), then gone: PostgreSQL's crash recovery lost a commit it had confirmed."""
    report = run(events=EVENTS[1:], deliveries=DELIVERIES[1:], posts=POSTS[2:])
    assert report.lost == 1
    assert report.examples["accepted but not stored"] == ["e1"]


def test_an_event_whose_message_died_with_the_broker_is_stuck() -> None:
    """Stored, but its message died with the killed node (or the leader's queue) and nothing
    re-drove it: never dispatched, no delivery."""
    events = [EVENTS[0].__class__("e1", "org-a", "mapping.completed", False), *EVENTS[1:]]
    report = run(events=events, deliveries=DELIVERIES[1:], posts=POSTS[2:])
    assert report.problems["event never dispatched"] == 1
    assert report.problems["no delivery row"] == 1


def test_a_delivery_whose_step_died_with_the_broker_is_stuck() -> None:
    """A partition or a crash ate the retry's message: PENDING forever."""
    pending = DELIVERIES[0].__class__("e2", "ep-2", "PENDING", 2, 2, False, False, 500)
    report = run(deliveries=[*DELIVERIES[:2], pending, DELIVERIES[3]])
    assert report.stuck == 1
    assert report.examples["delivery still PENDING"] == ["e2 → /ok/ep-2"]


# ------------------------------------------------------- the long outage: the poison window


def test_a_delivery_dead_lettered_by_an_outage_before_its_schedule_ran_is_inconsistent() -> None:
    """A long database outage burned the delivery limit: DEAD after 2 of its 4 attempts."""
    report = run(deliveries=[*DELIVERIES[:2], dead("e2", "ep-2", 2), DELIVERIES[3]])
    assert report.problems["DEAD before its last attempt"] == 1
    assert not report.ok


def test_an_event_parked_as_poison_by_an_outage_fails_the_run() -> None:
    """Work a fault pushed onto a dead queue is kept as poison: not lost, but parked, which the
    run must call a failure (a poison message is one that fails on a healthy database)."""
    judgement = Judgement()
    judge_poison(
        judgement,
        [],
        [PoisonRow("evt_real", "p.dispatcher", "delivery_limit")],
        {"evt_real"},
    )
    assert judgement.problems == {"parked: work kept as poison": 1}


def test_anything_left_on_a_dead_queue_fails_the_run() -> None:
    judgement = Judgement()
    judge_dead_queues(judgement, {"p.dead": 0, "p.dead.events": 3})
    assert judgement.examples["left on a dead queue"] == ["p.dead.events: 3"]


# ------------------------------------------------------ the memory alarm: what the api answers


def answer(outcome: str, took_s: float = 0.1, code: str | None = None, retry: str | None = None):
    return Answer(100.0, 100.0 + took_s, outcome, None, code, retry)


def test_the_alarm_allows_202s_and_shaped_503s_within_the_bound() -> None:
    judgement = Judgement()
    judge_answers(
        judgement,
        [
            answer("202", 2.6),
            answer("503", 0.2, "SERVICE_UNAVAILABLE", "5"),
            answer("ClientConnectorError", API_BOUND_S * 2),  # refused: the api was down
        ],
    )
    assert judgement.ok, judgement.problems


@pytest.mark.parametrize(
    ("planted", "kind"),
    [
        (answer("500", 0.1, "INTERNAL"), "5xx other than a shaped 503"),
        (answer("503", 0.1, None, "5"), "5xx other than a shaped 503"),  # no §4 body
        (answer("503", 0.1, "SERVICE_UNAVAILABLE", None), "5xx other than a shaped 503"),
        (answer("502", 0.1), "5xx other than a shaped 503"),
        (answer("TimeoutError", 30.0), "api never answered (hung)"),
        (answer("202", API_BOUND_S + 1), f"api answer slower than {API_BOUND_S:g} s"),
    ],
)
def test_a_hung_or_unshaped_answer_fails_the_run(planted: Answer, kind: str) -> None:
    judgement = Judgement()
    judge_answers(judgement, [answer("202"), planted])
    assert judgement.problems == {kind: 1}


# ----------------------------------------------- partitions and every fault: the probe, the plan


def test_a_probe_that_never_recovers_fails_the_run() -> None:
    judgement = Judgement()
    judge_fault(judgement, "partition_postgres", None, [])
    judge_fault(judgement, "partition_rabbitmq", 3.2, [])
    assert judgement.examples == {"probe never recovered": ["partition_postgres"]}


@pytest.mark.parametrize(
    "problem",
    [
        "sender-1 never held an unacknowledged delivery",  # the sender kill tested nothing
        "evt_1 was published before the kill",  # the api kill missed its window
        "the held event evt_1 never reached its receiver",  # the outbox never re-drove it
        "a work queue is not replicated on every node: {'p.sender': 1}",
        "only 3 of 5 settled within 120 s",  # the poison corpus not accounted for in time
    ],
)
def test_a_fault_not_made_as_planned_fails_the_run(problem: str) -> None:
    judgement = Judgement()
    judge_fault(judgement, "some_fault", 1.0, [problem])
    assert judgement.problems == {"fault not made as planned": 1}
    assert NOT_MADE.strip()  # the harms mark such notes with it (faults.run_fault strips it)


def test_the_api_killed_before_its_publish_leaves_an_event_that_must_be_delivered() -> None:
    """The held event was committed but never answered: it is not in `accepted`, yet the
    database holds it, so it is checked like every other (undispatched → stuck)."""
    held = EVENTS[0].__class__("e5", "org-a", "mapping.completed", False)
    report = run(events=[*EVENTS, held])
    assert report.problems["event never dispatched"] == 1
    assert report.problems["no delivery row"] == 1


def test_the_sender_kill_reads_the_clients_port_from_the_channel_name() -> None:
    assert _channel_peer_port("127.0.0.1:54321 -> 127.0.0.1:5672 (1)") == 54321
    assert _channel_peer_port("garbage") is None


# ------------------------------------------------------------------------ the poison corpus

CORPUS = [
    CorpusItem("malformed JSON", "m-1", "poison"),
    CorpusItem("unknown organization", "evt_u", "poison"),
    CorpusItem("oversized body", "evt_o", "poison-or-event"),
    CorpusItem("wrong field types", "m-2", "poison"),
    CorpusItem("duplicate message id", "evt_d", "duplicate"),
]
KEPT = [PoisonRow(m, "p.dispatcher", "rejected") for m in ("m-1", "evt_u", "m-2")]


def test_a_corpus_accounted_for_passes() -> None:
    judgement = Judgement()
    judge_poison(judgement, CORPUS, KEPT, {"evt_o", "evt_d", "evt_other"})
    assert judgement.ok, judgement.examples


@pytest.mark.parametrize(
    ("poison", "events", "missing"),
    [
        (KEPT[1:], {"evt_o", "evt_d"}, "malformed JSON"),  # dropped silently
        (KEPT, {"evt_d"}, "oversized body"),  # neither stored nor kept
        (KEPT, {"evt_o"}, "duplicate message id"),  # the original event is gone
        (KEPT, {"evt_o", "evt_d", "evt_u"}, "unknown organization"),  # stored AND kept
        (
            [*KEPT, PoisonRow("evt_d", "p.dispatcher", "rejected")],
            {"evt_o", "evt_d"},
            "duplicate message id",  # a duplicate is not poison
        ),
    ],
)
def test_a_corpus_message_not_where_it_must_be_fails_the_run(
    poison: list[PoisonRow], events: set[str], missing: str
) -> None:
    judgement = Judgement()
    judge_poison(judgement, CORPUS, poison, events)
    assert judgement.problems == {"poison corpus message unaccounted for": 1}
    assert judgement.examples["poison corpus message unaccounted for"][0].startswith(missing)


def test_the_api_holds_an_event_before_its_publish_only_in_dev() -> None:
    """The chaos hook (Settings.chaos_hold_publish_key) can never hold a production event."""
    from libs.infra.settings import Settings

    assert Settings(env="prod", chaos_hold_publish_key="k").chaos_hold_key is None
    assert Settings(env="dev", chaos_hold_publish_key="k").chaos_hold_key == "k"
    assert Settings(env="dev").chaos_hold_key is None


# ------------------------------------- an endpoint disabled by its answers (410): PARKED rows

GONE = EndpointRow(
    "ep-g", "org-a", EndpointKind.DESTINATION.value, (MF,), False, "/gone/g", parks=True
)


def parked(event: str, ep: str, attempts: int = 0) -> DeliveryRow:
    return DeliveryRow(
        event, ep, "PARKED", attempts, attempts, False if attempts else None, False, 410
    )


def test_a_disabled_endpoints_parked_deliveries_are_expected_and_settled() -> None:
    report = run(endpoints=[*ENDPOINTS, GONE], deliveries=[*DELIVERIES, parked("e2", "ep-g", 1)])
    assert report.ok, (report.problems, dict(report.examples))
    assert report.expected_deliveries == 5


def test_a_disabled_endpoints_missing_delivery_is_lost() -> None:
    """Its events are kept PARKED, not dropped: a missing row is a loss."""
    report = run(endpoints=[*ENDPOINTS, GONE])
    assert report.examples["no delivery row"] == ["e2 → /gone/g"]


def test_parked_where_nothing_parks_is_inconsistent() -> None:
    report = run(deliveries=[*DELIVERIES[:2], parked("e2", "ep-2"), DELIVERIES[3]])
    assert report.problems["PARKED for an endpoint that does not park"] == 1


async def test_an_outage_stops_then_starts_and_reports_how_long_it_was_down() -> None:
    calls: list[str] = []
    down = await down_for(lambda: calls.append("stop"), lambda: calls.append("start"), 0.05)
    assert calls == ["stop", "start"] and 0.05 <= down < 5
