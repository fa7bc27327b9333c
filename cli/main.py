"""`hookpost`: the one command that migrates, runs each service and administers orgs."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from libs.domain.plans import Plan
from libs.infra.settings import get_settings


def _migrate(_: argparse.Namespace) -> None:
    from libs.infra.db.migrate import migrate

    applied = asyncio.run(migrate(get_settings().database_url))
    print(json.dumps({"applied": applied}))


def _api(args: argparse.Namespace) -> None:
    from services.api.main import run

    run(host=args.host, port=args.port)


def _dispatcher(_: argparse.Namespace) -> None:
    from services.dispatcher.main import run

    run()


def _sender(_: argparse.Namespace) -> None:
    from services.sender.main import run

    run()


def _orgs_create(args: argparse.Namespace) -> None:
    from libs.worker.runtime import connect_database
    from services.api.organizations.service import create_organization

    async def create() -> str:
        # Waits (bounded) for a Postgres that is restarting or out of connections.
        pool = await connect_database(get_settings().database_url, max_size=1)
        try:
            created = await create_organization(pool, args.name, Plan(args.plan))
        finally:
            await pool.close()
        return created.model_dump_json()

    print(asyncio.run(create()))


def _orgs_erase(args: argparse.Namespace) -> None:
    from libs.worker.runtime import connect_database
    from services.api.organizations.service import erase_organization

    async def erase() -> dict[str, int] | None:
        pool = await connect_database(get_settings().database_url, max_size=1)
        try:
            return await erase_organization(pool, args.organization_id, requested_by="cli")
        finally:
            await pool.close()

    erased = asyncio.run(erase())
    if erased is None:
        sys.exit(f"no organization {args.organization_id!r}")
    print(json.dumps({"organizationId": args.organization_id, "erased": erased}))


def _poison_list(_: argparse.Namespace) -> None:
    from libs.worker import poison
    from libs.worker.runtime import connect_database

    async def listed() -> list[dict[str, object]]:
        pool = await connect_database(get_settings().database_url, max_size=1)
        try:
            return [vars(row) for row in await poison.waiting(pool)]
        finally:
            await pool.close()

    for row in asyncio.run(listed()):
        print(json.dumps(row, default=str))


def _poison_replay(args: argparse.Namespace) -> None:
    from libs.worker import poison
    from libs.worker.runtime import connect_database

    if not args.all and not args.ids:
        sys.exit("name the poison messages to replay (ids from `hookpost poison list`), or --all")

    async def replayed() -> int:
        settings = get_settings()
        pool = await connect_database(settings.database_url, max_size=1)
        try:
            return await poison.replay(pool, settings.amqp_url, None if args.all else args.ids)
        finally:
            await pool.close()

    print(json.dumps({"replayed": asyncio.run(replayed())}))


def _recover(args: argparse.Namespace) -> None:
    from datetime import datetime

    from libs.domain.ids import IdPrefix
    from libs.infra.broker.topology import Topology
    from libs.worker.runtime import connect_database
    from services.api.broker import BrokerLink
    from services.api.deliveries.recovery import organization_of, recover_endpoint
    from services.api.errors import ApiError
    from services.api.mapping_jobs import service as mapping_jobs
    from services.api.reports import service as reports
    from services.api.state import ApiState

    # A per-job webhook is known by its job (a report job's answers never show the
    # webhook's id): a job's id names its webhook.
    webhook_of = {
        IdPrefix.MAPPING_JOB.value: mapping_jobs.webhook_of,
        IdPrefix.REPORT_JOB.value: reports.webhook_of,
    }.get(args.endpoint_id.partition("_")[0])
    try:
        since = datetime.fromisoformat(args.since)
    except ValueError:
        sys.exit(f"--since {args.since!r} is no RFC 3339 time, e.g. 2026-12-01T00:00:00Z")
    if since.tzinfo is None:
        sys.exit("--since needs its offset (RFC 3339), e.g. 2026-12-01T00:00:00Z")

    async def recovered() -> int:
        settings = get_settings()
        pool = await connect_database(settings.database_url, max_size=2)
        topology = Topology.of(settings)
        link = BrokerLink(settings.amqp_url, topology)
        link.start()
        state = ApiState(settings=settings, pool=pool, broker=link, topology=topology)
        try:
            if not await link.wait_first_attempt():
                sys.exit("the message broker is unreachable: nothing was recovered")
            endpoint_id = args.endpoint_id
            if webhook_of is not None:
                endpoint_id = await webhook_of(pool, endpoint_id)
            org_id = await organization_of(pool, endpoint_id)
            return await recover_endpoint(state, org_id, endpoint_id, since)
        except ApiError as exc:
            sys.exit(str(exc))
        finally:
            await state.outbox.close()
            await link.stop()
            await pool.close()

    print(json.dumps({"deliveries": asyncio.run(recovered())}))


def _listen(args: argparse.Namespace) -> None:
    from libs.sdk.listen import listen

    listen(args.host, args.port, args.secret, args.tolerance)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hookpost", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("migrate", help="apply database migrations").set_defaults(func=_migrate)

    api = commands.add_parser("api", help="run the HTTP API")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.set_defaults(func=_api)

    commands.add_parser("dispatcher", help="run the dispatcher").set_defaults(func=_dispatcher)
    commands.add_parser("sender", help="run a sender replica").set_defaults(func=_sender)

    listen = commands.add_parser("listen", help="receive, verify and print deliveries locally")
    listen.add_argument("--host", default="127.0.0.1")
    listen.add_argument("--port", type=int, default=9200)
    listen.add_argument(
        "--secret", action="append", required=True, help="signing secret (repeat while rotating)"
    )
    listen.add_argument("--tolerance", type=int, default=300, help="max signature age, seconds")
    listen.set_defaults(func=_listen)

    poison = commands.add_parser("poison", help="dead-lettered messages kept as poison")
    poison_commands = poison.add_subparsers(dest="poison_command", required=True)
    poison_commands.add_parser("list", help="the ones waiting, one JSON line each").set_defaults(
        func=_poison_list
    )
    replay = poison_commands.add_parser("replay", help="publish them back where they came from")
    replay.add_argument("ids", nargs="*", type=int, help="ids from `hookpost poison list`")
    replay.add_argument("--all", action="store_true", help="every one waiting")
    replay.set_defaults(func=_poison_replay)

    recover = commands.add_parser(
        "recover",
        help="re-send an endpoint's PARKED, FAILED and DEAD deliveries since a time",
    )
    recover.add_argument(
        "endpoint_id",
        help="any door's endpoint id (sub_…, dest_…, ewh_…, ds_…, jwh_…, rwh_…), or a mapping"
        " or report job's id (job_…, rjob_…) for that job's webhook",
    )
    recover.add_argument("--since", required=True, help="RFC 3339, e.g. 2026-12-01T00:00:00Z")
    recover.set_defaults(func=_recover)

    orgs = commands.add_parser("orgs", help="administer organizations")
    orgs_commands = orgs.add_subparsers(dest="orgs_command", required=True)
    create = orgs_commands.add_parser("create", help="create an org and print its API token")
    create.add_argument("name")
    create.add_argument("--plan", choices=[p.value for p in Plan], default=Plan.FREE.value)
    create.set_defaults(func=_orgs_create)
    erase = orgs_commands.add_parser(
        "erase", help="erase an org and every row of its data (audited)"
    )
    erase.add_argument("organization_id")
    erase.set_defaults(func=_orgs_erase)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])
