"""``vutrace sim``: vutrace's own reference vhost-user peers, as real processes on real unix sockets.

* ``vutrace sim backend --socket PATH``   a back-end (echo/checksum device) serving front-ends
* ``vutrace sim frontend --socket PATH --scenario NAME``   a front-end running one scenario
* ``vutrace sim migrate``   a whole migration: two back-end processes, one front-end, optional proxies
* ``vutrace sim run NAME`` / ``vutrace sim scenarios``   any scenario in-process / the list
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from dissectors.spec import ProtocolFeature
from vutrace.errors import CommandError
from vutrace.sim.backend import FAULTS, Backend, BackendOptions, summary
from vutrace.sim.errors import SimError
from vutrace.sim.routing import STARTUP_TIMEOUT, ProxyProcesses, ProxyThreads, Route, direct, wait_for_socket
from vutrace.sim.scenarios import SCENARIOS, Scenario, ScenarioContext, ScenarioResult, get, run_frontend, run_scenario
from vutrace.sim.wire import Transcript, WireEntry

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
MIGRATION_SCENARIOS = [name for name, s in SCENARIOS.items() if len(s.sides) == 2]
BACKEND_EXIT_TIMEOUT = 30.0


def size(text: str) -> int:
    """Parse a byte count: 4096, 64K, 64KiB, 1.5M, 2G."""
    match = _SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 4096, 64K, 1M, 2G)")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** "_kmgt".index(unit or "_"))


def protocol_feature(text: str) -> int:
    name = text.upper().removeprefix("VHOST_USER_PROTOCOL_F_")
    if name not in ProtocolFeature.__members__:
        raise argparse.ArgumentTypeError(f"not a protocol feature: {text} ({', '.join(ProtocolFeature.__members__)})")
    return int(ProtocolFeature[name])


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="run vutrace's reference vhost-user front-end and back-end",
        description="Reference vhost-user peers over real unix sockets with real FDs: a back-end with an "
        "echo/checksum device and device-state migration, a front-end that drives it the way QEMU does, "
        "and named scenarios including deliberate protocol violations. See docs/sim.md.",
    )
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
    sub = parser.add_subparsers(dest="sim_command", metavar="WHAT")
    _register_backend(sub)
    _register_frontend(sub)
    _register_migrate(sub)
    _register_run(sub)
    listing = sub.add_parser("scenarios", help="list the scenarios", description="List the named scenarios.")
    listing.add_argument("--json", action="store_true", help="machine-readable list")
    listing.set_defaults(func=run_scenarios_list)


def _register_backend(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "backend",
        help="serve front-ends on a unix socket",
        description="A vhost-user back-end: listens on --socket, serves one front-end connection at a time "
        "until SIGINT/SIGTERM (or --connections), and reports what it saw on stderr.",
    )
    parser.add_argument("--socket", required=True, type=Path, help="the socket to listen on")
    parser.add_argument("--queue-pairs", type=int, default=8, help="queue pairs supported (1-8, default 8)")
    parser.add_argument("--state-size", type=size, default=4096, help="device-state payload size (default 4096)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the device-state payload")
    parser.add_argument("--timeout", type=float, default=5.0, help="bound on every wait, seconds (default 5)")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        choices=sorted(FAULTS),
        help="misbehave on purpose (repeatable): " + "; ".join(f"{k}: {v}" for k, v in FAULTS.items()),
    )
    parser.add_argument("--wrong-reply-flags", metavar="MESSAGE", help="reply to MESSAGE with flags 0x1")
    parser.add_argument("--missing-reply", metavar="MESSAGE", help="never reply to MESSAGE")
    parser.add_argument("--disconnect-after", type=int, metavar="N", help="close the first connection after N requests")
    parser.add_argument(
        "--without",
        action="append",
        default=[],
        type=protocol_feature,
        metavar="FEATURE",
        help="do not offer this protocol feature (e.g. REPLY_ACK, CONFIGURE_MEM_SLOTS); repeatable",
    )
    parser.add_argument("--no-config-change", action="store_true", help="never send BACKEND_CONFIG_CHANGE_MSG")
    parser.add_argument("--connections", type=int, metavar="N", help="exit after serving N connections")
    parser.add_argument("--json", action="store_true", help="print a JSON summary to stdout on exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every message and every event")
    parser.set_defaults(func=run_backend)


def _add_params(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scenario parameters (default: the scenario's own)")
    group.add_argument("--queue-pairs", type=int, help="queue pairs the guest uses (1-8)")
    group.add_argument("--ring-size", type=int, help="ring size (power of two)")
    group.add_argument("--requests", type=int, help="requests per running phase")
    group.add_argument("--state-size", type=size, help="device-state payload size, e.g. 4096, 64K, 1G")
    group.add_argument("--seed", type=int, help="seed of requests and state")
    group.add_argument("--no-reply-ack", action="store_true", help="do not negotiate REPLY_ACK")
    group.add_argument("--set-mem-table", action="store_true", help="SET_MEM_TABLE instead of ADD_MEM_REG")
    group.add_argument("--timeout", type=float, help="bound on every wait, seconds")


def _params(scenario: Scenario, args: argparse.Namespace):
    try:
        return scenario.params(
            queue_pairs=args.queue_pairs,
            ring_size=args.ring_size,
            requests=args.requests,
            state_size=args.state_size,
            seed=args.seed,
            reply_ack=False if args.no_reply_ack else None,
            mem_slots=False if args.set_mem_table else None,
            timeout=args.timeout,
        )
    except (TypeError, ValueError) as error:
        raise CommandError(str(error)) from None


def _add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--transcript", action="store_true", help="print every message the front-end saw")


def _register_frontend(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "frontend",
        help="run one scenario's front-end against running back-ends",
        description="Connect to back-ends started with 'vutrace sim backend' and run a scenario's front-end "
        "part. Scenarios with deliberate back-end faults need the back-end started with matching options "
        "('vutrace sim scenarios' shows them). Exit status 0 when the scenario went as designed.",
    )
    parser.add_argument("--socket", required=True, type=Path, help="the back-end's socket (the source's, to migrate)")
    parser.add_argument("--dest-socket", type=Path, help="the destination back-end's socket (migration scenarios)")
    parser.add_argument("--scenario", required=True, choices=list(SCENARIOS), metavar="NAME", help="scenario name")
    _add_params(parser)
    _add_output(parser)
    parser.set_defaults(func=run_frontend_command)


def _register_migrate(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "migrate",
        help="run a whole migration locally (two back-end processes)",
        description="Start a source and a destination back-end as processes, migrate between them with "
        "the reference front-end, optionally through two capturing proxies, and print a summary.",
    )
    parser.add_argument(
        "--variant",
        default="migrate",
        choices=MIGRATION_SCENARIOS,
        help="which migration scenario (default: migrate)",
    )
    _add_params(parser)
    parser.add_argument("--proxy", action="store_true", help="route both connections through 'vutrace proxy'")
    parser.add_argument(
        "-w",
        "--write",
        metavar="DIR",
        type=Path,
        help="write source.pcapng and destination.pcapng here (implies --proxy)",
    )
    parser.add_argument("--threads", action="store_true", help="run back-ends and proxies as threads, not processes")
    _add_output(parser)
    parser.set_defaults(func=run_migrate)


def _register_run(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run",
        help="run a scenario in-process (back-ends as threads)",
        description="Run a named scenario with its back-ends as threads in this process.",
    )
    parser.add_argument("scenario", choices=list(SCENARIOS), metavar="SCENARIO", help="scenario name")
    _add_params(parser)
    parser.add_argument("--proxy", action="store_true", help="route through in-process capturing proxies")
    parser.add_argument("-w", "--write", metavar="DIR", type=Path, help="write <side>.pcapng here (implies --proxy)")
    _add_output(parser)
    parser.set_defaults(func=run_scenario_command)


# Commands


def run_backend(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="vutrace sim backend: %(message)s",
        stream=sys.stderr,
    )
    protocol = BackendOptions().protocol_features
    for bit in args.without:
        protocol &= ~(1 << bit)
    try:
        options = BackendOptions(
            queue_pairs=args.queue_pairs,
            protocol_features=protocol,
            state_size=args.state_size,
            seed=args.seed,
            timeout=args.timeout,
            config_change=not args.no_config_change,
            faults=frozenset(args.fault),
            wrong_reply_flags=args.wrong_reply_flags,
            missing_reply=args.missing_reply,
            disconnect_after=args.disconnect_after,
        )
    except ValueError as error:
        raise CommandError(str(error)) from None
    backend = Backend(args.socket, options)
    if args.verbose:
        backend.transcript = Transcript([_print_entry])
    try:
        backend.listen()
    except OSError as error:
        raise CommandError(f"cannot listen on {args.socket}: {error.strerror}") from None
    print(f"vutrace sim backend: listening on {args.socket}", file=sys.stderr, flush=True)
    previous = {sig: signal.signal(sig, lambda *_: backend.request_stop()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        backend.serve(args.connections)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        backend.close()
    if args.json:
        print(json.dumps(summary(backend)), flush=True)
    return 0


def _print_entry(entry: WireEntry, _fds: object) -> None:
    print(entry.describe(), file=sys.stderr, flush=True)


def run_frontend_command(args: argparse.Namespace) -> int:
    scenario = get(args.scenario)
    params = _params(scenario, args)
    sockets = [args.socket]
    if len(scenario.sides) == 2:
        if args.dest_socket is None:
            raise CommandError(f"scenario {scenario.name} migrates between two back-ends: give --dest-socket too")
        sockets.append(args.dest_socket)
    transcript = Transcript([_print_entry] if args.transcript else [])
    try:
        result = run_frontend(scenario, ScenarioContext(params, sockets, transcript))
    except SimError as error:
        raise CommandError(str(error)) from None
    _print_result(result, args.json)
    if not result.ok:
        _print_hint(scenario, params, sockets)
    return 0 if result.ok else 1


def _print_hint(scenario: Scenario, params, sockets: list[Path]) -> None:
    for side, flags, sock in zip(scenario.sides, scenario.backend_flags(params), sockets, strict=False):
        command = " ".join(["vutrace sim backend --socket", str(sock), *flags])
        print(f"hint: the {side} back-end for {scenario.name} is started as: {command}", file=sys.stderr)


def run_scenario_command(args: argparse.Namespace) -> int:
    scenario = get(args.scenario)
    params = _params(scenario, args)
    route: Route = direct
    if args.proxy or args.write:
        if args.write:
            args.write.mkdir(parents=True, exist_ok=True)
        route = ProxyThreads(args.write)
    result = run_scenario(scenario.name, params, route=route)
    if args.transcript:
        for entry in result.transcript.rows():
            print(entry.describe())
    _print_result(result, args.json, getattr(route, "captures", []))
    return 0 if result.ok else 1


def run_migrate(args: argparse.Namespace) -> int:
    scenario = get(args.variant)
    params = _params(scenario, args)
    proxy = args.proxy or args.write is not None
    if args.write:
        args.write.mkdir(parents=True, exist_ok=True)
    if args.threads:
        route: Route = ProxyThreads(args.write) if proxy else direct
        result = run_scenario(scenario.name, params, route=route)
    else:
        route = ProxyProcesses(args.write) if proxy else direct
        try:
            result = _migrate_with_processes(scenario, params, route)
        except SimError as error:
            raise CommandError(str(error)) from None
    if args.transcript:
        for entry in result.transcript.rows():
            print(entry.describe())
    _print_result(result, args.json, getattr(route, "captures", []))
    return 0 if result.ok else 1


def _migrate_with_processes(scenario: Scenario, params, route: Route) -> ScenarioResult:
    """Back-ends as ``vutrace sim backend`` processes; their JSON summaries are checked afterwards."""
    with tempfile.TemporaryDirectory(prefix="vutrace-sim-") as tmp:
        workdir = Path(tmp)
        processes: list[subprocess.Popen] = []
        try:
            for side, flags in zip(scenario.sides, scenario.backend_flags(params), strict=True):
                command = [
                    sys.executable,
                    "-m",
                    "vutrace.cli",
                    "sim",
                    "backend",
                    "--socket",
                    str(workdir / f"{side}.sock"),
                ]
                command += ["--connections", "1", "--json", "--timeout", str(params.timeout), *flags]
                processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            for side, process in zip(scenario.sides, processes, strict=True):
                wait_for_socket(workdir / f"{side}.sock", process, STARTUP_TIMEOUT, f"{side} back-end")
            with contextlib.ExitStack() as routes:
                sockets = [routes.enter_context(route(side, workdir / f"{side}.sock")) for side in scenario.sides]
                result = run_frontend(scenario, ScenarioContext(params, sockets))
            summaries = [
                _backend_summary(side, process, result)
                for side, process in zip(scenario.sides, processes, strict=False)
            ]
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    _check_processes(summaries, result)
    return result


def _backend_summary(side: str, process: subprocess.Popen, result: ScenarioResult) -> dict:
    try:
        out, err = process.communicate(timeout=BACKEND_EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        result.check(False, f"the {side} back-end exited after its connection")
    for line in err.splitlines():
        if line.strip() and "listening on" not in line:
            result.checks.append(f"{side} back-end said: {line.removeprefix('vutrace sim backend: ')}")
    try:
        return json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    except json.JSONDecodeError:
        result.check(False, f"the {side} back-end printed a JSON summary")
        return {}


def _check_processes(summaries: list[dict], result: ScenarioResult) -> None:
    if not result.migration or not result.migration.ok or len(summaries) != 2:
        return
    saved = [t["sha256"] for t in summaries[0].get("transfers", []) if t["direction"] == "SAVE"]
    loaded = [t["sha256"] for t in summaries[1].get("transfers", []) if t["direction"] == "LOAD"]
    sha = result.migration.state_sha256
    result.check(
        bool(saved and loaded) and saved[-1] == loaded[-1] == sha,
        "the state arrived intact (SHA-256 equal in both back-end processes and the front-end)",
    )


def _print_result(result: ScenarioResult, as_json: bool, captures: list[Path] = ()) -> None:
    if as_json:
        print(json.dumps(_result_json(result, captures), indent=2))
        return
    for line in result.lines():
        print(line)
    for capture in captures:
        print(f"  capture: {capture}")


def _result_json(result: ScenarioResult, captures: list[Path]) -> dict:
    out: dict = {
        "scenario": result.scenario,
        "ok": result.ok,
        "outcome": result.outcome,
        "error": result.error,
        "checks": result.checks,
        "captures": [str(c) for c in captures],
    }
    m = result.migration
    if m is not None:
        out["migration"] = {
            "outcome": m.outcome,
            "state_bytes": m.state_bytes,
            "state_sha256": m.state_sha256,
            "save_seconds": m.save.seconds if m.save else None,
            "load_seconds": m.load.seconds if m.load else None,
            "save_mib_per_s": m.throughput(m.save),
            "load_mib_per_s": m.throughput(m.load),
            "source_bases": m.source_bases,
            "destination_bases": m.destination_bases,
            "logged_pages": m.logged_pages,
            "requests": m.requests,
            "seconds": m.seconds,
        }
    return out


def run_scenarios_list(args: argparse.Namespace) -> int:
    rows = []
    for scenario in SCENARIOS.values():
        params = scenario.params()
        rows.append(
            {
                "name": scenario.name,
                "title": scenario.title,
                "spec": scenario.spec,
                "backends": [
                    {"side": side, "options": flags}
                    for side, flags in zip(scenario.sides, scenario.backend_flags(params), strict=True)
                ],
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['name']:28} {row['title']}")
        for backend in row["backends"]:
            if backend["options"]:
                print(f"{'':28}   {backend['side']} back-end: {' '.join(backend['options'])}")
    return 0
