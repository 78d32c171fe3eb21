"""Decode speed of the flat records against the scapy layers, on a QEMU-like message mix.

The mix is one vhost-user-fs session as QEMU 10 and virtiofsd run it (start-up,
guest driver set-up, in-band kicks and back-end channel traffic, live migration
with dirty logging and the device-state transfer), every request with its
reply, repeated to N messages. Prints messages/s of both paths and their ratio.

    .venv/bin/python benchmarks/dissect.py [-n 300000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from dissectors.encode import encode
from dissectors.layers import dissect
from dissectors.records import decode

Message = tuple[bytes, str, int]
"""Wire bytes, channel, number of FDs."""

GIB = 1 << 30
RAM_UADDR = 0x7F5A_0000_0000


def _pair(
    name: str, channel: str = "main", nfds: int = 0, reply: dict | None = None, **fields: object
) -> list[Message]:
    """A request and, if ``reply`` is given, its reply (ack replies: ``reply={"result": 0}``)."""
    out = [(encode(name, channel, need_reply=reply is not None, **fields), channel, nfds)]
    if reply is not None:
        out.append((encode(name, channel, reply=True, **reply), channel, 0))
    return out


def _ring_setup(vring: int) -> list[Message]:
    base = RAM_UADDR + 0x1C8_A000 + vring * 0x4000
    return [
        *_pair("SET_VRING_NUM", vring=vring, num=128),
        *_pair("SET_VRING_BASE", vring=vring, num=0),
        *_pair("SET_VRING_ADDR", vring=vring, desc_addr=base, used_addr=base + 0x1000, avail_addr=base + 0x800),
        *_pair("SET_VRING_KICK", nfds=1, vring=vring),
    ]


def session() -> list[Message]:
    """One session's messages in wire order."""
    ok = {"result": 0}
    startup = [
        *_pair("GET_FEATURES", reply={"features": 0x1_7400_0000}),
        *_pair("GET_PROTOCOL_FEATURES", reply={"protocol_features": 0x8A42B}),
        *_pair("SET_PROTOCOL_FEATURES", protocol_features=0x8A42B),
        *_pair("GET_QUEUE_NUM", reply={"queue_num": 2}),
        *_pair("GET_MAX_MEM_SLOTS", reply={"max_mem_slots": 509}),
        *_pair("SET_BACKEND_REQ_FD", nfds=1, reply=ok),
        *_pair("SET_OWNER"),
        *_pair("SET_VRING_CALL", nfds=1, vring=0),
        *_pair("SET_VRING_ERR", nfds=1, vring=0),
        *_pair("SET_VRING_CALL", nfds=1, vring=1),
        *_pair("SET_VRING_ERR", nfds=1, vring=1),
        *_pair("RESET_DEVICE"),
        *_pair("GET_CONFIG", reply={"config_size": 8, "config_data": bytes(8)}, config_data=bytes(8)),
    ]
    driver = [
        *_pair("SET_FEATURES", reply=ok, features=0x1_7000_0000),
        *_pair("SET_MEM_TABLE", nfds=2, regions=[(0, 2 * GIB, RAM_UADDR, 0), (4 * GIB, GIB, RAM_UADDR + 2 * GIB, 0)]),
        *_pair("ADD_MEM_REG", nfds=1, reply=ok, guest_addr=6 * GIB, region_size=GIB, user_addr=RAM_UADDR + 3 * GIB),
        *_ring_setup(0),
        *_ring_setup(1),
        *_pair("SET_VRING_ENABLE", reply=ok, vring=0, num=1),
        *_pair("SET_VRING_ENABLE", reply=ok, vring=1, num=1),
        *_pair("SET_STATUS", reply=ok, status=0xF),
    ]
    running = []
    for i in range(20):
        running += _pair("VRING_KICK", vring=i % 2)
        running += _pair("VRING_CALL", "backend", vring=i % 2)
    running += _pair("IOTLB_MSG", "backend", reply=ok, iova=0x2000, perm=1, iotlb_type=1)
    running += _pair(
        "IOTLB_MSG", reply=ok, iova=0x2000, iotlb_size=0x1000, uaddr=RAM_UADDR + 0x2000, perm=3, iotlb_type=2
    )
    running += _pair("VRING_HOST_NOTIFIER_MSG", "backend", nfds=1, reply=ok, vring=0, area_size=0x1000)
    migration = [
        *_pair("SET_LOG_BASE", nfds=1, reply={"log_size": 0x4000}, log_size=0x4000),
        *_pair("SET_FEATURES", reply=ok, features=0x1_7400_0000),
        *_pair("SET_VRING_ADDR", reply=ok, vring=0, addr_flags=1, log_addr=0x1C8_B000),
        *_pair("SET_VRING_ADDR", reply=ok, vring=1, addr_flags=1, log_addr=0x1C8_F000),
        *_pair("SET_VRING_ENABLE", reply=ok, vring=0, num=0),
        *_pair("SET_VRING_ENABLE", reply=ok, vring=1, num=0),
        *_pair("GET_VRING_BASE", reply={"vring": 0, "num": 42}, vring=0),
        *_pair("GET_VRING_BASE", reply={"vring": 1, "num": 7}, vring=1),
        *_pair("SET_DEVICE_STATE_FD", nfds=1, reply={"nofd": True}, direction=0),
        *_pair("CHECK_DEVICE_STATE", reply=ok),
    ]
    return startup + driver + running + migration


def _rate(run: Callable[[list[Message]], None], messages: list[Message], repeat: int = 3) -> float:
    best = min(_timed(run, messages) for _ in range(repeat))
    return len(messages) / best


def _timed(run: Callable[[list[Message]], None], messages: list[Message]) -> float:
    start = time.perf_counter()
    run(messages)
    return time.perf_counter() - start


def _flat(messages: list[Message]) -> None:
    for raw, channel, nfds in messages:
        decode(raw, channel, nfds)


def _scapy(messages: list[Message]) -> None:
    for raw, channel, _ in messages:
        dissect(raw, channel)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300_000, help="messages for the flat path (scapy gets n/30)")
    args = parser.parse_args()
    one = session()
    flat_messages = (one * (args.n // len(one) + 1))[: args.n]
    scapy_messages = flat_messages[: max(args.n // 30, len(one))]
    problems = [decode(raw, ch, n) for raw, ch, n in one]
    assert not any(r["error"] or r["warning"] for r in problems), [r for r in problems if r["error"] or r["warning"]]
    flat = _rate(_flat, flat_messages)
    scapy = _rate(_scapy, scapy_messages)
    print(f"message mix: {len(one)} messages per session, {len({r['request'] for r in problems})} kinds")
    print(f"flat records  ({len(flat_messages):>7} msgs): {flat:>10,.0f} msgs/s")
    print(f"scapy layers  ({len(scapy_messages):>7} msgs): {scapy:>10,.0f} msgs/s")
    print(f"ratio flat/scapy: {flat / scapy:.1f}x")


if __name__ == "__main__":
    main()
