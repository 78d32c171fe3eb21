# Source of notebooks/02-device-state-migration.ipynb: edit here, then run `.venv/bin/python notebooks/build.py`.
# ruff: noqa: E402 (imports where they are first needed)

# %% [markdown]
# # Migrating a vhost-user back-end's state
#
# When a VM is live migrated, its memory is copied to the destination while it runs, then the
# VM is stopped, the rest is copied, and the destination takes over. A vhost-user device
# complicates this: part of the device lives in another process, the back-end, and that
# process may hold state that is in no guest page. virtiofsd, for example, remembers which
# files the guest has looked up and opened. The DEVICE_STATE extension lets that state travel
# inside the front-end's own migration stream.
#
# This notebook explains the extension from the specification and then watches it happen:
#
# 1. why the extension exists and what order of events it assumes;
# 2. `SET_DEVICE_STATE_FD`: its parameters, its reply bits, the pipe-like channel, the
#    back-end-provided channel; `CHECK_DEVICE_STATE`;
# 3. a live migration between vutrace's reference peers, recorded by two proxies, drawn as a
#    timeline and a throughput chart;
# 4. the real thing: QEMU 10 migrating a virtiofsd 1.13 back-end (source and destination
#    captures from `samples/`);
# 5. what goes wrong, and how `vutrace check` reports it.
#
# Section names in square brackets are those of the vhost-user specification
# (`docs/interop/vhost-user.rst`), mostly [Migrating back-end state] under [Migration].
# Notebook 01 introduces the message format and the ring states this one builds on.

# %%
import hashlib
import os
import tempfile
import threading
from pathlib import Path

import pandas as pd

import vutrace
from dissectors import spec
from dissectors.encode import encode
from dissectors.layers import dissect
from dissectors.records import decode
from vutrace.analysis import checks, throughput, timeline
from vutrace.analysis.frame import Capture
from vutrace.report import figures

pd.set_option("display.max_columns", 30)
pd.set_option("display.max_rows", 120)
pd.set_option("display.width", 200)
pd.set_option("display.max_colwidth", 120)

SAMPLES = Path("../samples")
assert SAMPLES.is_dir(), "start Jupyter in notebooks/ so that ../samples is the samples folder"
# sockets and captures of the live runs; removed by the last cell
WORK = tempfile.TemporaryDirectory(prefix="vutrace-nb2-")

# %% [markdown]
# ## 1. Why the back-end's state needs a protocol
#
# Migration should be invisible to the guest: its virtio driver must carry on as if nothing
# happened, without resetting the device [Migrating back-end state]. For the parts of the
# device that live in guest memory (the rings, the buffers) the normal memory copy is enough,
# provided the back-end reports the pages it writes while the copy runs (the *dirty log*,
# [Migration]). What the back-end keeps in its own process is not copied by anybody.
#
# A back-end could move that state itself, over its own connection to the destination. The
# DEVICE_STATE protocol feature (bit 19) offers something simpler: the front-end collects the
# back-end's state as an opaque blob and puts it into the migration stream it sends anyway. The
# back-end needs no migration channel of its own, and the whole VM, vhost-user devices
# included, is in one stream.
#
# The order of events, as QEMU does it:
#
# 1. **Source, while the VM still runs: dirty logging on.** `SET_LOG_BASE` hands over the log
#    memory (an FD), `SET_FEATURES` adds LOG_ALL, `SET_VRING_ADDR` sets each ring's log flag.
# 2. **Source: the VM stops, the device is suspended.** Per ring `SET_VRING_ENABLE 0`, then
#    `GET_VRING_BASE`, whose reply says where the ring stopped.
# 3. **Source: the back-end saves its state.** `SET_DEVICE_STATE_FD` (SAVE, STOPPED) with a pipe;
#    the back-end writes its state into it and closes it; then `CHECK_DEVICE_STATE`.
# 4. **Destination: the back-end loads the state.** `SET_DEVICE_STATE_FD` (LOAD, STOPPED) with a
#    pipe; the front-end writes the state and closes it; then `CHECK_DEVICE_STATE`.
# 5. **Destination: the device starts where the source stopped.** The usual set-up, with
#    `SET_VRING_BASE` = the source's `GET_VRING_BASE` for each ring.
#
# The transfer happens while the device is **suspended** [Suspended device state]: every ring
# is stopped, so the back-end writes no guest memory, sends no notifications and no messages; it
# only answers the front-end. Its state cannot change during the save.

