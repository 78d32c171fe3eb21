"""The reference front-end: drives a back-end the way QEMU does, step by step.

Each public method is one phase of QEMU's vhost-user life cycle, sending the
messages in QEMU's order with QEMU's flags (requests 0x1, NEED_REPLY 0x9 where
QEMU sets it when REPLY_ACK is negotiated, a GET_FEATURES barrier where QEMU
must wait without REPLY_ACK; replies must be exactly 0x5):

* ``setup``         connection handshake (vhost_dev_init)
* ``start``         device start (vhost_dev_start), with ring bases to resume from
* ``exchange``      the running phase: requests through real split virtqueues
* ``start_logging`` / ``stop_logging``  dirty logging for pre-copy
* ``stop``          device stop (vhost_dev_stop), returns the ring bases
* ``save_state`` / ``load_state``  device-state transfer, source and destination
* ``reconnect``     after the back-end went away: set-up and start again

Every wait is bounded by ``FrontendOptions.timeout``; every reply is checked
against the spec and a violation raises with the message, field, expected
and got.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dissectors import spec
from dissectors.encode import encode
from dissectors.spec import F_LOG_ALL, F_PROTOCOL_FEATURES, VHOST_VRING_F_LOG, Channel, Message, ReplyRule
from dissectors.spec import ProtocolFeature as PF
from vutrace.sim.checks import Negotiation, check_reply, check_request
from vutrace.sim.device import CONFIG
from vutrace.sim.errors import (
    GuestError,
    PeerClosed,
    PeerTimeout,
    ProtocolViolation,
    Refused,
    SimError,
    TransferFailed,
)
from vutrace.sim.fds import close_all, drain, new_eventfd, new_pipe, notify, wait_readable
from vutrace.sim.guest import Guest
from vutrace.sim.memory import DirtyLog
from vutrace.sim.transfer import QEMU_CHUNK, MigrationStream, receive_stream, send_stream
from vutrace.sim.wire import Endpoint, Received, Transcript

VIRTIO_F_VERSION_1 = 32
FRONTEND_PROTOCOL_FEATURES = (1 << 22) - 1
"""Protocol features QEMU's front-end knows (bits 0-21, the mask it acks with)."""
MAX_MEM_SLOTS_CAP = 512
"""QEMU caps GET_MAX_MEM_SLOTS at 512."""
SAVE, LOAD = 0, 1


@dataclass
class FrontendOptions:
    timeout: float = 5.0
    protocol_features: int = FRONTEND_PROTOCOL_FEATURES
    """The protocol features the front-end acks when offered (clear a bit to switch a feature off)."""
    chunk_size: int = QEMU_CHUNK


@dataclass
class StateTransfer:
    """One device-state transfer as the front-end saw it."""

    direction: str
    channel: str = "frontend"
    """Whose channel carried it: ``frontend`` (our pipe) or ``backend`` (the FD in the reply)."""
    bytes: int = 0
    seconds: float = 0.0
    check: int | None = None
    """The CHECK_DEVICE_STATE result (0 = success)."""


@dataclass
class Notifiers:
    """The eventfds of one ring: kick (host notifier), call (guest notifier), masked call, err."""

    kick: int = field(default_factory=new_eventfd)
    call: int = field(default_factory=new_eventfd)
    masked: int = field(default_factory=new_eventfd)
    err: int = field(default_factory=new_eventfd)

    def close(self) -> None:
        close_all([self.kick, self.call, self.masked, self.err])


