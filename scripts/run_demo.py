"""`make run`: migrate, start every service, wire a demo org to a local receiver, fire events.

Everything runs in dev mode (HOOKPOST_ENV=dev) so the receiver on 127.0.0.1 is a permitted
target. Ctrl-C stops every process this script started.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOG_DIR = ROOT / ".hookpost" / "logs"


def start(name: str, args: list[str], env: dict[str, str], to_terminal: bool = False):
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    output = None if to_terminal else (LOG_DIR / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        [str(BIN / "hookpost"), *args], env=env, stdout=output, stderr=subprocess.STDOUT
    )
    print(f"  started {name:<12} pid {proc.pid}" + ("" if to_terminal else f"  log {output.name}"))
    return proc


def wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"not ready after {timeout}s: {url} (see {LOG_DIR})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-port", type=int, default=int(os.environ.get("API_PORT", 8000)))
    parser.add_argument("--listen-port", type=int, default=int(os.environ.get("LISTEN_PORT", 9200)))
    parser.add_argument(
        "--exit-after-delivery", action="store_true", help="stop once the demo deliveries arrive"
    )
    args = parser.parse_args()

    env = {**os.environ, "HOOKPOST_ENV": os.environ.get("HOOKPOST_ENV", "dev")}
    api = f"http://127.0.0.1:{args.api_port}"
    procs: list[subprocess.Popen] = []

    def stop_all(*_: object) -> None:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        print("\nhookpost demo stopped.")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        print("hookpost: migrating the database")
        subprocess.run([str(BIN / "hookpost"), "migrate"], env=env, check=True)
        print("hookpost: starting services")
        procs.append(start("api", ["api", "--port", str(args.api_port)], env))
        procs.append(start("dispatcher", ["dispatcher"], {**env, "HOOKPOST_OPS_PORT": "9101"}))
        for n, port in ((1, 9102), (2, 9103)):
            procs.append(start(f"sender-{n}", ["sender"], {**env, "HOOKPOST_OPS_PORT": str(port)}))
        for url in (f"{api}/readyz", *(f"http://127.0.0.1:{p}/readyz" for p in (9101, 9102, 9103))):
            wait_ready(url)

        created = json.loads(
            subprocess.run(
                # PRO_MAX: every front door is open to it, agent results sinks included.
                [str(BIN / "hookpost"), "orgs", "create", "demo", "--plan", "PRO_MAX"],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        token = created["apiToken"]
        auth = {"Authorization": f"Bearer {token}"}
        receiver_url = f"http://127.0.0.1:{args.listen_port}/webhooks"
        subscription = (
            httpx.post(
                f"{api}/api/v1/webhook-subscriptions",
                headers=auth,
                json={
                    "name": "demo receiver",
                    "webhookUrl": receiver_url,
                    "events": ["MAPPING_COMPLETED", "MAPPING_ERROR_RESOLVED"],
                },
            )
            .raise_for_status()
            .json()
        )
        print("hookpost: demo receiver (hookpost listen) prints each verified delivery below")
        procs.append(
            start(
                "listen",
                [
                    "listen",
                    "--port",
                    str(args.listen_port),
                    "--secret",
                    subscription["signingSecret"],
                ],
                env,
                to_terminal=True,
            )
        )
        time.sleep(1.0)
        event = (
            httpx.post(
                f"{api}/api/v1/events",
                headers=auth,
                json={
                    "type": "mapping.completed",
                    "data": {"mappingJobId": "job_demo", "status": "COMPLETED", "rowCount": 4821},
                },
            )
            .raise_for_status()
            .json()
        )
        test = (
            httpx.post(
                f"{api}/api/v1/webhook-subscriptions/{subscription['id']}/test", headers=auth
            )
            .raise_for_status()
            .json()
        )

        print(f"""
hookpost is running.
  API + docs        {api}/docs
  organization      {created["organizationId"]}
  API token         {token}
  subscription      {subscription["id"]}  -> {receiver_url}
  fired             event {event["eventId"]} (mapping.completed), test delivery {test["deliveryId"]}
  watch attempts    curl -s -H 'Authorization: Bearer {token}' \\
                      {api}/api/v1/webhook-subscriptions/{subscription["id"]}/deliveries
  fire another      curl -s -X POST -H 'Authorization: Bearer {token}' \\
                      -H 'Content-Type: application/json' {api}/api/v1/events \\
                      -d '{{"type":"mapping.completed","data":{{"mappingJobId":"job_2"}}}}'
  service logs      {LOG_DIR}/
Ctrl-C stops everything.
""")
        sys.stdout.flush()
        if args.exit_after_delivery:
            wait_for_deliveries(api, auth, subscription["id"], expected=2)
            return
        while all(proc.poll() is None for proc in procs):
            time.sleep(0.5)
        print("a service exited; stopping the rest")
    except KeyboardInterrupt:
        pass
    finally:
        stop_all()


def wait_for_deliveries(api: str, auth: dict[str, str], sub_id: str, expected: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        deliveries = httpx.get(
            f"{api}/api/v1/webhook-subscriptions/{sub_id}/deliveries", headers=auth
        ).json()["deliveries"]
        done = [d for d in deliveries if d["status"] == "SUCCEEDED"]
        if len(done) >= expected:
            print(f"hookpost: {len(done)} deliveries SUCCEEDED")
            return
        time.sleep(0.5)
    raise SystemExit("demo deliveries did not succeed within 30 s")


if __name__ == "__main__":
    main()