# %% [markdown]
# ## 2. `SET_DEVICE_STATE_FD` (42)
#
# What the fact table says about it:

# %%
facts = spec.by_name("main", "SET_DEVICE_STATE_FD")
pd.Series(
    {
        "id": facts.id,
        "request payload": facts.request.value,
        "request fields": ", ".join(f"{f.name} ({f.doc})" for f in spec.FIXED_LAYOUTS[facts.request]),
        "reply payload": facts.reply[0].value,
        "reply field": spec.FIXED_LAYOUTS[facts.reply[0]][0].doc,
        "reply": facts.reply_rule.value,
        "FDs with the request": facts.request_fds.value,
        "FDs with the reply": facts.reply_fds.value,
        "needs protocol feature": facts.gate.protocol.name,
    }
).to_frame("SET_DEVICE_STATE_FD")

# %% [markdown]
# ### The parameters: direction and phase
#
# The request payload is two 32-bit enums [Device state transfer parameters]:
#
# * **direction**: `0` SAVE, from the back-end to the front-end (on the source); `1` LOAD, from
#   the front-end to the back-end (on the destination);
# * **phase**: `0` STOPPED, the only phase defined so far: the VM is stopped and the device is
#   suspended. Other phases, for example a transfer while the device runs, may come later.
#
# One FD travels with the request: the front-end's end of the channel (the write end of a pipe
# for SAVE, the read end for LOAD).

# %%
print("directions:", spec.TRANSFER_DIRECTION, " phases:", spec.MIGRATION_PHASE)
save = encode("SET_DEVICE_STATE_FD", direction=0, phase=0)
load = encode("SET_DEVICE_STATE_FD", direction=1, phase=0)
for data in (save, load):
    print(data.hex(" "), "  ", dissect(data).summary())
dissect(load).show()

# %% [markdown]
# ### The reply: an error byte and the invalid-FD flag
#
# The reply is one u64, and two parts of it matter:
#
# * **bits 0-7**: 0 on success, anything else is an error: the back-end will not do this
#   transfer;
# * **bit 8**: the *invalid FD* flag. Set: the back-end returns no FD and will use the channel
#   the front-end sent. Clear: an FD comes with the reply, the back-end's own channel, and the
#   front-end must drop its channel and use that one.
#
# The back-end must not report an error *and* return an FD. Every combination, decoded, with
# what a front-end makes of it (the dissector's `warning` notices when the FD count does not
# match bit 8):


# %%
def front_end_reading(record: dict, fds: int) -> str:
    """What a front-end does with a SET_DEVICE_STATE_FD reply."""
    if record["state_error"] and fds:
        return "protocol violation: an error AND an FD (the spec forbids both)"
    if record["state_error"]:
        return "the back-end refused: the migration fails, the source resumes"
    if record["nofd"]:
        return "success: use the front-end's own pipe"
    if fds:
        return "success: drop the own pipe, use the back-end's channel"
    return "protocol violation: bit 8 clear promises an FD, none came"


cases = [(0, True, 0), (0, False, 1), (1, True, 0), (1, False, 1), (0, False, 0)]
rows = []
for error, nofd, fds in cases:
    data = encode("SET_DEVICE_STATE_FD", reply=True, state_error=error, nofd=nofd)
    record = decode(data, nfds=fds)
    rows.append(
        {
            "u64": hex(record["u64"]),
            "FDs": fds,
            "state_error": record["state_error"],
            "nofd": record["nofd"],
            "dissector warning": record["warning"] or "",
            "front-end": front_end_reading(record, fds),
        }
    )
