"""`hookpost listen` as a real process: verifies each delivery, prints it, answers honestly."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from harness.process import HOOKPOST_BIN, free_port
from libs.domain.secrets import generate_signing_secret
from libs.domain.signing import sign_v1, standard_webhooks_headers

SECRET = generate_signing_secret()
BODY = b'{"id":"del_1","eventId":"evt_1","type":"mapping.completed","data":{"rows":3}}'


@pytest.fixture
def listener() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    proc = subprocess.Popen(
        [str(HOOKPOST_BIN), "listen", "--port", str(port), "--secret", SECRET],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/webhooks"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.post(url, content=b"{}", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url, proc
    proc.terminate()
    proc.wait(10)


def output_of(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    return out


def test_listen_accepts_both_schemes_and_rejects_a_forgery(
    listener: tuple[str, subprocess.Popen[str]],
) -> None:
    url, proc = listener
    now = int(time.time())
    v1 = {"X-Webhook-Signature": sign_v1(BODY, [SECRET]), "X-Webhook-Event": "mapping.completed"}
    assert httpx.post(url, content=BODY, headers=v1).json() == {"verified": True}
    standard = standard_webhooks_headers("evt_1", now, BODY, [SECRET])
    assert httpx.post(url, content=BODY, headers=standard).status_code == 200
    # A report job's delivery (seed 004): v1's value under mappa-signature, its own envelope.
    report = b'{"id":"evt_2","type":"report.completed","createdAt":"x","data":{"jobId":"j"}}'
    mappa = {"mappa-signature": sign_v1(report, [SECRET])}
    assert httpx.post(url, content=report, headers=mappa).json() == {"verified": True}
    forged = {"X-Webhook-Signature": sign_v1(BODY, [generate_signing_secret()])}
    rejected = httpx.post(url, content=BODY, headers=forged)
    assert rejected.status_code == 400 and rejected.json() == {"verified": False}

    out = output_of(proc)
    assert "event=evt_1" in out
    assert "signature OK (v1)" in out
    assert "signature OK (standard-webhooks)" in out
    assert "event=evt_2" in out and "signature OK (mappa)" in out
    assert "signature REJECTED (no signature matches the secret)" in out
    assert '"rows": 3' in out  # pretty-printed data
