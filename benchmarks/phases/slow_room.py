"""What the dispatcher's first-attempt room holds against a slow endpoint (the probe's
--slow-room): fan-out 10 to an endpoint that answers after 2 s, open loop at a rate;
attempts made by the dispatcher and handed to the senders (its /metrics), its peak RSS,
and whether every delivery arrived."""

from __future__ import annotations

from benchmarks import load
from benchmarks.config import FANOUT
from benchmarks.measure import RssSamples
from benchmarks.results import RssRange, SlowRoom
from benchmarks.rig import Pipeline
from harness.metrics import sample


async def measure(pipe: Pipeline, rate: float, seconds: float = 15.0) -> SlowRoom:
    rig, dispatcher = pipe.rig, pipe.stack.dispatcher
    rss_before = dispatcher.rss_mb()
    rss = RssSamples([dispatcher]).start()
    base = (await rig.arrivals.refresh()).get("slower", 0)
    sent = load.Sent()
    await load.open_loop(
        rig.session, pipe.api_url, pipe.token("slower"),
        rate_per_s=rate, duration_s=seconds, max_open=200, sent=sent,
    )  # fmt: skip
    arrived = await rig.wait_arrivals("slower", base + len(sent.events) * FANOUT, timeout=90)
    await rss.stop()
    async with rig.session.get(dispatcher.url("/metrics")) as response:
        metrics = await response.text()
    return SlowRoom(
        events=len(sent.events),
        request_errors=sent.errors,
        all_arrived=arrived,
        made_by_dispatcher=sample(metrics, "hookpost_dispatcher_first_attempts_total"),
        handed_to_senders=sample(metrics, "hookpost_dispatcher_deliveries_published_total"),
        dispatcher_rss_mb=RssRange(
            before=rss_before, max=max(rss.samples[dispatcher.name], default=rss_before)
        ),
    )
