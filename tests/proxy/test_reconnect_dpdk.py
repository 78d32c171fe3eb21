"""Real DPDK vhost in client mode (reconnects as soon as it is closed) against a proxy whose front-end is gone."""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import pytest

from vutrace import interop, realpeers
from vutrace.capture.pcapng import read_records

pytestmark = [pytest.mark.interop, pytest.mark.slow]
RUN_S = 3.0


def test_dpdk_vhost_client_reconnecting_while_the_frontend_is_gone(sock_dir: str) -> None:
    peers = realpeers.find_peers()
    if peers is None:
        pytest.skip("real peers not installed: run scripts/install-peers (as root)")
    workdir = Path(sock_dir)
    proxy_sock, capture = workdir / "vhost.sock", workdir / "reconnect.pcapng"
    procs = interop.Processes(workdir)
    try:
        argv = [sys.executable, "-m", "vutrace.cli", "proxy", "--listen-backend", str(proxy_sock)]
        proxy = procs.start("proxy", [*argv, "--connect-frontend", str(workdir / "gone.sock"), "-w", str(capture)])
        realpeers.wait_for(lambda: proxy_sock.exists() or not proxy.alive(), 15, "the proxy to listen")
        vdev = f"net_vhost0,iface={proxy_sock},client=1"
        dpdk = procs.start("testpmd", interop.testpmd_argv(peers, "vu-reconnect", 1, vdev))
        time.sleep(RUN_S)
        assert dpdk.alive(), dpdk.output()[-2000:]
    finally:
        procs.stop_all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = list(read_records(capture))
    accepts = [r for r in records if r.event == "accept"]
    errors = [r for r in records if r.event == "error"]
    summaries = [r for r in errors if "repeated" in r.attrs]
    assert len(accepts) == 1
    assert len(errors) == 2 and len(summaries) == 1
    assert 1 <= summaries[0].attrs["repeated"] <= 8  # backed off: 0.05 s doubling to 2 s between attempts
    assert capture.stat().st_size < 16384