pd.DataFrame(rows)

# %% [markdown]
# ### The channel behaves like a pipe
#
# What the FD refers to is up to its creator, but it must behave like a pipe [Migrating back-end
# state]: the writer writes the whole state and **closes** its end; the reader reads until
# **end of file**. There is no length field and no framing: EOF is the only "done".
#
# Here is that contract with a real pipe. A thread plays the back-end saving its state in
# pieces; the notebook plays the front-end reading to EOF:

# %%
state = hashlib.sha256(b"a back-end's state").digest() * 10_000


def save_state(write_end: int, data: bytes) -> None:
    with os.fdopen(write_end, "wb") as channel:
        for start in range(0, len(data), 50_000):
            channel.write(data[start : start + 50_000])
    # leaving the block closes the write end: that is the end-of-transfer signal


def read_to_eof(read_end: int) -> tuple[bytes, list[int]]:
    received, reads = bytearray(), []
    with os.fdopen(read_end, "rb", buffering=0) as channel:
        while chunk := channel.read(1 << 20):
            reads.append(len(chunk))
            received += chunk
    return bytes(received), reads


read_end, write_end = os.pipe()
writer = threading.Thread(target=save_state, args=(write_end, state))
writer.start()
received, reads = read_to_eof(read_end)
writer.join()
print(f"{len(received):,} bytes in {len(reads)} reads (largest {max(reads):,}); identical: {received == state}")
assert received == state

# %% [markdown]
# The reader cannot tell how big each read will be (that depends on the pipe's buffer and on
# timing), which is why vutrace records the stream as *chunks*, one per read. Now a back-end
# that fails half-way: it simply closes its end early. The reader sees a normal EOF:

