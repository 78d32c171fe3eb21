"""``vutrace tui``: the sub-command's arguments and its one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from vutrace.cli import build_parser, main


def test_the_tui_command_takes_one_or_two_captures_and_options() -> None:
    args = build_parser().parse_args(["tui", "src.pcapng", "dst.pcapng", "--merge"])
    assert args.files == [Path("src.pcapng"), Path("dst.pcapng")] and args.merge and not args.follow


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["missing.pcapng"], "cannot open missing.pcapng: no such file"),
        (["a", "b", "c"], "give one capture, or two (source and destination)"),
    ],
)
def test_bad_arguments_are_one_line(files: list[str], message: str, capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["tui", *files]) == 2
    assert capsys.readouterr().err == f"vutrace tui: {message}\n"


def test_a_directory_is_refused(capsys, tmp_path: Path) -> None:
    assert main(["tui", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"vutrace tui: cannot open {tmp_path}: not a file\n"
