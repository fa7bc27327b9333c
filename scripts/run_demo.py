"""`make run`: migrate, start every service, wire a demo org to a local receiver, fire events.

Everything runs in dev mode (HOOKPOST_ENV=dev) so the receiver on 127.0.0.1 is a permitted
target. Ctrl-C stops every process this script started.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time

import httpx

from harness.orgs import create_org
from harness.process import HOOKPOST_BIN, ROOT, Process
from harness.services import hookpost

LOG_DIR = ROOT / ".hookpost" / "logs"


def start(proc: Process) -> Process:
    """Started, not waited for: every service comes up at once, then all are waited for."""
    proc.start(ready_path=None)
    where = "" if proc.log_path is None else f"  log {proc.log_path}"
    print(f"  started {proc.name:<12} pid {proc.pid}{where}")
    return proc


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
    procs: list[Process] = []

    def stop_all(*_: object) -> None:
        for proc in reversed(procs):
            if proc.running:
                proc.signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        print("\nhookpost demo stopped.")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        print("hookpost: migrating the database")
        subprocess.run([str(HOOKPOST_BIN), "migrate"], env=env, check=True)
        print("hookpost: starting services")
        services = [
            hookpost("api", "api", env, LOG_DIR / "api.log", port=args.api_port),
            hookpost("dispatcher", "dispatcher", env, LOG_DIR / "dispatcher.log", port=9101),
            *(
                hookpost(f"sender-{n}", "sender", env, LOG_DIR / f"sender-{n}.log", port=port)
                for n, port in ((1, 9102), (2, 9103))
            ),
        ]
        procs.extend(start(proc) for proc in services)
        for proc in services:
            try:
                # generous: a first start compiles every module, slow on a busy machine
                proc.wait_ready("/readyz", timeout=120.0)
            except (RuntimeError, TimeoutError) as exc:
                raise SystemExit(f"{exc}\n(see {LOG_DIR})") from exc

        # PRO_MAX: every front door is open to it, agent results sinks included.
        created = create_org(env, "demo", "PRO_MAX")
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
        listen = Process(
            "listen",
            [str(HOOKPOST_BIN), "listen", "--port", str(args.listen_port), "--secret",
             subscription["signingSecret"]],
            env=env,
            port=args.listen_port,
            log_path=None,  # its verified deliveries are the demo: on the terminal
        )  # fmt: skip
        procs.append(start(listen))
        wait_listening(args.listen_port)  # an event fired before it listens waits for a retry
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

        # One click into the demo org's delivery pages (a day's portal link); the full
        # dashboard, Team Settings included, takes the API token on its sign-in page.
        portal = (
            httpx.post(f"{api}/api/v1/portal-links", headers=auth, json={"expiresInSeconds": 86400})
            .raise_for_status()
            .json()
        )
        portal_url = api + portal["url"][portal["url"].index("/app/") :]
        print(f"""
hookpost is running.
  Dashboard         {api}/app  (sign in with the API token below)
  one-click portal  {portal_url}
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
        while all(proc.running for proc in procs):
            time.sleep(0.5)
        print("a service exited; stopping the rest")
    except KeyboardInterrupt:
        pass
    finally:
        stop_all()


def wait_listening(port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the demo receiver did not listen on port {port} within {timeout_s:.0f} s")


def wait_for_deliveries(api: str, auth: dict[str, str], sub_id: str, expected: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        deliveries = httpx.get(
            f"{api}/api/v1/webhook-subscriptions/{sub_id}/deliveries", headers=auth
        ).json()["deliveries"]
        done = [d for d in deliveries if d["status"] == "SUCCEEDED"]
        if len(done) >= expected:
            print(f"hookpost: {len(done)} deliveries SUCCEEDED")
            return
        time.sleep(0.5)
    raise SystemExit("demo deliveries did not succeed within 60 s")


if __name__ == "__main__":
    main()