# %%
read_end, write_end = os.pipe()
writer = threading.Thread(target=save_state, args=(write_end, state[: len(state) // 2]))
writer.start()
partial, reads = read_to_eof(read_end)
writer.join()
print(f"{len(partial):,} of {len(state):,} bytes, then EOF; the channel itself reports no error")

# %% [markdown]
# Nothing on the channel says whether the writer finished or gave up, and on the destination
# only the back-end knows whether it could *use* what it read. That is the job of the next
# message.
#
# ## 3. `CHECK_DEVICE_STATE` (43)
#
# After the transfer (the channel has been closed and everything read), the front-end asks the
# back-end whether the transfer worked on its side [VHOST_USER_CHECK_DEVICE_STATE]. The request
# has no payload; the reply is a u64, 0 for success. On the destination the back-end answers
# once it has deserialized and applied the state, so this reply can take a while.

# %%
check, ok, failed = (
    encode("CHECK_DEVICE_STATE"),
    encode("CHECK_DEVICE_STATE", reply=True, result=0),
    encode("CHECK_DEVICE_STATE", reply=True, result=1),
)
for data in (check, ok, failed):
    print(f"{data.hex(' '):<62}", dissect(data).summary())

# %% [markdown]
# ### The back-end-provided channel
#
# The front-end always creates a channel (QEMU: a pipe) and sends one end. A back-end that has
# something more efficient, for example a channel it can fill without copying, may create its
# own and return an FD in the reply (bit 8 clear). The front-end then closes its own channel
# and uses the returned one [VHOST_USER_SET_DEVICE_STATE_FD]. We will see both variants on the
# wire below.
#
# ### What the proxy records
#
# The state never crosses the vhost-user socket: it goes through the channel, whose FD the
# socket only carries. To see it, the vutrace proxy **substitutes** a pipe of its own for the FD
# (the one in the request, or the one in the reply), relays the bytes between the two real
# ends, and records:
#
# * a `state_open` event, then one `STATE_CHUNK` row per read (`channel == "state"`, with
#   `offset`, `nbytes` and the bytes in `raw`);
# * a `state_close` event when the writer closed and the proxy passed the end of the stream on,
#   with the byte total (and the SHA-256 of the whole stream when the proxy keeps only hashes of
#   the chunks, `--state-payload hash`; otherwise the analysis hashes the recorded bytes).

# %% [markdown]
# ## 4. A live migration, recorded
#
# `vutrace.sim` has a reference back-end and front-end that follow QEMU's message order. Its
# back-end's state is a header, a table of ring positions and a payload of configurable size,
# followed by a SHA-256 digest; the destination checks every byte. We start two back-ends,
# put a capturing proxy in front of each (`ProxyThreads`: `vutrace.proxy.Proxy` running in
# this process), and let one front-end migrate from the first to the second:
#
# ```
#   front-end (source side) ----> proxy ----> back-end A   capture: source.pcapng
#   front-end (destination) ----> proxy ----> back-end B   capture: destination.pcapng
# ```

# %%
from vutrace.sim import Backend, BackendOptions, ProxyThreads, run_migration

STATE_SIZE = 4 << 20
"""Payload bytes of the simulated back-end's state: 4 MiB, big enough to take several reads."""

live_dir = Path(WORK.name) / "live"
live_dir.mkdir()
route = ProxyThreads(live_dir)
options = BackendOptions(state_size=STATE_SIZE)
with (
    Backend(live_dir / "a.sock", options).start() as backend_a,
    Backend(live_dir / "b.sock", options).start() as backend_b,
    route("source", backend_a.path) as source_socket,
    route("destination", backend_b.path) as destination_socket,
):
    migration = run_migration(source_socket, destination_socket)
print("\n".join(migration.summary()))
assert migration.ok, migration.error

# %% [markdown]
# The front-end's own summary says the guest's requests carried on at the destination, and the
# ring positions and the state arrived intact. Now let us check that from the captures alone,
# as you would for two programs you cannot look into.


# %%
def open_pair(source: Path, destination: Path) -> tuple[Capture, Capture]:
    return Capture(vutrace.load(source), "source", str(source)), Capture(
        vutrace.load(destination), "destination", str(destination)
    )


live_source, live_destination = open_pair(*route.captures)
MIGRATION_START = ("SET_LOG_BASE", "SET_DEVICE_STATE_FD")


def migration_records(capture: Capture) -> pd.DataFrame:
    """Every record from the first SET_LOG_BASE or SET_DEVICE_STATE_FD on, one line each."""
    origin = int(capture.df["ts_ns"].min())
    start = min(r["row"] for r in capture.records if r.get("request") in MIGRATION_START and not r.get("is_reply"))
    return pd.DataFrame(
        {"row": r["row"], "ms": (int(r["ts_ns"]) - origin) / 1e6, "sender": r["sender"], "record": figures.summary(r)}
        for r in capture.records
        if r["row"] >= start
    )


migration_records(live_source)

# %% [markdown]
# On the source: dirty logging on, the rings stopped (enable 0, then `GET_VRING_BASE`), the SAVE
# with the reply `nofd=true` (use the front-end's pipe), the state chunks, `CHECK_DEVICE_STATE`.
# The destination loads the state, then sets the device up and starts each ring at the source's
# position with `SET_VRING_BASE`:

# %%
migration_records(live_destination)

# %% [markdown]
# A detail of the recording: the chunk rows are the proxy's reads, stamped when the proxy passes
# them on. On the destination the front-end is done as soon as it has written everything into
# its pipe and closed it, so its `CHECK_DEVICE_STATE` can appear while the proxy is still
# passing the last chunks to the back-end. The back-end's reply comes after it has read to EOF.

# %% [markdown]
# ### The timeline
#
# `vutrace.analysis.timeline` cuts each capture into phases (negotiation, set-up, running,
# dirty logging, suspension, suspended, state transfer, check, resume, teardown) and pairs the
# two sides. `figures.timeline_figure` draws them on one time axis, with every record as a tick
# underneath (hover for details):


# %%
def sides_of(*captures: Capture) -> list[tuple[Capture, timeline.SideTimeline]]:
    return [(capture, timeline.side_timeline(capture)) for capture in captures]


live_sides = sides_of(live_source, live_destination)
live_origin = min(side.first_ns for _, side in live_sides)
figures.timeline_figure(live_sides, live_origin).update_layout(title="Simulated migration: phases of both sides")

# %% [markdown]
# **Downtime**, as far as this device is concerned, runs from the start of the source's
# suspension to the moment the destination's rings run again. `timeline.migration` measures it
# and the part of it spent moving the state:


# %%
def migration_summary(sides: list[tuple[Capture, timeline.SideTimeline]]) -> tuple[timeline.Migration, pd.Series]:
    paired = timeline.migration(sides[0][1], sides[1][1])
    numbers = pd.Series(
        {
            "device downtime (ms)": paired.downtime_ns / 1e6,
            "save: request to check reply (ms)": (paired.save_span[1] - paired.save_span[0]) / 1e6,
            "load: request to check reply (ms)": (paired.load_span[1] - paired.load_span[0]) / 1e6,
            "share of the downtime in save + load": f"{paired.transfer_share:.0%}",
        }
    )
    return paired, numbers


live_migration, numbers = migration_summary(live_sides)
numbers.to_frame("simulated migration")

# %% [markdown]
# The destination must start every ring where the source stopped it. `GET_VRING_BASE` on the
# source and `SET_VRING_BASE` on the destination, ring by ring:


# %%
def ring_bases(paired: timeline.Migration) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "ring": r.vring,
            "source GET_VRING_BASE": r.source,
            "destination SET_VRING_BASE": r.destination,
            "match": r.match,
        }
        for r in paired.ring_bases
    )
    assert table["match"].all(), "the destination does not resume where the source stopped"
    return table


ring_bases(live_migration)

# %% [markdown]
# The same migration as a sequence diagram of the source side, from the start of the migration
# (the state chunks are drawn as one arrow into the state pipe):

# %%
figures.ladder_figure(live_source, figures.ladder_rows(live_source), live_origin)

# %% [markdown]
# ### Throughput of the state transfer
#
# `vutrace.analysis.throughput` turns each transfer into a stream: who provided the channel,
# how many bytes, in how many reads, how fast, and the SHA-256 of the bytes:


# %%
def stream_table(streams: list[throughput.Stream]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "capture": s.side,
            "direction": s.direction,
            "channel of the": s.provider,
            "bytes": s.total,
            "chunks": len(s.chunks),
            "first byte after (ms)": (s.first_byte_ns or 0) / 1e6,
            "duration (ms)": (s.duration_ns or 0) / 1e6,
            "MiB/s": (s.average_rate or 0) / 2**20,
            "sha256": s.sha256,
        }
        for s in streams
    )


