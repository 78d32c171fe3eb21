"""Fixtures for the interop tests: real QEMU, virtiofsd, qemu-storage-daemon and DPDK peers.

The peers come from scripts/install-peers (run by scripts/test); without them these tests skip
with the reason. Every process is stopped at the end of its test, whatever happens.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vutrace import realpeers
from vutrace.interop import Processes
from vutrace.realpeers import PeerPaths


@pytest.fixture(scope="session")
def peers() -> PeerPaths:
    found = realpeers.find_peers()
    if found is None:
        pytest.skip("real peers not installed: run scripts/install-peers (as root)")
    return found


@pytest.fixture
def procs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
    # unix socket paths must stay below 108 bytes: a short folder name
    processes = Processes(Path(tmp_path_factory.mktemp("io", numbered=True)))
    try:
        yield processes
    finally:
        processes.stop_all()
