"""``vutrace demo``: the whole product in one command, needing nothing but vutrace itself.

A simulated live migration of a vhost-user back-end with device state: a source and a destination
back-end (``vutrace sim backend`` processes), each behind a capturing ``vutrace proxy`` process,
and the reference front-end migrating between them. Then the captures are shown with the same
commands a user would type: stats, the migration timeline, the conformance check, an HTML report.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vutrace.errors import CommandError

STEPS = (
    ("Capture statistics of the source side", ["stats", "{src}"]),
    ("Capture statistics of the destination side", ["stats", "{dst}"]),
    ("The device-state messages, as tshark-like lines", ["show", "{src}", "-Y", "{state_filter}"]),
    ("The migration timeline of both sides", ["timeline", "{src}", "{dst}"]),
    ("Spec conformance of both sides", ["check", "{src}", "{dst}"]),
    ("An HTML report of both sides", ["report", "{src}", "{dst}", "-o", "{report}"]),
)

STATE_FILTER = "request in ('SET_DEVICE_STATE_FD', 'CHECK_DEVICE_STATE') or channel == 'state'"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run a complete simulated migration through two proxies and show what vutrace sees",
        description=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument(
        "--dir", type=Path, default=Path("vutrace-demo"), help="where the captures go (default ./vutrace-demo)"
    )
    parser.add_argument("--state-size", default="4M", help="size of the migrated device state (default 4M)")
    parser.set_defaults(func=run)


def banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def run(args: argparse.Namespace) -> int:
    from vutrace.cli import main

    args.dir.mkdir(parents=True, exist_ok=True)
    src, dst = args.dir / "source.pcapng", args.dir / "destination.pcapng"
    for stale in (src, dst):
        stale.unlink(missing_ok=True)
    banner("A live migration: source back-end → destination back-end, each behind a vutrace proxy")
    status = main(["sim", "migrate", "-w", str(args.dir), "--state-size", args.state_size])
    if not (src.exists() and dst.exists()):
        raise CommandError(f"the simulated migration wrote no captures in {args.dir}", status or 1)
    values = {"src": src, "dst": dst, "report": args.dir / "report.html", "state_filter": STATE_FILTER}
    for title, template in STEPS:
        banner(title)
        main([part.format(**values) for part in template])
    banner("Explore further")
    print(f"  vutrace tui {src} {dst}")
    print(f"  vutrace show {src} -V")
    print(f"  open {values['report']} in a browser")
    return status
