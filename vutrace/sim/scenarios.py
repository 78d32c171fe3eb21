"""Named scenarios: each one a conversation from the spec, its front-end part and the back-ends it needs.

``SCENARIOS`` lists them (the demo, the notebooks and ``vutrace sim scenarios``
read it). ``run_scenario(name)`` runs one in-process: back-ends in threads on
fresh sockets (optionally routed through proxies), the front-end in the
calling thread. ``Scenario.frontend(context)`` runs only the front-end part
against back-ends started elsewhere (``vutrace sim frontend``); the
``backend_flags`` say how to start them. A result is ``ok`` when the run went
the way the scenario is designed to go, including the designed failures.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dissectors.records import decode
from dissectors.spec import ProtocolFeature as PF
from vutrace.sim.backend import Backend, BackendOptions
from vutrace.sim.errors import PeerClosed, PeerTimeout, ProtocolViolation, Refused, SimError, TransferFailed
from vutrace.sim.frontend import FRONTEND_PROTOCOL_FEATURES, Frontend, FrontendOptions
from vutrace.sim.guest import Guest
from vutrace.sim.migration import MigrationPlan, MigrationResult, run_migration
from vutrace.sim.routing import Route, direct
from vutrace.sim.transfer import MigrationStream
from vutrace.sim.wire import Transcript


@dataclass(frozen=True)
class ScenarioParams:
    queue_pairs: int = 1
    ring_size: int = 64
    requests: int = 16
    state_size: int = 4096
    """Payload bytes of the back-end's device state."""
    seed: int = 1
    reply_ack: bool = True
    mem_slots: bool = True
    """Use CONFIGURE_MEM_SLOTS (ADD_MEM_REG) when offered; off: SET_MEM_TABLE."""
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if not 1 <= self.queue_pairs <= 8:
            raise ValueError(f"queue pairs {self.queue_pairs}: 1 to 8 are supported")
        if not 2 <= self.ring_size <= 32768 or self.ring_size & (self.ring_size - 1):
            raise ValueError(f"ring size {self.ring_size}: a power of two from 2 to 32768")
        if self.requests < 0 or self.state_size < 0 or self.timeout <= 0:
            raise ValueError("requests and state size must be >= 0, the timeout > 0")

    def frontend_options(self, drop: int = 0) -> FrontendOptions:
        mask = FRONTEND_PROTOCOL_FEATURES & ~drop
        if not self.reply_ack:
            mask &= ~(1 << PF.REPLY_ACK)
        if not self.mem_slots:
            mask &= ~(1 << PF.CONFIGURE_MEM_SLOTS)
        return FrontendOptions(timeout=self.timeout, protocol_features=mask)

    def backend_options(self, overrides: dict) -> BackendOptions:
        return BackendOptions(state_size=self.state_size, seed=self.seed, timeout=self.timeout, **overrides)


@dataclass
class ScenarioContext:
    params: ScenarioParams
    sockets: list[Path]
    """Where the front-end connects, one per back-end (source first)."""
    transcript: Transcript = field(default_factory=Transcript)


@dataclass
class ScenarioResult:
    scenario: str
    ok: bool
    outcome: str
    error: str | None = None
    checks: list[str] = field(default_factory=list)
    """What was verified, one line each; a line starting with ``FAILED`` made the run not ok."""
    migration: MigrationResult | None = None
    transcript: Transcript = field(default_factory=Transcript)
    backend_events: list[list[tuple[str, str]]] = field(default_factory=list)

    def check(self, condition: bool, text: str) -> None:
        self.checks.append(text if condition else f"FAILED {text}")
        self.ok = self.ok and condition

    def lines(self) -> list[str]:
        head = f"{self.scenario}: {'ok' if self.ok else 'NOT OK'} - {self.outcome}"
        out = [head] + ([f"  error: {self.error}"] if self.error else [])
        out += [f"  {line}" for line in self.checks]
        if self.migration:
            out += [f"  {line}" for line in self.migration.summary()]
        for index, events in enumerate(self.backend_events):
            out += [f"  back-end {index} {level}: {text}" for level, text in events if level != "info"]
        return out