live_streams = throughput.streams(live_source) + throughput.streams(live_destination)
stream_table(live_streams)

# %%
figures.throughput_figure(live_streams).update_layout(title="Simulated migration: device state over time")

# %% [markdown]
# The SAVE stream (back-end to front-end on the source) and the LOAD stream (front-end to
# back-end on the destination) should carry exactly the same bytes. The streams' hashes say so;
# here is the same check done on the chunk bytes themselves, and against the hash the front-end
# computed:


# %%
def state_bytes(capture: Capture) -> bytes:
    """The device state as the proxy saw it: the chunk bytes in stream order."""
    chunks = capture.df[capture.df["channel"] == "state"].sort_values("offset")
    return b"".join(chunks["raw"])


saved, loaded = state_bytes(live_source), state_bytes(live_destination)
comparison = throughput.compare(*(throughput.streams(c) for c in (live_source, live_destination)))
print(f"saved {len(saved):,} bytes, loaded {len(loaded):,} bytes, identical: {saved == loaded}")
print(
    "stream hashes equal:",
    comparison.same_hash,
    "| front-end's hash equal:",
    hashlib.sha256(saved).hexdigest() == migration.state_sha256,
)
print("the state starts with", saved[:8])
assert saved == loaded and comparison.same_hash

# %% [markdown]
# And the conformance checker, given both captures, finds nothing to report:


