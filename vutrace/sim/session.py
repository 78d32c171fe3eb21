"""One front-end connection to the reference back-end: the message loop and a handler per request.

Every request is checked against the spec (``checks.check_request``) and each
problem is reported with the message and field; then it is handled and answered
by the spec's reply rules (always / REPLY_ACK with NEED_REPLY / SET_LOG_BASE with
LOG_SHMFD). Faults asked for in ``BackendOptions`` are applied at the exact
point they concern and reported as ``fault`` events.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dissectors import spec
from dissectors.encode import encode
from dissectors.spec import F_LOG_ALL, F_PROTOCOL_FEATURES, PROTOCOL_FEATURE_REQUIRES, Channel, Message, ReplyRule
from dissectors.spec import ProtocolFeature as PF
from vutrace.sim.checks import Negotiation, check_reply, check_request
from vutrace.sim.errors import GuestError, PeerClosed, PeerTimeout, ProtocolViolation, SimError
from vutrace.sim.fds import close_all, new_pipe, notify
from vutrace.sim.memory import LogWriter, MemoryTable, Region
from vutrace.sim.reports import TransferReport
from vutrace.sim.rings import BackendRing, RingAddresses, RingWorker, log_flag
from vutrace.sim.state import DeviceSnapshot, RingState
from vutrace.sim.statejob import SAVE, StateJob
from vutrace.sim.virtqueue import Chain, DeviceQueue, Logger
from vutrace.sim.wire import Endpoint, Received

if TYPE_CHECKING:
    from vutrace.sim.backend import Backend

MAX_RING_SIZE = 32768


@dataclass
class Reply:
    """An explicit reply: payload fields (flat-record names), FDs to attach, or a raw body."""

    fields: dict = field(default_factory=dict)
    fds: list[int] = field(default_factory=list)
    body: bytes | None = None


Outcome = Reply | int | None
"""What a handler returns: an explicit reply, or a status for an ack (0 or None = success)."""
STATE_FAILED = Reply({"state_error": 1, "nofd": True})


class Session:
    def __init__(self, backend: Backend, sock: socket.socket, stop_fd: int) -> None:
        self.backend = backend
        self.options = backend.options
        self.device = backend.device
        self.stop_fd = stop_fd
        self.main = Endpoint(
            sock, Channel.MAIN, peer="backend", timeout=self.options.timeout, transcript=backend.transcript
        )
        self.negotiation = Negotiation(
            offered_features=self.options.features, offered_protocol=self.options.protocol_features
        )
        self.table = MemoryTable()
        self.rings = [BackendRing(i) for i in range(self.device.rings)]
        self.log: LogWriter | None = None
        self.logging = False
        self.channel: Endpoint | None = None
        self.channel_lock = threading.Lock()
        self.job: StateJob | None = None
        self.owner = False
        self.processed = 0
        self.closing = False
        self.config_change_due = self.options.config_change
        self.worker = RingWorker(self.rings, self._process, self.problem)
        self.handlers: dict[str, Callable[[Received, dict], Outcome]] = {
            name[4:].upper(): getattr(self, name) for name in dir(self) if name.startswith("_on_")
        }

    def problem(self, text: str) -> None:
        self.backend.report("problem", text)

    def fault(self, text: str) -> None:
        self.backend.report("fault", text)

    def info(self, text: str) -> None:
        self.backend.report("info", text)

    def run(self) -> None:
        try:
            while True:
                try:
                    message = self.main.receive(None, what="a request", cancel_fd=self.stop_fd)
                except PeerClosed as closed:
                    self._closed(str(closed))
                    return
                except (ProtocolViolation, PeerTimeout) as error:
                    self.problem(f"closing the connection: {error}")
                    return
                try:
                    self._handle(message)
                except ProtocolViolation:
                    return
                except PeerClosed as closed:
                    self._closed(str(closed))
                    return
                except SimError as error:
                    self.problem(f"closing the connection: {error}")
                    return
                finally:
                    message.close()
        finally:
            self._cleanup()

    def _closed(self, text: str) -> None:
        if self.closing:
            self.backend.report("info", "connection closed by the back-end (fault)")
        elif "stopped" in text:
            self.backend.report("info", "stopped")
        else:
            during = " during a device-state transfer" if self.job is not None else ""
            self.backend.report("info", f"the front-end closed the connection{during}")

    def _handle(self, message: Received) -> None:
        record = message.record
        facts, problems = check_request(message, Channel.MAIN, self.negotiation)
        for text in problems:
            self.problem(text)
        if facts is None:
            if record["need_reply"] and self.negotiation.reply_ack and record["request_id"] is not None:
                self.main.send(encode(record["request_id"], reply=True, body=(1).to_bytes(8, "little")))
            return
        handler = self.handlers.get(facts.name)
        try:
            if handler is None:
                self.problem(f"{facts.name}: not implemented by this back-end")
                outcome: Outcome = 1
            else:
                outcome = handler(message, record)
        except (GuestError, ProtocolViolation) as error:
            text = str(error)
            self.problem(text if text.startswith(facts.name) else f"{facts.name}: {text}")
            if isinstance(error, ProtocolViolation):
                raise
            outcome = STATE_FAILED if facts.name == "SET_DEVICE_STATE_FD" else 1
        self._answer(facts, record, outcome)

    def _answer(self, facts: Message, record: dict, outcome: Outcome) -> None:
        name = facts.name
        must = facts.reply_rule is ReplyRule.ALWAYS or (name == "SET_LOG_BASE" and self.negotiation.has(PF.LOG_SHMFD))
        status = 0 if outcome is None or isinstance(outcome, Reply) else outcome
        if isinstance(outcome, Reply):
            reply = outcome
        elif must and facts.reply[0] is spec.Payload.RESULT:
            reply = Reply({"result": status})
        elif must:
            reply = Reply()
        elif record["need_reply"] and self.negotiation.reply_ack:
            reply = Reply({"result": status})
        else:
            return
        if self.options.missing_reply == name:
            self.fault(f"{name}: reply withheld on purpose")
            close_all(reply.fds)
            return
        flags = None
        if self.options.wrong_reply_flags == name:
            flags = spec.VERSION
            self.fault(f"{name}: reply sent with flags 0x{flags:x} instead of 0x5 on purpose")
        try:
            self.main.send(encode(name, reply=True, flags=flags, body=reply.body, **reply.fields), reply.fds)
        finally:
            close_all(reply.fds)

    def _ring(self, index: int) -> BackendRing:
        if not 0 <= index < len(self.rings):
            raise GuestError(f"ring index {index}: this device has {len(self.rings)} rings")
        return self.rings[index]

    def _take_fd(self, message: Received, what: str) -> int:
        if not message.fds:
            raise GuestError(f"{what}: no FD attached")
        return message.take_fd()

    # Features and session

    def _on_get_features(self, message: Received, record: dict) -> Outcome:
        return Reply({"features": self.options.features})

    def _on_set_features(self, message: Received, record: dict) -> Outcome:
        value = record["features"]
        extra = value & ~self.options.features
        if extra:
            names = ", ".join(spec.feature_names(extra, spec.VIRTIO_FEATURES))
            self.problem(f"SET_FEATURES: bits not offered by GET_FEATURES: {names}")
        self.negotiation.acked_features = value
        logging = bool(value >> F_LOG_ALL & 1)
        if logging != self.logging:
            self.backend.report("info", f"dirty logging {'on' if logging else 'off'} (LOG_ALL)")
        self.logging = logging
        if not value >> F_PROTOCOL_FEATURES & 1:
            for ring in self.rings:
                ring.enabled = True
        return 0

    def _on_set_owner(self, message: Received, record: dict) -> Outcome:
        if self.owner:
            self.problem("SET_OWNER: sent twice on one connection")
        self.owner = True
        return 0

    def _on_reset_owner(self, message: Received, record: dict) -> Outcome:
        self.backend.report("info", "RESET_OWNER (deprecated) ignored")
        return 0

    def _on_get_protocol_features(self, message: Received, record: dict) -> Outcome:
        return Reply({"protocol_features": self.options.protocol_features})

    def _on_set_protocol_features(self, message: Received, record: dict) -> Outcome:
        value = record["protocol_features"]
        extra = value & ~self.options.protocol_features
        if extra:
            names = ", ".join(spec.feature_names(extra, spec.PROTOCOL_FEATURE_NAMES))
            self.problem(f"SET_PROTOCOL_FEATURES: bits not offered: {names}")
        for feature, needs in PROTOCOL_FEATURE_REQUIRES.items():
            missing = [n.name for n in needs if value >> feature & 1 and not value >> n & 1]
            if missing:
                text = f"SET_PROTOCOL_FEATURES: {feature.name} needs {' and '.join(missing)}"
                if feature is PF.INBAND_NOTIFICATIONS:
                    raise ProtocolViolation(f"{text}; the spec says the back-end closes the connection")
                self.problem(text)
        self.negotiation.acked_protocol = value
        return 0

    def _on_get_queue_num(self, message: Received, record: dict) -> Outcome:
        return Reply({"queue_num": self.options.queue_pairs})

    def _on_get_max_mem_slots(self, message: Received, record: dict) -> Outcome:
        return Reply({"max_mem_slots": self.options.max_mem_slots})

    def _on_set_backend_req_fd(self, message: Received, record: dict) -> Outcome:
        fd = self._take_fd(message, "SET_BACKEND_REQ_FD")
        try:
            sock = socket.socket(fileno=fd)
        except OSError as error:
            close_all([fd])
            raise GuestError(f"SET_BACKEND_REQ_FD: the FD is not a socket ({error.strerror})") from error
        with self.channel_lock:
            if self.channel is not None:
                self.channel.close()
            self.channel = Endpoint(
                sock,
                Channel.BACKEND,
                peer="backend",
                timeout=self.options.timeout,
                transcript=self.backend.transcript,
            )
        return 0

    # Memory

    def _rebind_started(self) -> None:
        for ring in self.rings:
            if ring.started:
                ring.start(self.table)

    def _on_set_mem_table(self, message: Received, record: dict) -> Outcome:
        regions = record.get("regions", ())
        if len(message.fds) != len(regions):
            raise GuestError(f"{len(message.fds)} FDs for {len(regions)} regions")
        locks = [ring.lock for ring in self.rings]
        for lock in locks:
            lock.acquire()
        try:
            self.table.clear()
            for region in regions:
                self._map(Region(*region), message.take_fd())
            self._rebind_started()
        finally:
            for lock in locks:
                lock.release()
        return 0

    def _map(self, region: Region, fd: int) -> None:
        self.table.add(region, fd)
        self.info(f"memory region mapped: {_describe(region)}")

    def _region(self, record: dict) -> Region:
        return Region(record["guest_addr"], record["region_size"], record["user_addr"], record["mmap_offset"])

    def _on_add_mem_reg(self, message: Received, record: dict) -> Outcome:
        fd = self._take_fd(message, "ADD_MEM_REG")
        if len(self.table.regions) >= self.options.max_mem_slots:
            close_all([fd])
            raise GuestError(f"all {self.options.max_mem_slots} memory slots are in use")
        self._map(self._region(record), fd)
        return 0

    def _on_rem_mem_reg(self, message: Received, record: dict) -> Outcome:
        if message.fds:
            self.backend.report("info", "REM_MEM_REG: closing the FD that came with it, unused (spec)")
        region = self._region(record)
        if any(ring.started for ring in self.rings):
            self.problem("REM_MEM_REG: rings are running; removing memory under them")
        if not self.table.remove(region):
            raise GuestError(f"no region matches guest 0x{region.guest_addr:x} size 0x{region.size:x}")
        self.info(f"memory region unmapped: {_describe(region)}")
        return 0

    def _on_set_log_base(self, message: Received, record: dict) -> Outcome:
        if not self.negotiation.has(PF.LOG_SHMFD):
            raise GuestError("LOG_SHMFD not negotiated: there is no shared log to write")
        fd = self._take_fd(message, "SET_LOG_BASE")
        if self.log is not None:
            self.log.close()
        self.log = LogWriter(fd, record["log_size"], record["log_offset"])
        end = max((r.guest_addr + r.size for r in self.table.regions), default=0)
        needed = (end // spec.VHOST_LOG_PAGE + 7) // 8
        if record["log_size"] < needed:
            self.problem(f"SET_LOG_BASE: log_size {record['log_size']} does not cover guest RAM (needs {needed})")
        return 0

    def _on_set_log_fd(self, message: Received, record: dict) -> Outcome:
        return 0

    # Rings

    def _on_set_vring_num(self, message: Received, record: dict) -> Outcome:
        ring = self._ring(record["vring"])
        num = record["num"]
        if ring.started:
            self.problem(f"SET_VRING_NUM ring {ring.index}: the ring is started")
        if not 0 < num <= MAX_RING_SIZE or num & (num - 1):
            raise GuestError(f"ring {ring.index}: size {num} is not a power of two up to {MAX_RING_SIZE}")
        ring.size = num
        return 0

    def _on_set_vring_addr(self, message: Received, record: dict) -> Outcome:
        ring = self._ring(record["vring"])
        addresses = RingAddresses(
            record["desc_addr"], record["used_addr"], record["avail_addr"], record["log_addr"], record["addr_flags"]
        )
        if log_flag(addresses) and self.log is None:
            self.backend.report("info", f"SET_VRING_ADDR ring {ring.index}: LOG flag before SET_LOG_BASE")
        with ring.lock:
            ring.addresses = addresses
            if ring.started:
                ring.start(self.table)
        return 0

    def _on_set_vring_base(self, message: Received, record: dict) -> Outcome:
        ring = self._ring(record["vring"])
        num = record["num"]
        if ring.started:
            self.problem(f"SET_VRING_BASE ring {ring.index}: the ring is started")
        if num >> 16:
            self.problem(f"SET_VRING_BASE ring {ring.index}: reserved bits 16-31 set (num 0x{num:x})")
        ring.base = num & 0xFFFF
        loaded = self.backend.loaded
        if loaded is not None and ring.index < len(loaded.rings) and loaded.rings[ring.index].last_avail != ring.base:
            self.problem(
                f"SET_VRING_BASE ring {ring.index}: {ring.base}, but the migrated state says "
                f"{loaded.rings[ring.index].last_avail}"
            )
        return 0

    def _on_get_vring_base(self, message: Received, record: dict) -> Outcome:
        ring = self._ring(record["vring"])
        if record["num"]:
            self.problem(f"GET_VRING_BASE ring {ring.index}: num is reserved and must be 0, got {record['num']}")
        with ring.lock:
            was_started = ring.started
            base = ring.stop()
            old, ring.kick = ring.kick, None
            self.worker.retire(old)
        if was_started:
            self.info(f"ring {ring.index} stopped: next avail {base}, used {ring.used_idx}")
        if not any(r.started for r in self.rings):
            self.info("all rings stopped: device suspended")
        return Reply({"vring": ring.index, "num": base})

    def _on_set_vring_kick(self, message: Received, record: dict) -> Outcome:
        ring = self._ring(record["vring"])
        if record["nofd"]:
            raise GuestError(f"ring {ring.index}: polling mode (no kick FD) is not supported")
        fd = self._take_fd(message, f"SET_VRING_KICK ring {ring.index}")
        with ring.lock:
            was_started = ring.started
            old, ring.kick = ring.kick, fd
            self.worker.retire(old)
            ring.start(self.table)
            base = ring.queue.last_avail if ring.queue is not None else ring.base
        if was_started:
            self.info(f"ring {ring.index}: kick FD replaced while started")
        else:
            self.info(f"ring {ring.index} started: size {ring.size}, next avail {base}")
        self.worker.wake()
        return 0

    def _set_notifier(self, message: Received, record: dict, attribute: str) -> Outcome:
        ring = self._ring(record["vring"])
        fd = None if record["nofd"] else self._take_fd(message, f"ring {ring.index}")
        with ring.lock:
            old = getattr(ring, attribute)
            setattr(ring, attribute, fd)
            self.worker.retire(old)
        return 0

    def _on_set_vring_call(self, message: Received, record: dict) -> Outcome:
        return self._set_notifier(message, record, "call")

    def _on_set_vring_err(self, message: Received, record: dict) -> Outcome:
        return self._set_notifier(message, record, "err")

    def _on_set_vring_enable(self, message: Received, record: dict) -> Outcome:
        ring = self._ring(record["vring"])
        if record["num"] not in (0, 1):
            self.problem(f"SET_VRING_ENABLE ring {ring.index}: num must be 0 or 1, got {record['num']}")
        with ring.lock:
            changed = ring.enabled != bool(record["num"])
            ring.enabled = bool(record["num"])
        if changed:
            self.info(f"ring {ring.index} {'enabled' if ring.enabled else 'disabled'}")
        if ring.enabled:
            self.worker.schedule(ring.index)
        return 0

    # Config space

    def _on_get_config(self, message: Received, record: dict) -> Outcome:
        space = self.device.config_space()
        offset, size = record["config_offset"], record["config_size"]
        if offset + size > len(space):
            self.problem(f"GET_CONFIG: offset {offset} + size {size} beyond the {len(space)}-byte config space")
            return Reply(body=b"")
        return Reply(
            {
                "config_offset": offset,
                "config_size": size,
                "config_flags": record["config_flags"],
                "config_data": space[offset : offset + size],
            }
        )

    def _on_set_config(self, message: Received, record: dict) -> Outcome:
        if record["config_flags"] != 1:
            self.problem("SET_CONFIG: the config space is read-only (accepted only with flags 1, migration)")
            return 1
        return 0

    # Device state

    def _on_set_device_state_fd(self, message: Received, record: dict) -> Outcome:
        direction, phase = record["direction"], record["phase"]
        fd = self._take_fd(message, "SET_DEVICE_STATE_FD")
        name = spec.TRANSFER_DIRECTION.get(direction, str(direction))
        refusal = self._state_refusal(direction, phase, name)
        if refusal:
            self.problem(refusal)
            close_all([fd])
            return STATE_FAILED
        faults = self.options.faults
        if "state-fd-error" in faults:
            self.fault(f"SET_DEVICE_STATE_FD ({name}): reporting an error (0x101) on purpose")
            close_all([fd])
            return STATE_FAILED
        if "error-with-fd" in faults:
            self.fault(f"SET_DEVICE_STATE_FD ({name}): reporting an error together with an FD on purpose")
            read_end, write_end = new_pipe()
            close_all([fd, write_end if direction == SAVE else read_end])
            return Reply({"state_error": 1, "nofd": False}, [read_end if direction == SAVE else write_end])
        reply = Reply({"state_error": 0, "nofd": True})
        channel = "frontend"
        if "own-channel" in faults:
            read_end, write_end = new_pipe(1 << 20)
            mine, theirs = (write_end, read_end) if direction == SAVE else (read_end, write_end)
            close_all([fd])
            fd, channel = mine, "backend"
            reply = Reply({"state_error": 0, "nofd": False}, [theirs])
        report = TransferReport(name, channel)
        self.backend.transfers.append(report)
        snapshot = self._snapshot() if direction == SAVE else None
        self.job = StateJob(
            direction,
            fd,
            report,
            timeout=self.options.timeout,
            snapshot=snapshot,
            max_rings=len(self.rings),
            on_problem=self.problem,
        )
        self.job.start()
        return reply

    def _state_refusal(self, direction: int, phase: int, name: str) -> str | None:
        if direction not in spec.TRANSFER_DIRECTION:
            return f"SET_DEVICE_STATE_FD: direction {direction} is neither 0 (SAVE) nor 1 (LOAD)"
        if phase not in spec.MIGRATION_PHASE:
            return f"SET_DEVICE_STATE_FD: phase {phase}, only 0 (STOPPED) is defined"
        if not self.negotiation.has(PF.DEVICE_STATE):
            return f"SET_DEVICE_STATE_FD ({name}) refused: DEVICE_STATE is not negotiated"
        running = [str(r.index) for r in self.rings if r.started]
        if running:
            return (
                f"SET_DEVICE_STATE_FD ({name}) refused: phase STOPPED needs a suspended device, but ring(s) "
                f"{', '.join(running)} are still started (no GET_VRING_BASE)"
            )
        if self.job is not None and not self.job.join(0):
            return f"SET_DEVICE_STATE_FD ({name}) refused: the previous transfer is still running"
        return None

    def _snapshot(self) -> DeviceSnapshot:
        rings = tuple(RingState(r.base, r.used_idx, r.enabled, self.device.processed[r.index]) for r in self.rings)
        return DeviceSnapshot(self.options.seed, self.options.state_size, self.device.config_generation, rings)

    def _on_check_device_state(self, message: Received, record: dict) -> Outcome:
        job, self.job = self.job, None
        if job is None:
            self.problem("CHECK_DEVICE_STATE: no state transfer was started on this connection")
            return Reply({"result": 1})
        if not job.join(self.options.timeout):
            self.problem(f"CHECK_DEVICE_STATE: the transfer is still running after {self.options.timeout:g} s")
            return Reply({"result": 1})
        if "check-fails" in self.options.faults:
            self.fault("CHECK_DEVICE_STATE: reporting failure on purpose")
            return Reply({"result": 1})
        if job.report.error:
            return Reply({"result": 1})
        loaded = job.loaded
        if loaded is not None:
            processed = [r.processed for r in loaded.rings]
            self.device.processed = processed + [0] * (self.device.rings - len(processed))
            self.device.config_generation = loaded.config_generation
            self.backend.loaded = loaded
        self.backend.report(
            "info",
            f"device state {job.report.direction} verified: {job.report.bytes} bytes, sha256 {job.report.sha256[:16]}",
        )
        return Reply({"result": 0})

    # Running phase (ring worker thread)

    def _process(self, ring: BackendRing) -> bool:
        """Serve the chains waiting in a ring, at most one ring's worth per turn; True if more wait."""
        with ring.lock:
            queue = ring.queue
            if queue is None or self.closing:
                return False
            handled = 0
            try:
                while handled < queue.size and not self.closing and not self._disconnect_due():
                    if not queue.available():
                        break
                    if not ring.enabled and not queue.peek().readable:
                        break
                    chain = queue.pop()
                    written = self._serve(ring, queue, chain) if ring.enabled else 0
                    queue.push(chain.head, written, self._used_logger(ring))
                    handled += 1
                    self.processed += 1
            except GuestError:
                if ring.err is not None:
                    notify(ring.err)
                raise
            finally:
                if handled and ring.call is not None:
                    notify(ring.call)
            more = handled == queue.size and not self.closing
        if self._disconnect_due():
            self._disconnect()
            return False
        return more

    def _serve(self, ring: BackendRing, queue: DeviceQueue, chain: Chain) -> int:
        """The device's answer to one chain; returns the used length (bytes written)."""
        request = b"".join(queue.read(addr, length) for addr, length in chain.readable)
        if self.config_change_due:
            self._config_change()
        if not chain.writable:
            self.device.consume(ring.index)
            return 0
        data = self.device.handle(ring.index, request)
        room = sum(length for _, length in chain.writable)
        if room < len(data):
            self.problem(
                f"ring {ring.index}: response needs {len(data)} bytes, the writable buffers hold {room}: cut short"
            )
            data = data[:room]
        log = self.log.mark if self._logging() else None
        offset = 0
        for addr, length in chain.writable:
            part = data[offset : offset + length]
            if part:
                queue.write(addr, part, log)
            offset += len(part)
        return len(data)

    def _logging(self) -> bool:
        return self.logging and self.log is not None and "skip-dirty-log" not in self.options.faults

    def _used_logger(self, ring: BackendRing) -> Logger | None:
        log = self.log
        if not (self._logging() and log and log_flag(ring.addresses)):
            return None
        base = ring.addresses.log  # type: ignore[union-attr]
        return lambda offset, length: log.mark(base + offset, length)

    def _config_change(self) -> None:
        """Tell the front-end the config space changed, on the back-end channel (once per connection)."""
        self.config_change_due = False
        if self.channel is None or not (self.negotiation.has(PF.CONFIG) and self.negotiation.has(PF.BACKEND_REQ)):
            return
        self.device.config_generation += 1
        facts = spec.by_name(Channel.BACKEND, "CONFIG_CHANGE_MSG")
        need = self.negotiation.reply_ack
        with self.channel_lock:
            try:
                self.channel.send(encode("CONFIG_CHANGE_MSG", "backend", need_reply=need))
                if need:
                    reply = self.channel.receive(self.options.timeout, what="the reply to BACKEND_CONFIG_CHANGE_MSG")
                    reply.close()
                    for text in check_reply(reply, facts):
                        self.problem(text)
                    if reply.record.get("result"):
                        self.problem(f"BACKEND_CONFIG_CHANGE_MSG: front-end replied {reply.record['result']}")
            except SimError as error:
                self.problem(f"back-end channel: {error}")

    def _disconnect_due(self) -> bool:
        limit = self.options.disconnect_after
        return limit is not None and not self.backend.disconnect_done and self.processed >= limit

    def _disconnect(self) -> None:
        self.backend.disconnect_done = True
        self.closing = True
        self.fault(f"closing the connection after {self.processed} requests on purpose")
        with contextlib.suppress(OSError):
            self.main.sock.shutdown(socket.SHUT_RDWR)

    def _cleanup(self) -> None:
        self.closing = True
        self.worker.stop(self.options.timeout)
        if self.job is not None and not self.job.join(self.options.timeout):
            self.problem("device-state transfer thread did not end in time")
        for ring in self.rings:
            close_all([ring.kick, ring.call, ring.err])
            ring.kick = ring.call = ring.err = None
            ring.queue = None
        with self.channel_lock:
            if self.channel is not None:
                self.channel.close()
        if self.log is not None:
            self.log.close()
        self.table.clear()
        self.main.close()


def _describe(region: Region) -> str:
    return (
        f"guest 0x{region.guest_addr:x}, 0x{region.size:x} bytes, user 0x{region.user_addr:x}, "
        f"mmap offset 0x{region.mmap_offset:x}"
    )