FrontendPart = Callable[[ScenarioContext], ScenarioResult]
BackendCheck = Callable[[list[Backend], ScenarioResult], None]


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    spec: str
    """The spec sections the scenario exercises."""
    frontend: FrontendPart
    backends: Callable[[ScenarioParams], tuple[dict, ...]] = lambda p: ({},)
    """BackendOptions overrides per back-end (one, or source and destination)."""
    defaults: dict = field(default_factory=dict)
    """ScenarioParams this scenario changes unless the caller sets them."""
    backend_check: BackendCheck | None = None
    """Extra checks on in-process back-ends after the run."""

    @property
    def sides(self) -> tuple[str, ...]:
        return ("source", "destination") if len(self.backends(ScenarioParams())) == 2 else ("backend",)

    def params(self, **given: object) -> ScenarioParams:
        values = {**self.defaults, **{k: v for k, v in given.items() if v is not None}}
        return ScenarioParams(**values)

    def backend_flags(self, params: ScenarioParams) -> list[list[str]]:
        """``vutrace sim backend`` options each back-end needs for this scenario."""
        size = [] if params.state_size == BackendOptions().state_size else ["--state-size", str(params.state_size)]
        return [size + _flags(overrides) for overrides in self.backends(params)]


def _flags(overrides: dict) -> list[str]:
    flags: list[str] = []
    for fault in sorted(overrides.get("faults", ())):
        flags += ["--fault", fault]
    for key in ("wrong_reply_flags", "missing_reply", "disconnect_after"):
        if overrides.get(key) is not None:
            flags += [f"--{key.replace('_', '-')}", str(overrides[key])]
    return flags


# Building blocks


@contextlib.contextmanager
def _frontend(ctx: ScenarioContext, socket_index: int = 0, drop: int = 0) -> Iterator[Frontend]:
    p = ctx.params
    guest = Guest(p.queue_pairs, p.ring_size, p.seed)
    frontend = Frontend(ctx.sockets[socket_index], guest, p.frontend_options(drop), transcript=ctx.transcript)
    try:
        yield frontend
    finally:
        frontend.close()
        guest.close()


def _started(frontend: Frontend, requests: int, result: ScenarioResult) -> None:
    """Set-up, start, and a running phase with verified responses."""
    frontend.connect().setup()
    frontend.start()
    done = frontend.exchange(requests)
    result.check(done == requests, f"{done} requests answered through the rings, every response verified")


def _expect(result: ScenarioResult, error: SimError, kind: type[SimError], contains: str) -> None:
    result.error = str(error)
    result.check(
        isinstance(error, kind) and contains in str(error),
        f"the front-end reported {kind.__name__} containing {contains!r}",
    )


def _backend_problem(index: int, contains: str) -> BackendCheck:
    def check(backends: list[Backend], result: ScenarioResult) -> None:
        found = any(contains in text for text in backends[index].problems())
        result.check(found, f"back-end {index} reported a problem containing {contains!r}")

    return check


# Front-end parts


def _basic(ctx: ScenarioContext) -> ScenarioResult:
    result = ScenarioResult("", True, "set-up, start, running phase, stop")
    with _frontend(ctx) as frontend:
        _started(frontend, ctx.params.requests, result)
        if frontend.negotiation.has(PF.CONFIG) and frontend.responder is not None:
            changed = frontend.responder.changed.wait(ctx.params.timeout)
            result.check(changed, "the back-end sent BACKEND_CONFIG_CHANGE_MSG on its channel; the front-end replied")
            generation = frontend.read_config()
            result.check(generation >= 1, f"GET_CONFIG afterwards shows config generation {generation}")
        bases = frontend.stop()
        expected = [q.avail_idx for q in frontend.guest.queues]
        result.check(bases == expected, f"GET_VRING_BASE returned {bases} (= what the driver made available)")
        result.check(not frontend.problems, "no spec problems on the back-end channel")
    return result


def _reconnect(ctx: ScenarioContext) -> ScenarioResult:
    result = ScenarioResult("", True, "the back-end dropped the connection; the front-end reconnected and replayed")
    requests = ctx.params.requests
    with _frontend(ctx) as frontend:
        frontend.connect().setup()
        frontend.start()
        try:
            frontend.exchange(requests)
            result.check(False, "the back-end closed the connection during the running phase")
        except PeerClosed as closed:
            result.check(True, f"the front-end noticed: {closed}")
        outstanding = frontend.guest.outstanding
        used = [q.used_idx() for q in frontend.guest.queues]
        frontend.reconnect()
        replayed = [decode(r.data)["num"] for r in ctx.transcript.rows() if r.request == "SET_VRING_BASE"]
        result.check(
            replayed[-len(used) :] == used,
            f"after reconnecting, SET_VRING_BASE replayed the used indices at the disconnect {used}",
        )
        frontend.exchange(requests)
        total = frontend.guest.completed
        result.check(
            total == 2 * requests,
            f"{outstanding} requests outstanding at the disconnect were answered after it; {total} in all",
        )
        result.check(frontend.connections == 2, "two connections")
        frontend.stop()
    return result