# %%
def findings_table(findings: list) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rule": f.rule,
            "severity": f.severity.value,
            "message": f.message,
            "spec section": f.section,
            "records": ", ".join(f"{r.side} row {r.row}" for r in f.records),
        }
        for f in findings
    )


live_findings = checks.check(live_source, live_destination)
print(f"{len(live_findings)} findings")
assert not live_findings

# %% [markdown]
# ### When the back-end brings its own channel
#
# The scenario `migrate-own-channel` runs the same migration with back-ends that answer
# `SET_DEVICE_STATE_FD` with `0x0` and their own pipe. `run_scenario` does in one call what we
# did by hand above (back-ends in threads, a proxy per side). The reply now carries an FD, and
# the proxy substitutes that one:

# %%
from vutrace.sim import SCENARIOS, run_scenario


def run_recorded(name: str) -> tuple[object, list[Capture]]:
    """Run a scenario with a capturing proxy per side; the result and the captures."""
    folder = Path(WORK.name) / name
    folder.mkdir()
    scenario_route = ProxyThreads(folder)
    result = run_scenario(name, route=scenario_route, workdir=folder)
    labels = {"backend": name, "source": "source", "destination": "destination"}
    return result, [Capture(vutrace.load(p), labels[p.stem], str(p)) for p in scenario_route.captures]


own_result, own_captures = run_recorded("migrate-own-channel")
assert own_result.ok
own = own_captures[0].df
own[own["request"].isin(["SET_DEVICE_STATE_FD", "state_open"])][
    ["sender", "request", "is_reply", "u64", "state_error", "nofd", "nfds", "fds", "attrs"]
]

# %%
stream_table(throughput.streams(own_captures[0]) + throughput.streams(own_captures[1]))[
    ["capture", "direction", "channel of the", "bytes", "sha256"]
]

# %% [markdown]
# ## 5. The real thing: QEMU 10 and virtiofsd 1.13
#
# `samples/virtiofs-migration-source.pcapng` and `...-destination.pcapng` were recorded by two
# vutrace proxies while QEMU live-migrated a Linux guest that had mounted a virtio-fs share
# (`samples/README.md` has the command lines). The guest had created files and kept two of them
# open; after the migration it went on reading and appending through the same open files on
# the destination. Everything below is computed from the two files.

# %%
real_source, real_destination = open_pair(
    SAMPLES / "virtiofs-migration-source.pcapng", SAMPLES / "virtiofs-migration-destination.pcapng"
)
migration_records(real_source)

# %% [markdown]
# The source side follows the order of section 1: `SET_LOG_BASE` with a 16 KiB log memfd (its
# reply echoes the log description, because LOG_SHMFD is negotiated), `SET_FEATURES` adding
# LOG_ALL, each ring disabled and stopped, then the SAVE. Note the reply to
# `SET_DEVICE_STATE_FD`: `nofd=true`, virtiofsd uses QEMU's pipe.
#
# On the destination, QEMU loads the state into virtiofsd **before** it starts the device, so
# the `SET_VRING_BASE` messages come after the LOAD. (The last rows are the destination QEMU
# quitting at the end of the recording: it stops the device once more.)

# %%
migration_records(real_destination)


# %%
def first_row(capture: Capture, request: str, **fields: object) -> int:
    frame = capture.df[(capture.df["request"] == request) & ~capture.df["is_reply"]]
    for name, value in fields.items():
        frame = frame[frame[name] == value]
    return int(frame.index[0])


load_row = first_row(real_destination, "SET_DEVICE_STATE_FD", direction=1)
kick_row = first_row(real_destination, "SET_VRING_KICK")
print(f"destination: LOAD at row {load_row}, first SET_VRING_KICK (ring started) at row {kick_row}")
assert load_row < kick_row
reply = real_source.df.loc[real_source.replies()[first_row(real_source, "SET_DEVICE_STATE_FD")]["row"]]
print(f"source's reply to SET_DEVICE_STATE_FD: u64 {int(reply['u64']):#x}", reply[["state_error", "nofd"]].to_dict())
assert reply["state_error"] == 0 and reply["nofd"]