class Frontend:
    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        guest: Guest,
        options: FrontendOptions | None = None,
        *,
        transcript: Transcript | None = None,
        label: str = "frontend",
    ) -> None:
        self.path = Path(socket_path)
        self.guest = guest
        self.options = options or FrontendOptions()
        self.transcript = transcript if transcript is not None else Transcript()
        self.label = label
        self.main: Endpoint | None = None
        self.negotiation = Negotiation()
        self.notifiers = [Notifiers() for _ in range(guest.rings)]
        self.responder: ChannelResponder | None = None
        self.problems: list[str] = []
        """Spec problems seen in what the back-end sent on its channel."""
        self.log: DirtyLog | None = None
        self.logging = False
        self.added_regions: set[tuple[int, int, int, int]] = set()
        self.config_generation: int | None = None
        self.connections = 0

    # Connection

    def connect(self) -> Frontend:
        """Connect to the back-end's socket, retrying until it listens (bounded by the timeout)."""
        deadline = time.monotonic() + self.options.timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            try:
                sock.connect(str(self.path))
                break
            except (FileNotFoundError, ConnectionRefusedError) as error:
                sock.close()
                if time.monotonic() > deadline:
                    raise PeerTimeout(f"cannot connect to {self.path} within {self.options.timeout:g} s") from error
                time.sleep(0.02)
        self.main = Endpoint(
            sock, Channel.MAIN, peer=self.label, timeout=self.options.timeout, transcript=self.transcript
        )
        self.negotiation = Negotiation()
        self.added_regions.clear()
        self.connections += 1
        return self

    def _endpoint(self) -> Endpoint:
        if self.main is None:
            raise SimError("not connected")
        return self.main

    # Messages

    def request(
        self,
        name: str,
        *,
        fds: Sequence[int] = (),
        ack: bool = False,
        barrier: bool = False,
        what: str = "",
        **fields: object,
    ) -> Received | None:
        """Send one request and read its reply if one comes.

        ``ack``: set NEED_REPLY when REPLY_ACK is negotiated (and insist on a 0 result);
        ``barrier``: without REPLY_ACK, send GET_FEATURES and wait for it instead (QEMU's way to wait).
        """
        facts = spec.by_name(Channel.MAIN, name)
        what = what or name
        need = ack and self.negotiation.reply_ack and facts.reply_rule is not ReplyRule.ALWAYS
        self._endpoint().send(encode(name, need_reply=need, **fields), fds)
        if self.negotiation.replies_to(facts, need):
            reply = self._reply(facts, what)
            if facts.reply_rule is not ReplyRule.ALWAYS and reply.record.get("result", 0):
                reply.close()
                raise Refused(f"{what}: back-end replied {reply.record['result']} (failure)")
            return reply
        if barrier:
            self._barrier()
        return None

    def get(self, name: str, what: str = "", **fields: object) -> dict:
        """A request with a mandatory reply; returns the reply's record."""
        reply = self.request(name, what=what, **fields)
        assert reply is not None
        reply.close()
        return reply.record

    def _reply(self, facts: Message, what: str) -> Received:
        try:
            reply = self._endpoint().receive(self.options.timeout, what=f"the reply to {what}")
        except PeerTimeout:
            raise PeerTimeout(f"no reply to {what} within {self.options.timeout:g} s") from None
        problems = check_reply(reply, facts)
        if problems:
            reply.close()
            raise ProtocolViolation("; ".join(problems))
        return reply

    def _barrier(self) -> None:
        features = self.get("GET_FEATURES", "GET_FEATURES (barrier)")["features"]
        if features != self.negotiation.offered_features:
            raise ProtocolViolation(
                f"GET_FEATURES (barrier): features 0x{features:x} differ from the first answer "
                f"0x{self.negotiation.offered_features:x}"
            )

    # Phases

    def setup(self) -> None:
        """The handshake QEMU does when the device is realized (before any start)."""
        neg = self.negotiation
        neg.offered_features = self.get("GET_FEATURES")["features"]
        if neg.protocol_features_offered:
            neg.offered_protocol = self.get("GET_PROTOCOL_FEATURES")["protocol_features"]
            acked = neg.offered_protocol & self.options.protocol_features
            self.request("SET_PROTOCOL_FEATURES", protocol_features=acked)
            neg.acked_protocol = acked
            if neg.has(PF.MQ):
                queues = self.get("GET_QUEUE_NUM")["queue_num"]
                if queues < self.guest.queue_pairs:
                    raise Refused(
                        f"GET_QUEUE_NUM: the back-end supports {queues} queue pairs, the guest uses "
                        f"{self.guest.queue_pairs}"
                    )
            if neg.has(PF.CONFIGURE_MEM_SLOTS):
                slots = min(self.get("GET_MAX_MEM_SLOTS")["max_mem_slots"], MAX_MEM_SLOTS_CAP)
                if slots < len(self.guest.memory.regions):
                    raise Refused(f"GET_MAX_MEM_SLOTS: {slots} slots for {len(self.guest.memory.regions)} regions")
        if neg.has(PF.BACKEND_REQ):
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.request("SET_BACKEND_REQ_FD", fds=[theirs.fileno()], ack=True)
            except SimError:
                ours.close()
                raise
            finally:
                theirs.close()
            self._start_responder(ours)
        self.request("SET_OWNER")
        self.get("GET_FEATURES")
        for index, notifiers in enumerate(self.notifiers):
            self.request("SET_VRING_CALL", fds=[notifiers.masked], vring=index, nofd=False)
            self.request("SET_VRING_ERR", fds=[notifiers.err], vring=index, nofd=False)
        if neg.has(PF.CONFIG):
            self.read_config()

    def read_config(self) -> int:
        """GET_CONFIG of the whole config space; returns its generation counter."""
        record = self.get("GET_CONFIG", config_offset=0, config_size=CONFIG.size, config_data=bytes(CONFIG.size))
        if record["size"] == 0:
            raise Refused("GET_CONFIG: back-end replied with an empty payload (error)")
        data = record["config_data"]
        if len(data) != CONFIG.size:
            raise ProtocolViolation(f"GET_CONFIG reply: config_size expected {CONFIG.size}, got {len(data)}")
        self.config_generation = CONFIG.unpack(data)[2]
        return self.config_generation

    def features(self) -> int:
        """The virtio features to set: VERSION_1, bit 30 if offered, LOG_ALL while logging."""
        offered = self.negotiation.offered_features
        value = offered & (1 << VIRTIO_F_VERSION_1 | 1 << F_PROTOCOL_FEATURES)
        if self.logging:
            value |= 1 << F_LOG_ALL
        return value

    def start(self, bases: Sequence[int] | None = None) -> None:
        """Start the device; ``bases`` are the next available indices per ring (0 for a fresh device)."""
        bases = list(bases) if bases is not None else [0] * self.guest.rings
        neg = self.negotiation
        for index, notifiers in enumerate(self.notifiers):
            self.request("SET_VRING_CALL", fds=[notifiers.masked], vring=index, nofd=False)
        features = self.features()
        self.request("SET_FEATURES", features=features, ack=self.logging, barrier=self.logging)
        neg.acked_features = features
        self._set_memory()
        for index, queue in enumerate(self.guest.queues):
            self.request("SET_VRING_NUM", vring=index, num=queue.layout.size)
            self.request("SET_VRING_BASE", vring=index, num=bases[index])
            self._set_addr(index)
            drain(self.notifiers[index].kick)  # a stale kick must not start the ring before it is enabled
            self.request("SET_VRING_KICK", fds=[self.notifiers[index].kick], vring=index, nofd=False)
        if self.logging:
            self._set_log_base()
        if neg.protocol_features_offered:
            for index in range(self.guest.rings):
                self.request(
                    "SET_VRING_ENABLE",
                    vring=index,
                    num=1,
                    ack=True,
                    barrier=True,
                    what=f"SET_VRING_ENABLE ring {index}",
                )
        for index, notifiers in enumerate(self.notifiers):
            self.request("SET_VRING_CALL", fds=[notifiers.call], vring=index, nofd=False)
        for notifiers in self.notifiers:
            notify(notifiers.kick)

    def _set_memory(self) -> None:
        memory = self.guest.memory
        if self.negotiation.has(PF.CONFIGURE_MEM_SLOTS):
            for region in memory.regions:
                if region.as_tuple() not in self.added_regions:
                    self.request(
                        "ADD_MEM_REG",
                        fds=[memory.fd],
                        ack=True,
                        guest_addr=region.guest_addr,
                        region_size=region.size,
                        user_addr=region.user_addr,
                        mmap_offset=region.mmap_offset,
                    )
                    self.added_regions.add(region.as_tuple())
        else:
            regions = [r.as_tuple() for r in memory.regions]
            self.request("SET_MEM_TABLE", fds=[memory.fd] * len(regions), ack=True, regions=regions)

    def _set_addr(self, index: int) -> None:
        queue = self.guest.queues[index]
        memory = self.guest.memory
        self.request(
            "SET_VRING_ADDR",
            ack=self.logging,
            barrier=self.logging,
            what=f"SET_VRING_ADDR ring {index}",
            vring=index,
            addr_flags=VHOST_VRING_F_LOG if self.logging else 0,
            desc_addr=memory.user_addr(queue.layout.desc),
            used_addr=memory.user_addr(queue.layout.used),
            avail_addr=memory.user_addr(queue.layout.avail),
            log_addr=queue.layout.used,
        )

    def _set_log_base(self) -> None:
        assert self.log is not None
        self.request("SET_LOG_BASE", fds=[self.log.fd], log_size=self.log.size, log_offset=0)

    def start_logging(self) -> None:
        """Dirty logging for pre-copy while the device runs: SET_LOG_BASE, SET_FEATURES(LOG_ALL), ADDR with LOG."""
        neg = self.negotiation
        if not neg.has(PF.LOG_SHMFD):
            raise Refused("migration blocked: the back-end lacks VHOST_USER_PROTOCOL_F_LOG_SHMFD")
        if not neg.offered_features >> F_LOG_ALL & 1:
            raise Refused("migration blocked: the back-end lacks VHOST_F_LOG_ALL")
        self.log = DirtyLog(self.guest.memory.log_size)
        self._set_log_base()
        self.logging = True
        features = self.features()
        self.request("SET_FEATURES", features=features, ack=True, barrier=True, what="SET_FEATURES (LOG_ALL)")
        neg.acked_features = features
        for index in range(self.guest.rings):
            self._set_addr(index)

    def stop_logging(self) -> None:
        """Dirty logging off while running: SET_FEATURES without LOG_ALL, ADDR without LOG (no waiting)."""
        self.logging = False
        features = self.features()
        self.request("SET_FEATURES", features=features)
        self.negotiation.acked_features = features
        for index in range(self.guest.rings):
            self._set_addr(index)
        if self.log is not None:
            self.log.close()
            self.log = None

    def stop(self) -> list[int]:
        """Stop the device: disable, then GET_VRING_BASE every ring (now suspended), then mask calls."""
        if self.negotiation.protocol_features_offered:
            for index in range(self.guest.rings):
                self.request(
                    "SET_VRING_ENABLE",
                    vring=index,
                    num=0,
                    ack=True,
                    barrier=True,
                    what=f"SET_VRING_ENABLE ring {index}",
                )
        bases = []
        for index in range(self.guest.rings):
            record = self.get("GET_VRING_BASE", f"GET_VRING_BASE ring {index}", vring=index, num=0)
            if record["vring"] != index:
                raise ProtocolViolation(f"GET_VRING_BASE reply: vring expected {index}, got {record['vring']}")
            bases.append(record["num"] & 0xFFFF)
        for index, notifiers in enumerate(self.notifiers):
            self.request("SET_VRING_CALL", fds=[notifiers.masked], vring=index, nofd=False)
        return bases

    # Running phase

    def exchange(self, count: int) -> int:
        """Send ``count`` requests over the rings (round robin), kick, and verify every response."""
        sent = 0
        while sent < count or self.guest.outstanding:
            kicked = set()
            for _ in range(count - sent):
                ring = sent % self.guest.rings
                if not self.guest.queues[ring].free_slots:
                    break
                self.guest.submit(ring)
                kicked.add(ring)
                sent += 1
            for ring in kicked:
                notify(self.notifiers[ring].kick)
            self.collect(until_empty=sent >= count)
        return sent

    def submit(self, count: int) -> None:
        """Place requests without kicking (they wait in the rings, e.g. across a migration)."""
        for number in range(count):
            self.guest.submit(number % self.guest.rings)

    def collect(self, until_empty: bool = True) -> int:
        """Wait for used buffers (call eventfds) and verify them; bounded by the timeout per wait."""
        done = 0
        main = self._endpoint()
        # A call can land on the masked notifier when the back-end used a ring before it read the
        # unmasking SET_VRING_CALL (QEMU checks the masked notifier too when it unmasks).
        calls = {fd: index for index, n in enumerate(self.notifiers) for fd in (n.call, n.masked)}
        errs = {n.err: index for index, n in enumerate(self.notifiers)}
        while self.guest.outstanding:
            ready = wait_readable(
                [*calls, *errs, main.fileno()],
                self.options.timeout,
                f"used buffers ({self.guest.outstanding} requests outstanding)",
            )
            for fd in ready:
                if fd in errs:
                    drain(fd)
                    raise GuestError(f"the back-end signalled an error on ring {errs[fd]} (its SET_VRING_ERR eventfd)")
                if fd == main.fileno():
                    self._unexpected_on_main()
                drain(fd)
            for ring in range(self.guest.rings):
                done += self.guest.harvest(ring)
            if not until_empty:
                break
        return done

    def _unexpected_on_main(self) -> None:
        main = self._endpoint()
        try:
            peek = main.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except OSError:
            peek = b""
        if peek == b"":
            raise PeerClosed(f"the back-end closed the connection with {self.guest.outstanding} requests outstanding")
        message = main.receive(self.options.timeout, what="an unexpected message")
        message.close()
        raise ProtocolViolation(f"{message.name}: unsolicited message from the back-end on the main socket")

    # Device state

    def save_state(self, stream: MigrationStream, *, abort_after: int | None = None) -> StateTransfer:
        """Source side: SET_DEVICE_STATE_FD(SAVE), read the state to EOF into ``stream``, CHECK_DEVICE_STATE."""
        result = StateTransfer("SAVE")
        started = time.monotonic()
        read_fd, result.channel = self._open_state_channel(SAVE)

        def sink(data: bytes) -> None:
            stream.append(data)
            result.bytes += len(data)
            if abort_after is not None and result.bytes >= abort_after:
                raise _Abort

        try:
            receive_stream(read_fd, sink, self.options.timeout, "device state SAVE", self.options.chunk_size)
        except _Abort:
            close_all([read_fd])
            self.close_connection()
            raise TransferFailed(
                f"front-end gave up the transfer after {result.bytes} bytes (closed its channel and the socket)"
            ) from None
        except SimError:
            close_all([read_fd])
            raise
        close_all([read_fd])
        stream.end()
        result.seconds = time.monotonic() - started
        result.check = self._check_state("SAVE")
        return result

    def load_state(self, stream: MigrationStream) -> StateTransfer:
        """Destination side: SET_DEVICE_STATE_FD(LOAD), write the state, close, CHECK_DEVICE_STATE."""
        result = StateTransfer("LOAD")
        started = time.monotonic()
        write_fd, result.channel = self._open_state_channel(LOAD)

        def count(n: int) -> None:
            result.bytes += n

        try:
            send_stream(write_fd, stream.read_chunks(), self.options.timeout, "device state LOAD", count)
        finally:
            close_all([write_fd])
        result.seconds = time.monotonic() - started
        result.check = self._check_state("LOAD")
        return result

    def _open_state_channel(self, direction: int) -> tuple[int, str]:
        """Send SET_DEVICE_STATE_FD with one end of a fresh pipe; returns the FD to use and whose it is."""
        name = spec.TRANSFER_DIRECTION[direction]
        read_end, write_end = new_pipe()
        give, keep = (write_end, read_end) if direction == SAVE else (read_end, write_end)
        try:
            reply = self.request(
                "SET_DEVICE_STATE_FD", fds=[give], what=f"SET_DEVICE_STATE_FD ({name})", direction=direction, phase=0
            )
        except SimError:
            close_all([keep])
            raise
        finally:
            close_all([give])
        assert reply is not None
        record = reply.record
        error, nofd = record["state_error"], record["nofd"]
        if error and reply.fds:
            reply.close()
            close_all([keep])
            raise ProtocolViolation(
                f"SET_DEVICE_STATE_FD ({name}) reply: error {error} together with an FD (the spec forbids both)"
            )
        if error:
            close_all([keep])
            raise Refused(f"SET_DEVICE_STATE_FD ({name}): back-end did not accept the state transfer (error {error})")
        if nofd:
            return keep, "frontend"
        close_all([keep])
        return reply.take_fd(), "backend"

    def _check_state(self, name: str) -> int:
        result = self.get("CHECK_DEVICE_STATE", f"CHECK_DEVICE_STATE ({name})")["result"]
        if result:
            raise TransferFailed(
                f"CHECK_DEVICE_STATE after {name}: back-end failed to process its internal state (result {result})"
            )
        return result

    # Reconnect and teardown

    def reconnect(self) -> list[int]:
        """After the back-end closed the connection: connect again, set up, and restart the rings.

        The back-end is gone, so GET_VRING_BASE cannot be asked: like QEMU, take the next
        available index from the used index in guest memory (requests that were not used yet
        are processed again by the new connection). Returns the bases used.
        """
        for ring in range(self.guest.rings):
            self.guest.harvest(ring)
        bases = [queue.used_idx() for queue in self.guest.queues]
        self.close_connection()
        self.connect()
        self.setup()
        self.start(bases)
        return bases

    def _start_responder(self, sock: socket.socket) -> None:
        channel = Endpoint(
            sock, Channel.BACKEND, peer=self.label, timeout=self.options.timeout, transcript=self.transcript
        )
        self.responder = ChannelResponder(self, channel)

    def close_connection(self) -> None:
        if self.responder is not None:
            self.responder.stop(self.options.timeout)
            self.responder = None
        if self.main is not None:
            self.main.close()
            self.main = None

    def close(self) -> None:
        self.close_connection()
        for notifiers in self.notifiers:
            notifiers.close()
        self.notifiers = []
        if self.log is not None:
            self.log.close()
            self.log = None

    def __enter__(self) -> Frontend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Abort(Exception):
    """Internal: the front-end stops reading the state on purpose."""


