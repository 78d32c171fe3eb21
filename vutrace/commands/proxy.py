"""``vutrace proxy``: run the capturing man-in-the-middle proxy until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from dissectors.spec import ProtocolFeature
from vutrace.errors import CommandError
from vutrace.proxy import Proxy, ProxyError
from vutrace.proxy.live import LivePrinter


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "proxy",
        help="relay and capture a vhost-user connection",
        description="Sit between a vhost-user front-end and back-end, forward every message byte-exactly "
        "with its FDs, interpose the back-end channel and the device-state stream, and capture it all.",
    )
    roles = parser.add_argument_group("roles (give one pair)")
    roles.add_argument("--listen", metavar="SOCK", help="listen here for the front-end")
    roles.add_argument("--connect", metavar="SOCK", help="connect here to the back-end, once per front-end connection")
    roles.add_argument("--listen-backend", metavar="SOCK", help="listen here for the back-end (front-end is server)")
    roles.add_argument("--connect-frontend", metavar="SOCK", help="connect here to the listening front-end")
    parser.add_argument("-w", "--write", metavar="FILE", help="write the capture (pcapng, mode 0600) to FILE")
    parser.add_argument("--live", action="store_true", help="print one line per message as it passes")
    parser.add_argument(
        "--tui", action="store_true", help="browse the capture in the TUI as it is written (needs -w); quit stops"
    )
    parser.add_argument(
        "--state-payload",
        choices=("full", "hash"),
        default="full",
        help="keep device-state bytes (full) or only their SHA-256 (hash); default full",
    )
    parser.add_argument(
        "--hide-protocol-features",
        metavar="BIT",
        action="append",
        default=[],
        type=protocol_feature_bit,
        help="clear this protocol feature (number or name, repeatable) in GET_PROTOCOL_FEATURES replies",
    )
    parser.add_argument("--mode", type=octal_mode, default=0o600, help="listening socket mode (octal, default 0600)")
    parser.add_argument("--force", action="store_true", help="remove a stale socket at the listening path")
    parser.set_defaults(func=run)


def octal_mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an octal mode: {text}") from None
    if not 0 <= mode <= 0o777:
        raise argparse.ArgumentTypeError(f"mode out of range: {text}")
    return mode


def protocol_feature_bit(text: str) -> int:
    if text.isdigit():
        bit = int(text)
        if bit < 64:
            return bit
    else:
        name = text.upper().removeprefix("VHOST_USER_PROTOCOL_F_")
        if name in ProtocolFeature.__members__:
            return int(ProtocolFeature[name])
    raise argparse.ArgumentTypeError(f"not a protocol feature bit or name: {text}")


def run(args: argparse.Namespace) -> int:
    if args.tui and (not args.write or args.live):
        raise CommandError("--tui shows the capture being written: give -w FILE, and not --live")
    if not args.write and not args.live:
        raise CommandError("nothing to do: give -w FILE, --live or both")
    mask = 0
    for bit in args.hide_protocol_features:
        mask |= 1 << bit
    try:
        proxy = Proxy(
            listen=args.listen,
            connect=args.connect,
            listen_backend=args.listen_backend,
            connect_frontend=args.connect_frontend,
            capture=args.write,
            state_payload=args.state_payload,
            mode=args.mode,
            force=args.force,
            hide_protocol_features=mask,
        )
    except ProxyError as error:
        raise CommandError(str(error)) from None
    printer = LivePrinter() if args.live else None
    if printer:
        proxy.add_listener(printer)
    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            proxy.start()
        except ProxyError as error:
            raise CommandError(str(error)) from None
        capture = f", capturing to {args.write}" if args.write else ""
        print(
            f"vutrace proxy: accepting the {proxy.listen_for} on {proxy.listen_path}, "
            f"connecting to the {proxy.connect_for} at {proxy.connect_path}{capture}",
            file=sys.stderr,
            flush=True,
        )
        if args.tui:
            from vutrace.tui import run_live

            run_live(args.write)
        else:
            while not stop.wait(1.0):
                pass
        proxy.stop(reason=received[0] if received else "stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if printer:
            printer.close()
    if proxy.write_error:
        print(f"vutrace proxy: the capture is incomplete: {proxy.write_error}", file=sys.stderr)
        return 1
    return 0
