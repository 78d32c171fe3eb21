"""Safe paths and modes: private socket and capture, no clobbering, stale sockets, path length."""

from __future__ import annotations

import os
import socket
import stat

import pytest

from tests.proxy.conftest import Harness
from vutrace.proxy import Proxy, ProxyError


def mode_of(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_listening_socket_and_capture_are_private_by_default(harness: Harness) -> None:
    assert stat.S_ISSOCK(os.stat(harness.listen_path).st_mode)
    assert mode_of(harness.listen_path) == 0o600
    assert mode_of(harness.capture) == 0o600


def test_socket_mode_can_be_chosen(make_harness) -> None:
    harness = make_harness(mode=0o660)
    assert mode_of(harness.listen_path) == 0o660


def test_existing_file_is_never_replaced(sock_dir: str) -> None:
    path = f"{sock_dir}/precious"
    with open(path, "w") as f:
        f.write("keep me")
    proxy = Proxy(listen=path, connect=f"{sock_dir}/be.sock", force=True)
    with pytest.raises(ProxyError, match="not a socket"):
        proxy.start()
    with open(path) as f:
        assert f.read() == "keep me"


def stale_socket(path: str) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.close()


def test_stale_socket_needs_force(sock_dir: str) -> None:
    path = f"{sock_dir}/stale.sock"
    stale_socket(path)
    with pytest.raises(ProxyError, match="--force"):
        Proxy(listen=path, connect=f"{sock_dir}/be.sock").start()
    assert os.path.exists(path)
    proxy = Proxy(listen=path, connect=f"{sock_dir}/be.sock", force=True).start()
    try:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.connect(path)
        probe.close()
    finally:
        proxy.stop()
    assert not os.path.exists(path)


def test_socket_in_use_is_refused_even_with_force(sock_dir: str) -> None:
    path = f"{sock_dir}/live.sock"
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(path)
    live.listen()
    try:
        with pytest.raises(ProxyError, match="in use"):
            Proxy(listen=path, connect=f"{sock_dir}/be.sock", force=True).start()
    finally:
        live.close()


def test_too_long_socket_path_is_a_clear_error(sock_dir: str) -> None:
    long_path = f"{sock_dir}/" + "s" * 120
    with pytest.raises(ProxyError, match="at most 107"):
        Proxy(listen=long_path, connect=f"{sock_dir}/be.sock")
    with pytest.raises(ProxyError, match="at most 107"):
        Proxy(listen=f"{sock_dir}/fe.sock", connect=long_path)


def test_roles_must_come_in_pairs(sock_dir: str) -> None:
    with pytest.raises(ProxyError, match="--listen-backend"):
        Proxy(listen=f"{sock_dir}/a.sock", connect_frontend=f"{sock_dir}/b.sock")


def test_capture_path_that_is_not_a_file_is_refused_and_the_socket_removed(sock_dir: str) -> None:
    os.mkdir(f"{sock_dir}/dir.pcapng")
    proxy = Proxy(listen=f"{sock_dir}/fe.sock", connect=f"{sock_dir}/be.sock", capture=f"{sock_dir}/dir.pcapng")
    with pytest.raises(ProxyError, match="not a regular file"):
        proxy.start()
    assert not os.path.exists(f"{sock_dir}/fe.sock")
