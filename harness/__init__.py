"""What tests, benchmarks and chaos runs stand hookpost up with (not installed: importable
from the repository's root, like `benchmarks` and `chaos`).

    process.py    one subprocess: its log, readiness, SIGTERM/SIGKILL/SIGSTOP, CPU and RSS
    services.py   `hookpost <service>` as a Process: which port, which environment
    stack.py      api + dispatchers + senders on one environment: start, stop, restart, add
    env.py        a database and broker prefix of one's own (create, migrate, drop, clean)
    broker.py     a prefix's queues and exchanges: publish events, peek, delete
    orgs.py       organizations through `hookpost orgs create`, as an operator makes them
    metrics.py    one sample out of a service's /metrics
    waiting.py    poll until a condition holds
    receiver/     the recording HTTP receiver, in-process or as its own process
"""