class ChannelResponder:
    """Answers the back-end's requests on the back-end channel (a thread, like QEMU's backend_read)."""

    def __init__(self, frontend: Frontend, channel: Endpoint) -> None:
        self.frontend = frontend
        self.channel = channel
        self.config_changes = 0
        self.changed = threading.Event()
        self._cancel = new_eventfd()
        self._thread = threading.Thread(target=self._run, name="back-end channel", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                message = self.channel.receive(None, what="a back-end request", cancel_fd=self._cancel)
            except SimError:
                return
            try:
                self._answer(message)
            except SimError as error:
                self.frontend.problems.append(f"back-end channel: {error}")
                return
            finally:
                message.close()

    def _answer(self, message: Received) -> None:
        neg = self.frontend.negotiation
        facts, problems = check_request(message, Channel.BACKEND, neg)
        self.frontend.problems.extend(problems)
        if facts is None:
            return
        status = 0
        if facts.name == "CONFIG_CHANGE_MSG":
            self.config_changes += 1
            self.changed.set()
        else:
            self.frontend.problems.append(f"{facts.name}: not handled by this front-end")
            status = 1
        if neg.replies_to(facts, message.record["need_reply"]):
            self.channel.send(encode(facts.name, "backend", reply=True, result=status))

    def stop(self, timeout: float) -> None:
        notify(self._cancel)
        self._thread.join(timeout)
        self.channel.close()
        close_all([self._cancel])