def _frontend_dies(ctx: ScenarioContext) -> ScenarioResult:
    result = ScenarioResult("", True, "the front-end died in the middle of the state transfer")
    with _frontend(ctx) as frontend:
        _started(frontend, ctx.params.requests, result)
        frontend.stop()
        with MigrationStream() as stream:
            try:
                frontend.save_state(stream, abort_after=min(64 * 1024, max(1, ctx.params.state_size // 4)))
                result.check(False, "the front-end gave up the transfer")
            except TransferFailed as error:
                _expect(result, error, TransferFailed, "gave up")
    return result


def _backend_saw_abort(backends: list[Backend], result: ScenarioResult) -> None:
    backend = backends[0]
    problems = backend.problems()
    infos = [e.text for e in backend.events if e.level == "info"]
    result.check(
        any("reading end was closed" in t for t in problems), "the back-end's writer saw EPIPE and reported it"
    )
    result.check(
        any("during a device-state transfer" in t for t in infos), "the back-end reported the disconnect cleanly"
    )


def _migrate(plan: Callable[[ScenarioParams], MigrationPlan] = lambda p: MigrationPlan(requests=p.requests)):
    def run(ctx: ScenarioContext) -> ScenarioResult:
        p = ctx.params
        migration = run_migration(
            ctx.sockets[0],
            ctx.sockets[1],
            queue_pairs=p.queue_pairs,
            ring_size=p.ring_size,
            seed=p.seed,
            options=p.frontend_options(),
            plan=plan(p),
            transcript=ctx.transcript,
        )
        return ScenarioResult("", migration.ok, migration.outcome, migration.error, migration=migration)

    return run


def _migrated(channel: str = "frontend") -> Callable[[ScenarioResult], None]:
    def check(result: ScenarioResult) -> None:
        m = result.migration
        assert m is not None
        result.check(m.ok, "migrated; requests in flight and new ones were processed on the destination")
        result.check(
            bool(m.source_bases) and m.source_bases == m.destination_bases,
            "destination SET_VRING_BASE = source GET_VRING_BASE",
        )
        result.check(m.logged_pages > 0, "the source back-end marked dirty pages in the log")
        if m.save and m.load:
            result.check(m.save.channel == channel, f"SAVE used the channel of the {channel}")
            result.check(m.load.channel == channel, f"LOAD used the channel of the {channel}")

    return check


def _state_only(result: ScenarioResult) -> None:
    m = result.migration
    assert m is not None
    result.check(m.ok, "migrated: set-up, suspension, SAVE + CHECK on the source, LOAD + CHECK on the destination")
    result.check(m.source_bases == m.destination_bases, "destination SET_VRING_BASE = source GET_VRING_BASE")
    result.check(m.save is not None and m.save.bytes == (m.load.bytes if m.load else -1), "LOAD got every SAVE byte")


def _resumed(contains: str) -> Callable[[ScenarioResult], None]:
    def check(result: ScenarioResult) -> None:
        m = result.migration
        assert m is not None
        result.ok = True
        result.check(m.outcome == "failed; the source resumed", "the migration failed and the source resumed")
        result.check(contains in (m.error or ""), f"the front-end reported {contains!r}")
        result.check(m.requests.get("after resuming the source", 0) > 0, "requests ran again on the source")

    return check


def _not_logged(result: ScenarioResult) -> None:
    m = result.migration
    assert m is not None
    result.ok = True
    result.check(not m.ok and m.logged_pages == 0, "the source back-end logged no dirty page")
    result.check("missing from the dirty log" in (m.error or ""), "the guest found stale used rings in the copy")


def _with(run: FrontendPart, verify: Callable[[ScenarioResult], None]) -> FrontendPart:
    def both(ctx: ScenarioContext) -> ScenarioResult:
        result = run(ctx)
        verify(result)
        return result

    return both


def _same_state(backends: list[Backend], result: ScenarioResult) -> None:
    saved = [t for t in backends[0].transfers if t.direction == "SAVE"]
    loaded = [t for t in backends[1].transfers if t.direction == "LOAD"]
    sha = result.migration.state_sha256 if result.migration else ""
    result.check(
        bool(saved and loaded) and saved[-1].sha256 == loaded[-1].sha256 == sha,
        "the state arrived intact (SHA-256 equal at source back-end, front-end and destination back-end)",
    )


def _violation(steps: Callable[[Frontend, ScenarioResult], None], kind: type[SimError], contains: str, drop: int = 0):
    """A front-end run that must end in a specific, clearly reported error."""

    def run(ctx: ScenarioContext) -> ScenarioResult:
        result = ScenarioResult("", True, f"detected: {kind.__name__}")
        with _frontend(ctx, drop=drop) as frontend:
            try:
                steps(frontend, result)
                result.outcome = f"nothing detected: the run should have ended in {kind.__name__}"
                result.check(False, f"the run should have ended in {kind.__name__}")
            except SimError as error:
                _expect(result, error, kind, contains)
        return result

    return run


def _run_then_stop(frontend: Frontend, result: ScenarioResult) -> None:
    _started(frontend, 4, result)
    frontend.stop()


def _run_then_save(stop: bool) -> Callable[[Frontend, ScenarioResult], None]:
    def steps(frontend: Frontend, result: ScenarioResult) -> None:
        _started(frontend, 4, result)
        if stop:
            frontend.stop()
        with MigrationStream() as stream:
            frontend.save_state(stream)

    return steps


def _corrupted(p: ScenarioParams) -> MigrationPlan:
    return MigrationPlan(requests=p.requests, corrupt=True)


_SCENARIOS = (
    Scenario(
        "basic",
        "Set-up, start, running phase with the back-end channel, stop",
        "Communication; Ring states; Back-end communication; REPLY_ACK",
        _basic,
    ),
    Scenario(
        "no-reply-ack",
        "The same without REPLY_ACK: no NEED_REPLY, GET_FEATURES barriers where QEMU must wait",
        "VHOST_USER_PROTOCOL_F_REPLY_ACK; Communication",
        _basic,
        defaults={"reply_ack": False},
    ),
    Scenario(
        "set-mem-table",
        "Memory as one SET_MEM_TABLE (one FD per region) instead of ADD_MEM_REG",
        "Memory access; VHOST_USER_SET_MEM_TABLE",
        _basic,
        defaults={"mem_slots": False},
    ),
    Scenario(
        "multiqueue",
        "Eight queue pairs (16 rings), GET_QUEUE_NUM honoured",
        "Multiple queue support",
        _basic,
        defaults={"queue_pairs": 8, "requests": 64},
    ),
    Scenario(
        "reconnect",
        "The back-end drops the connection mid-session; the front-end reconnects and replays the ring bases",
        "Communication (reconnection); Ring states; VHOST_USER_SET_VRING_BASE",
        _reconnect,
        backends=lambda p: ({"disconnect_after": max(1, p.requests // 2)},),
    ),
    Scenario(
        "migrate",
        "Live migration with back-end state over the front-end's pipes",
        "Migration; Migrating back-end state; Suspended device state",
        _with(_migrate(), _migrated()),
        backends=lambda p: ({}, {}),
        backend_check=_same_state,
    ),
    Scenario(
        "migrate-state-only",
        "Live migration without device requests, for back-ends that are not the reference device (e.g. virtiofsd)",
        "Migration; Migrating back-end state; Suspended device state",
        _with(_migrate(lambda p: MigrationPlan(requests=0, in_flight=0)), _state_only),
        backends=lambda p: ({}, {}),
        backend_check=_same_state,
    ),
    Scenario(
        "migrate-own-channel",
        "The back-ends provide their own channel in the SET_DEVICE_STATE_FD reply (0x0 + FD)",
        "VHOST_USER_SET_DEVICE_STATE_FD",
        _with(_migrate(), _migrated("backend")),
        backends=lambda p: ({"faults": frozenset({"own-channel"})}, {"faults": frozenset({"own-channel"})}),
        backend_check=_same_state,
    ),
    Scenario(
        "migrate-fd-error",
        "The source back-end refuses the transfer (reply 0x101); the source resumes",
        "VHOST_USER_SET_DEVICE_STATE_FD; Migrating back-end state",
        _with(_migrate(), _resumed("did not accept the state transfer")),
        backends=lambda p: ({"faults": frozenset({"state-fd-error"})}, {}),
    ),
    Scenario(
        "migrate-check-fails",
        "CHECK_DEVICE_STATE fails on the source; the source resumes",
        "VHOST_USER_CHECK_DEVICE_STATE",
        _with(_migrate(), _resumed("CHECK_DEVICE_STATE after SAVE")),
        backends=lambda p: ({"faults": frozenset({"check-fails"})}, {}),
    ),
    Scenario(
        "migrate-corrupt",
        "One bit of the state flips on the way; the destination finds it and CHECK_DEVICE_STATE fails",
        "Migrating back-end state; VHOST_USER_CHECK_DEVICE_STATE",
        _with(_migrate(_corrupted), _resumed("CHECK_DEVICE_STATE after LOAD")),
        backends=lambda p: ({}, {}),
        backend_check=_backend_problem(1, "payload byte"),
    ),
    Scenario(
        "migrate-no-dirty-log",
        "The source back-end ignores LOG_ALL; the copied RAM misses its used-ring writes and the guest notices",
        "Migration (dirty page logging)",
        _with(_migrate(), _not_logged),
        backends=lambda p: ({"faults": frozenset({"skip-dirty-log"})}, {}),
    ),
    Scenario(
        "frontend-dies",
        "The front-end dies in the middle of reading the saved state; the back-end sees EPIPE",
        "Migrating back-end state (the channel behaves like a pipe)",
        _frontend_dies,
        defaults={"state_size": 8 << 20},
        backend_check=_backend_saw_abort,
    ),
    Scenario(
        "violation-ungated",
        "SET_DEVICE_STATE_FD although DEVICE_STATE was not negotiated; the back-end refuses",
        "Protocol features; VHOST_USER_SET_DEVICE_STATE_FD",
        _violation(_run_then_save(stop=True), Refused, "did not accept", drop=1 << PF.DEVICE_STATE),
        backend_check=_backend_problem(0, "needs protocol feature DEVICE_STATE"),
    ),
    Scenario(
        "violation-reply-flags",
        "The back-end answers GET_VRING_BASE with flags 0x1 (no REPLY bit); the front-end rejects it",
        "Header (flags)",
        _violation(_run_then_stop, ProtocolViolation, "GET_VRING_BASE reply: flags expected 0x5, got 0x1"),
        backends=lambda p: ({"wrong_reply_flags": "GET_VRING_BASE"},),
    ),
    Scenario(
        "violation-missing-reply",
        "The back-end never answers GET_VRING_BASE; the front-end times out with a clear error",
        "Communication (replies)",
        _violation(_run_then_stop, PeerTimeout, "no reply to GET_VRING_BASE ring 0"),
        backends=lambda p: ({"missing_reply": "GET_VRING_BASE"},),
        defaults={"timeout": 0.5},
    ),
    Scenario(
        "violation-running-transfer",
        "SET_DEVICE_STATE_FD while the rings still run (no suspension); the back-end refuses",
        "Suspended device state; Migrating back-end state",
        _violation(_run_then_save(stop=False), Refused, "did not accept"),
        backend_check=_backend_problem(0, "still started"),
    ),
    Scenario(
        "violation-error-with-fd",
        "The SET_DEVICE_STATE_FD reply reports an error and returns an FD; the front-end rejects it",
        "VHOST_USER_SET_DEVICE_STATE_FD",
        _violation(_run_then_save(stop=True), ProtocolViolation, "together with an FD"),
        backends=lambda p: ({"faults": frozenset({"error-with-fd"})},),
    ),
)

SCENARIOS: dict[str, Scenario] = {s.name: s for s in _SCENARIOS}


def get(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(f"no scenario {name!r}; known: {', '.join(SCENARIOS)}") from None


def run_frontend(scenario: Scenario, ctx: ScenarioContext) -> ScenarioResult:
    """Only the front-end part, against back-ends at ``ctx.sockets``; an unexpected failure is a not-ok result."""
    try:
        result = scenario.frontend(ctx)
    except SimError as error:
        result = ScenarioResult(scenario.name, False, f"failed unexpectedly ({type(error).__name__})", str(error))
    result.scenario = scenario.name
    result.transcript = ctx.transcript
    return result


def run_scenario(
    name: str,
    params: ScenarioParams | None = None,
    *,
    route: Route = direct,
    workdir: Path | None = None,
) -> ScenarioResult:
    """Run a scenario in this process: back-ends in threads, the front-end here."""
    scenario = get(name)
    params = params or scenario.params()
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vutrace-sim-")))
        backends = []
        for side, overrides in zip(scenario.sides, scenario.backends(params), strict=True):
            backend = Backend(workdir / f"{side}.sock", params.backend_options(overrides))
            stack.callback(backend.close)
            backends.append(backend.start())
        with contextlib.ExitStack() as routes:
            sockets = [
                routes.enter_context(route(side, b.path)) for side, b in zip(scenario.sides, backends, strict=True)
            ]
            ctx = ScenarioContext(params, sockets)
            result = run_frontend(scenario, ctx)
        for backend in backends:
            if not backend.wait_finished(backend.connections, params.timeout * 2):
                result.check(False, f"back-end {backend.path.name} finished its connections")
        if scenario.backend_check is not None:
            scenario.backend_check(backends, result)
        result.backend_events = [[(e.level, e.text) for e in b.events] for b in backends]
    return result


__all__ = [
    "SCENARIOS",
    "Scenario",
    "ScenarioContext",
    "ScenarioParams",
    "ScenarioResult",
    "get",
    "run_frontend",
    "run_scenario",
]