# %%
real_sides = sides_of(real_source, real_destination)
real_origin = min(side.first_ns for _, side in real_sides)
figures.timeline_figure(real_sides, real_origin).update_layout(title="QEMU + virtiofsd: phases of both sides")

# %% [markdown]
# The source captures everything from QEMU's start, including the guest's boot, so most of its
# timeline is negotiation and running. Zoom into the end (drag across the time axis) to see
# the suspension, the transfer and the destination's resume. The numbers:

# %%
real_migration, real_numbers = migration_summary(real_sides)
pd.concat([numbers.rename("simulated"), real_numbers.rename("QEMU + virtiofsd")], axis=1)

# %%
ring_bases(real_migration)

# %% [markdown]
# Ring 1, virtio-fs's request queue, resumes at the index where the source's virtiofsd stopped;
# ring 0, the high-priority queue, was not used. And the state itself:

# %%
real_streams = throughput.streams(real_source) + throughput.streams(real_destination)
stream_table(real_streams)

# %%
figures.throughput_figure(real_streams).update_layout(title="QEMU + virtiofsd: device state over time")

# %% [markdown]
# virtiofsd writes its whole state with one `write()`, so the proxy reads it in one chunk.
# The bytes that left the source back-end are the bytes that reached the destination
# back-end:

# %%
real_saved, real_loaded = state_bytes(real_source), state_bytes(real_destination)
print(f"{len(real_saved)} bytes saved, {len(real_loaded)} loaded, identical: {real_saved == real_loaded}")
assert real_saved == real_loaded

# %% [markdown]
# To vhost-user the state is opaque; only the two virtiofsd processes know its format. Still,
# it is worth a look. In its default migration mode (`find-paths`) virtiofsd sends the *paths* of
# the inodes the guest knows, so the names of the guest's files are readable in the blob:

# %%
import re

names = [match.decode() for match in re.findall(rb"[\x20-\x7e]{3,}", real_saved)]
print(names)

# %% [markdown]
# The other samples show how the state's size depends on what the guest did and on virtiofsd's
# migration mode (`--migration-mode file-handles` sends file handles instead of paths; with no
# guest the device was never started):

# %%
sizes = []
for name in ("virtiofs-migration-no-guest", "virtiofs-migration", "virtiofs-migration-file-handles"):
    pair = open_pair(SAMPLES / f"{name}-source.pcapng", SAMPLES / f"{name}-destination.pcapng")
    pair_streams = [throughput.streams(c) for c in pair]
    compared = throughput.compare(*pair_streams)
    sizes.append(
        {
            "sample": name,
            "state bytes": compared.source.total,
            "same bytes on both sides": compared.same_hash,
            "findings": len(checks.check(*pair)),
        }
    )
pd.DataFrame(sizes)

# %% [markdown]
# All three real migrations check clean: QEMU and virtiofsd follow the rules the checker knows.
#
# ## 6. What goes wrong
#
# The reference peers can break the protocol on purpose. Each scenario below runs through
# capturing proxies, and the checker then reads the captures, the way you would read captures
# of a failing migration between real programs. For each: what the scenario does, how the run
# ended, and what the checker found.

# %%
FAILURES = [
    "migrate-fd-error",
    "migrate-check-fails",
    "migrate-corrupt",
    "violation-error-with-fd",
    "violation-running-transfer",
    "violation-ungated",
]
failure_captures: dict[str, list[Capture]] = {}
failure_results = {}
overview = []
for name in FAILURES:
    result, captures = run_recorded(name)
    assert result.ok, f"{name} did not go the way it is designed to: {result.lines()}"
    failure_results[name], failure_captures[name] = result, captures
    found = checks.check(*captures)
    overview.append(
        {
            "scenario": name,
            "what it does": SCENARIOS[name].title,
            "outcome": result.outcome,
            "rules that fired": ", ".join(dict.fromkeys(f.rule for f in found)),
        }
    )
pd.DataFrame(overview)

