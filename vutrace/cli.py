"""The ``vutrace`` command line: finds the sub-commands in ``vutrace.commands`` and runs one.

Each sub-command is the module of the same name; only the one being run is imported (the full
list is imported for ``--help``), so a command does not pay for the others' imports.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from vutrace import __version__, commands
from vutrace.errors import CommandError


def command_names() -> list[str]:
    return sorted(info.name for info in pkgutil.iter_modules(commands.__path__))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every sub-command, or with ``only`` that one when it names a command."""
    parser = argparse.ArgumentParser(prog="vutrace", description="See a vhost-user conversation.")
    parser.add_argument("--version", action="version", version=f"vutrace {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = command_names()
    for name in [only] if only in names else names:
        importlib.import_module(f"{commands.__name__}.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CommandError as error:
        print(f"vutrace {args.command}: {error}", file=sys.stderr)
        return error.status
    except BrokenPipeError:
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
