"""DPDK testpmd (virtio-user ↔ vhost PMD) and qemu-storage-daemon vhost-user-blk through the proxy."""

from __future__ import annotations

import pytest

import vutrace
from vutrace import interop

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def test_dpdk_testpmd_through_proxy(peers, procs):
    outcome = interop.dpdk_testpmd(peers, procs)
    assert outcome.frontend_rx > 0, outcome.logs["testpmd-frontend"][-2000:]
    assert outcome.backend_rx > 0, outcome.logs["testpmd-backend"][-2000:]
    df = vutrace.load(outcome.capture)
    main = df[df.channel == "main"]
    assert main.error.isna().all(), main[main.error.notna()][["request", "error"]]
    sent = list(main[~main.is_reply].request)
    for name in interop.DPDK_SETUP_REQUESTS:
        assert name in sent, f"{name} missing from {sent}"
    (mem_table,) = main[(main.request == "SET_MEM_TABLE") & ~main.is_reply].itertuples()
    assert mem_table.nfds == mem_table.num_regions >= 1


def test_qemu_storage_daemon_blk_through_proxy(peers, procs):
    outcome = interop.vhost_user_blk(peers, procs)
    assert "blk ok" in outcome.console
    assert outcome.disk.read_bytes()[:24] == b"vutrace-blk-test-pattern"
    df = vutrace.load(outcome.capture)
    main = df[df.channel == "main"]
    assert main.error.isna().all(), main[main.error.notna()][["request", "error"]]
    assert "GET_CONFIG" in set(main.request)
    assert {"SET_MEM_TABLE", "ADD_MEM_REG"} & set(main.request)
    assert "SET_VRING_KICK" in set(main.request)