# %% [markdown]
# Every scenario is caught by at least one rule. The findings in full, with the spec section
# each rule comes from:

# %%
all_findings = pd.concat(
    [findings_table(checks.check(*failure_captures[name])).assign(scenario=name) for name in FAILURES],
    ignore_index=True,
)
assert set(all_findings["scenario"]) == set(FAILURES), "a failure scenario produced no finding"
all_findings[["scenario", "rule", "severity", "message", "spec section", "records"]]

# %% [markdown]
# ### The back-end refuses: `migrate-fd-error`
#
# The source back-end answers `SET_DEVICE_STATE_FD` with `0x101`: error 1, no FD. The front-end
# cannot get the state, so the migration fails; like QEMU, it drops the destination and
# restarts the device on the source. The source's timeline shows the **resume** after the
# refused transfer, and the destination never gets past negotiation:

# %%
refused = sides_of(*failure_captures["migrate-fd-error"])
figures.timeline_figure(refused, min(side.first_ns for _, side in refused)).update_layout(
    title="migrate-fd-error: the source resumes"
)

# %%
source_phases = [phase.name for phase in refused[0][1].phases]
assert "resume" in source_phases[source_phases.index("suspended") :]
migration_records(refused[0][0]).tail(12)

# %% [markdown]
# ### One flipped bit: `migrate-corrupt`
#
# Here the front-end flips one bit of the state between the source and the destination. Nothing
# on either channel looks wrong: both streams end with EOF, both replies to
# `SET_DEVICE_STATE_FD` are fine. Only the destination back-end, which checks its state, knows,
# and it says so in the only way the protocol gives it: `CHECK_DEVICE_STATE` returns non-zero.
# With both captures, the checker's cross-capture rule sees the SHA-256 differ. And the captures
# hold the bytes, so we can find the bit:

# %%
corrupt_source, corrupt_destination = failure_captures["migrate-corrupt"]
sent, arrived = state_bytes(corrupt_source), state_bytes(corrupt_destination)
flipped = [(offset, a ^ b) for offset, (a, b) in enumerate(zip(sent, arrived, strict=True)) if a != b]
for offset, mask in flipped:
    print(f"stream offset {offset}: {sent[offset]:#04x} saved, {arrived[offset]:#04x} loaded (bit mask {mask:#04x})")
assert len(flipped) == 1 and bin(flipped[0][1]).count("1") == 1
print(
    "the destination back-end's own report:",
    [line.strip() for line in failure_results["migrate-corrupt"].lines() if "problem:" in line],
)

# %% [markdown]
# ### The other rules
#
# * `violation-error-with-fd`: the reply reports an error and also carries an FD, which the spec
#   forbids; the reference front-end rejects the reply as a protocol violation.
# * `violation-running-transfer`: the front-end asks for the state while the rings are still
#   started, so the device is not suspended and its state could change while it is being saved.
# * `violation-ungated`: `SET_DEVICE_STATE_FD` although DEVICE_STATE was never negotiated.
#
# `docs/checks.md` explains every rule; `vutrace check SOURCE DESTINATION` prints the same
# findings on the command line, and `vutrace report` puts them, with the figures of this
# notebook, in one HTML page.

# %% [markdown]
# ## What we have seen
#
# * DEVICE_STATE lets a back-end's private state travel in the front-end's migration stream;
#   the transfer happens while the device is suspended, with the rings' positions carried
#   separately by `GET_VRING_BASE` / `SET_VRING_BASE`.
# * `SET_DEVICE_STATE_FD` says which way (SAVE or LOAD) and when (STOPPED); its reply's low byte
#   is an error code and bit 8 says whether the back-end returned its own channel.
# * The channel is a pipe in all but name: EOF ends the transfer, and `CHECK_DEVICE_STATE` is
#   the only way to learn whether the back-end succeeded.
# * The proxy records the stream, so the state can be compared byte for byte between source
#   and destination, and the checker can point at what went wrong.
#
# Next: **03-analyze-your-capture.ipynb**, a template for your own captures.

# %%
WORK.cleanup()
