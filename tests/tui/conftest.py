"""Fixtures of the TUI tests: the two captures of one migration, written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from tui_captures import destination_records, source_records, write


@pytest.fixture(scope="session")
def captures(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(source.pcapng, destination.pcapng) of one migration."""
    folder = tmp_path_factory.mktemp("tui-captures")
    source = write(folder / "source.pcapng", source_records())
    return source, write(folder / "destination.pcapng", destination_records())


@pytest.fixture
def source(captures: tuple[Path, Path]) -> Path:
    return captures[0]
