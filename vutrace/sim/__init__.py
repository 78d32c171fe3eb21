"""vutrace's own reference vhost-user peers: a back-end, a front-end, migration, named scenarios.

They talk over real unix sockets with real FDs (memfd guest RAM, eventfds,
socketpairs, pipes), follow QEMU's message order and flags, check everything
they receive against ``dissectors.spec``, and can misbehave on purpose so the
conformance checks have something to find. In-process use::

    from vutrace.sim import Backend, run_migration, run_scenario
    result = run_scenario("migrate")            # back-ends as threads
    print("\\n".join(result.lines()))

    with Backend("/tmp/src.sock").start() as src, Backend("/tmp/dst.sock").start() as dst:
        migration = run_migration(src.path, dst.path, queue_pairs=2)

The ``vutrace sim`` command wraps the same classes in real processes.
"""

import logging

from vutrace.sim.backend import Backend, BackendOptions
from vutrace.sim.errors import (
    GuestError,
    PeerClosed,
    PeerTimeout,
    ProtocolViolation,
    Refused,
    SimError,
    TransferFailed,
)
from vutrace.sim.frontend import Frontend, FrontendOptions
from vutrace.sim.guest import Guest
from vutrace.sim.migration import MigrationPlan, MigrationResult, run_migration
from vutrace.sim.routing import ProxyProcesses, ProxyThreads, direct
from vutrace.sim.scenarios import SCENARIOS, Scenario, ScenarioParams, ScenarioResult, run_scenario

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "SCENARIOS",
    "Backend",
    "BackendOptions",
    "Frontend",
    "FrontendOptions",
    "Guest",
    "GuestError",
    "MigrationPlan",
    "MigrationResult",
    "PeerClosed",
    "PeerTimeout",
    "ProtocolViolation",
    "ProxyProcesses",
    "ProxyThreads",
    "Refused",
    "Scenario",
    "ScenarioParams",
    "ScenarioResult",
    "SimError",
    "TransferFailed",
    "direct",
    "run_migration",
    "run_scenario",
]
