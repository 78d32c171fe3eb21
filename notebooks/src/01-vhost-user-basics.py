# Source of notebooks/01-vhost-user-basics.ipynb: edit here, then run `.venv/bin/python notebooks/build.py`.
# ruff: noqa: E402, B018 (imports where they are first needed; a bare expression displays a cell's result)

# %% [markdown]
# # vhost-user, from the bytes up
#
# This notebook teaches the vhost-user protocol by building messages, taking them apart, and then
# reading a real conversation between **QEMU 10** and **virtiofsd 1.13**, recorded by the vutrace
# proxy. You need no VM to run it: the conversation is in `samples/`.
#
# What you will see, in order:
#
# 1. who talks to whom (front-end, back-end, the socket);
# 2. the 12-byte message header, built and dissected;
# 3. payloads and the table that says which message carries which payload;
# 4. a real capture: feature negotiation, replies, the memory table and its file descriptors,
#    the rings with their kick and call eventfds, and the back-end channel.
#
# References in square brackets, such as [Ring states], are section titles of the vhost-user
# specification (`docs/interop/vhost-user.rst` in the QEMU source tree).
#
# Run the cells from top to bottom. The working directory must be `notebooks/` (where Jupyter
# starts when you open this file), because the captures are read from `../samples/`.

# %%
import struct
import tempfile
from pathlib import Path

import pandas as pd

import vutrace
from dissectors import spec
from dissectors.encode import encode
from dissectors.header import parse_header
from dissectors.layers import dissect
from dissectors.records import decode

pd.set_option("display.max_columns", 30)
pd.set_option("display.max_rows", 120)
pd.set_option("display.width", 200)

SAMPLES = Path("../samples")
SOURCE_CAPTURE = SAMPLES / "virtiofs-migration-source.pcapng"
assert SOURCE_CAPTURE.exists(), "start Jupyter in notebooks/ so that ../samples is the samples folder"

# %% [markdown]
# ## 1. Front-end and back-end
#
# A virtio device has two halves: the **driver** in the guest and the **device** outside it. The
# two share *virtqueues* (rings) in guest memory: the driver puts buffers in, the device takes
# them out, does the work, and hands them back.
#
# With plain QEMU, the device half is code inside the QEMU process. vhost-user moves it into a
# separate program:
#
# * the **front-end** is the program that owns the VM and its memory: QEMU, cloud-hypervisor,
#   or DPDK's virtio-user;
# * the **back-end** is the program that implements the device: virtiofsd (a file system),
#   DPDK's vhost library (a network switch), qemu-storage-daemon (a disk), and so on.
#
# They talk over a **unix domain socket**. The front-end sends requests ("here is the guest
# memory", "ring 0 has 128 entries", "start ring 0"); the back-end answers some of them.
# Which of the two listens on the socket and which one connects does not matter to the
# protocol [Introduction].
#
# The socket carries only the *control plane*. The *data plane* never touches it:
#
# ```
#                control: vhost-user messages (+ file descriptors) on a unix socket
#     QEMU  <-------------------------------------------------------------->  virtiofsd
#  (front-end)                                                              (back-end)
#
#  data plane, set up by those messages:
#     guest RAM (a memfd)   mapped by both processes; the rings live in it
#     kick eventfd          "the guest added buffers": wakes the back-end
#     call eventfd          "the device used buffers": written by the back-end,
#                           delivered to the guest as an interrupt
# ```
#
# The back-end maps the guest's RAM into its own address space and reads and writes the rings
# directly; the eventfds carry the notifications. The messages set all of this up: they pass
# the memory and the eventfds as **file descriptors** (SCM_RIGHTS ancillary data on the
# socket), and they tell the back-end where the rings are.
#
# vutrace sits in the middle of that socket as a proxy and records every message, with a
# description of every file descriptor that travels with it.

# %% [markdown]
# ## 2. The message header
#
# Every message starts with the same 12 bytes [Message Specification, Header]: three 32-bit
# integers in the host's byte order (little-endian on x86-64 and aarch64).
#
# | bytes | field | meaning |
# |---|---|---|
# | 0-3 | `request` | which message this is (1 = GET_FEATURES, 8 = SET_VRING_NUM, ...) |
# | 4-7 | `flags` | bits 0-1: protocol version, always 1; bit 2: REPLY; bit 3: NEED_REPLY |
# | 8-11 | `size` | how many payload bytes follow the header |
#
# The project's fact table, `dissectors.spec`, holds these facts once for all of vutrace:

# %%
print("header format:", spec.HEADER_FORMAT, "=", spec.HEADER_SIZE, "bytes")
print(f"version {spec.VERSION:#x}, REPLY flag {spec.FLAG_REPLY:#x}, NEED_REPLY flag {spec.FLAG_NEED_REPLY:#x}")

# %% [markdown]
# Let us build a message. `SET_VRING_NUM` tells the back-end how many entries a ring has; its
# payload is a *vring state*: the ring index and a number, two 32-bit integers.
# `dissectors.encode.encode` takes the message name and the payload fields by name:

# %%
message = encode("SET_VRING_NUM", vring=0, num=128)
print(len(message), "bytes:", message.hex(" "))

# %% [markdown]
# The first 12 bytes are the header, the last 8 the payload. The function below labels every
# byte range. It knows nothing about SET_VRING_NUM: it reads the header, looks the request id up
# in the fact table (`spec.lookup`), and takes the payload's field names and struct formats from
# `spec.FIXED_LAYOUTS`. That is how every decoder in vutrace works.


# %%
def annotate(data: bytes, channel: str = "main") -> pd.DataFrame:
    """One row per field of a message with a fixed-size payload: offset, bytes, field, value."""
    header = parse_header(data)
    facts = spec.lookup(channel, header.request)
    rows = [
        (0, data[0:4], "request", f"{header.request} = {facts.name if facts else 'unknown'}"),
        (
            4,
            data[4:8],
            "flags",
            f"{header.flags:#x}: version {header.version}"
            + (", REPLY" if header.is_reply else "")
            + (", NEED_REPLY" if header.need_reply else ""),
        ),
        (8, data[8:12], "size", f"{header.size} payload bytes"),
    ]
    if facts is not None and header.size:
        layout = facts.reply[0] if header.is_reply else facts.request
        offset = spec.HEADER_SIZE
        for field in spec.FIXED_LAYOUTS.get(layout, ()):
            width = struct.calcsize("<" + field.fmt)
            (value,) = struct.unpack_from("<" + field.fmt, data, offset)
            rows.append((offset, data[offset : offset + width], f"payload: {field.name}", f"{value!r}  ({field.doc})"))
            offset += width
    return pd.DataFrame(
        [(o, raw.hex(" "), name, value) for o, raw, name, value in rows],
        columns=["offset", "bytes", "field", "value"],
    )


annotate(message)

# %% [markdown]
# vutrace also has [scapy](https://scapy.net) layers for every message. `dissect(data, channel)`
# gives a scapy packet; `show()` prints its field tree, with names for the values that have
# them (the flags, here):

# %%
packet = dissect(message)
packet.show()

# %% [markdown]
# The third way to read a message is the **flat record** (`dissectors.records.decode`): a plain
# dict with the header fields and every payload field by name. This is what a capture's
# DataFrame is made of, one dict per row. It never raises: a message that is broken gets an
# `error` (or a `warning`) instead.

# %%
decode(message)

# %% [markdown]
# ### Requests, replies and NEED_REPLY
#
# Requests carry flags `0x1` (version 1). A **reply** has the REPLY bit too: `0x5`. Some
# requests are always answered: every `GET_*` message, for example [Communication]. Most
# `SET_*` messages are not, unless the front-end asks: when the two sides have agreed on the
# **REPLY_ACK** protocol feature, the front-end may set **NEED_REPLY** (`0x9`) on any request,
# and the back-end must then answer with a u64 that is 0 on success [REPLY_ACK].
#
# `GET_FEATURES` has no request payload (size 0); its reply carries a u64 of feature bits:

# %%
question = encode("GET_FEATURES")
answer = encode("GET_FEATURES", reply=True, features=(1 << 32) | (1 << spec.F_PROTOCOL_FEATURES))
acked = encode("SET_VRING_ENABLE", need_reply=True, vring=0, num=1)
ack = encode("SET_VRING_ENABLE", reply=True, result=0)
for data in (question, answer, acked, ack):
    print(f"{data.hex(' '):<60} {dissect(data).summary()}")

# %% [markdown]
# A message that breaks the rules is still taken apart as far as it goes. Three examples: a
# `size` that does not fit the message, a message cut short, and a request id the spec does
# not define:

# %%
broken = {
    "size 4 for SET_VRING_NUM": encode("SET_VRING_NUM", vring=0, num=128, size=4),
    "cut after 16 bytes": encode("SET_VRING_NUM", vring=0, num=128)[:16],
    "request id 99": encode(99),
}
pd.DataFrame([{"message": label, **decode(data)} for label, data in broken.items()])[
    ["message", "request", "size", "payload_len", "error", "warning"]
]

# %% [markdown]
# ## 3. Which message carries what
#
# The spec has two lists of messages: **front-end messages** (sent on the main socket, ids 1 and
# up) and **back-end messages** (sent by the back-end on its own channel, see section 9). For
# each message, `dissectors.spec` records its payload layouts, when it gets a reply, how many
# file descriptors travel with it, and which negotiated feature it needs. Here is the front-end
# table:

# %%
messages = pd.DataFrame(
    {
        "id": m.id,
        "message": m.name,
        "request payload": m.request.value,
        "reply payload": "/".join(p.value for p in m.reply),
        "reply": m.reply_rule.value,
        "request fds": m.request_fds.value,
        "needs protocol feature": m.gate.protocol.name if m.gate.protocol is not None else "",
    }
    for m in spec.FRONTEND_MESSAGES
)
messages

# %% [markdown]
# How to read the `reply` column: **always** means the back-end always answers; **ack** means it
# answers only when NEED_REPLY is set and REPLY_ACK was negotiated; **conditional** names
# messages that are always answered in a particular situation (for example `SET_LOG_BASE` once
# LOG_SHMFD is negotiated). `unless_nofd` in the FD column means "one FD, unless bit 8 of the
# payload (the *invalid FD* flag) says there is none".

# %% [markdown]
# ## 4. A real conversation
#
# `samples/virtiofs-migration-source.pcapng` was recorded by `vutrace proxy` placed between QEMU
# 10.0.2 and virtiofsd 1.13.2 (see `samples/README.md` for the exact command lines). A Linux
# guest booted, mounted the virtio-fs share, created some files, and then the VM was live
# migrated to a second QEMU; this file is the **source** side. The second notebook covers the
# migration; here we look at everything that happens before it.
#
# `vutrace.load` reads a capture into a pandas DataFrame with one row per record: every message
# on the main socket or the back-end channel, every chunk of migrated device state, and the
# proxy's own events (connection accepted, closed, ...).

# %%
df = vutrace.load(SOURCE_CAPTURE)
df["ms"] = (df["ts_ns"] - df["ts_ns"].min()) / 1e6
print(len(df), "records; columns:", ", ".join(df.columns))
df.groupby(["channel", "sender"], observed=True).size().rename("records").to_frame()

# %% [markdown]
# The messages in order, with who sent them. `reply_to` is the row of the request a reply
# answers, and `latency_ns` how long the back-end took.

# %%
MESSAGE_COLUMNS = ["ms", "sender", "request", "is_reply", "flags", "size", "nfds", "reply_to", "latency_ns"]
main = df[df["channel"] == "main"]
main[MESSAGE_COLUMNS]

# %% [markdown]
# The front-end asks, the back-end answers the questions that need an answer. Between the two
# `RESET_DEVICE` messages the guest's Linux is booting; the second one comes from its virtio-fs
# driver, which then sets the device up: features, memory, rings.
#
# The same messages as a sequence diagram, from the start to the moment the device runs (hover
# over an arrow for its fields; `vutrace.report.figures` draws the same pictures in the HTML
# report):

# %%
from vutrace.analysis.frame import Capture
from vutrace.report import figures

capture = Capture(df, "source")
first_log_base = main.index[main["request"] == "SET_LOG_BASE"][0]
before_migration = [row for row in capture.records if row["row"] < first_log_base]
figures.ladder_figure(capture, before_migration, int(df["ts_ns"].min())).update_layout(
    title="QEMU and virtiofsd: set-up until the device runs"
)

# %% [markdown]
# Every row keeps the exact bytes that crossed the socket in the `raw` column, so any message
# can be taken apart again with the tools of section 2. The first reply of the conversation:

# %%
first_reply = main[main["is_reply"]].iloc[0]
dissect(first_reply["raw"]).show()
annotate(first_reply["raw"])

# %% [markdown]
# The phases of this connection, as `vutrace.analysis.timeline` cuts them (the second notebook
# explains the migration phases at the end):

# %%
from vutrace.analysis import sessions, timeline

phases = pd.DataFrame(
    {
        "phase": p.name,
        "from ms": (p.start_ns - df["ts_ns"].min()) / 1e6,
        "duration ms": p.duration_ns / 1e6,
        "rows": f"{p.first_row}-{p.last_row}",
    }
    for p in timeline.side_timeline(capture).phases
)
phases

# %% [markdown]
# ## 5. Feature negotiation
#
# Before anything else the two sides agree on what they both support. There are two layers
# [Communication, Protocol features]:
#
# 1. **virtio feature bits.** `GET_FEATURES` returns the bits the back-end offers; the
#    front-end answers later with `SET_FEATURES`, the bits it accepts. Bits 0-23 belong to the
#    device type; the higher ones are generic (VERSION_1 = 32, RING_EVENT_IDX = 29, ...).
#    vhost-user borrows bit 30, `VHOST_USER_F_PROTOCOL_FEATURES`, which virtio itself leaves
#    unused.
# 2. **vhost-user protocol features.** Only if the back-end offered bit 30 may the front-end
#    send `GET_PROTOCOL_FEATURES` and `SET_PROTOCOL_FEATURES`. These bits switch on protocol
#    extensions: REPLY_ACK, the back-end channel, DEVICE_STATE, and so on. A message that
#    belongs to an extension may only be sent once its bit is negotiated.
#
# Here are virtiofsd's words, decoded by name with the fact table:


# %%
def reply_value(name: str, column: str) -> int:
    """The value of ``column`` in the first reply to the request ``name``."""
    rows = main[(main["request"] == name) & main["is_reply"]]
    return int(rows.iloc[0][column])


def request_value(name: str, column: str) -> int:
    rows = main[(main["request"] == name) & ~main["is_reply"]]
    return int(rows.iloc[0][column])


offered = reply_value("GET_FEATURES", "features")
offered_protocol = reply_value("GET_PROTOCOL_FEATURES", "protocol_features")
acked_protocol = request_value("SET_PROTOCOL_FEATURES", "protocol_features")
print(f"virtio features offered by virtiofsd: {offered:#x}")
print("   ", spec.feature_names(offered, spec.VIRTIO_FEATURES))
print(f"protocol features offered: {offered_protocol:#x}, acked by QEMU: {acked_protocol:#x}")

# %% [markdown]
# And each protocol feature, offered or not, with what QEMU accepted:

# %%
pd.DataFrame(
    {
        "bit": feature.value,
        "protocol feature": feature.name,
        "offered by virtiofsd": bool(offered_protocol >> feature & 1),
        "acked by QEMU": bool(acked_protocol >> feature & 1),
    }
    for feature in spec.ProtocolFeature
)

# %% [markdown]
# Three of these matter for everything that follows:
#
# * **REPLY_ACK** (bit 3): QEMU may ask for an acknowledgement with NEED_REPLY;
# * **BACKEND_REQ** (bit 5): the back-end gets its own channel to send requests to the front-end;
# * **DEVICE_STATE** (bit 19): the back-end's internal state can travel with a live migration
#   (the second notebook).

# %%
negotiated = offered_protocol & acked_protocol
for feature in (spec.ProtocolFeature.REPLY_ACK, spec.ProtocolFeature.BACKEND_REQ, spec.ProtocolFeature.DEVICE_STATE):
    assert negotiated >> feature & 1, f"{feature.name} was not negotiated in this capture"
print("REPLY_ACK, BACKEND_REQ and DEVICE_STATE are negotiated")

# %% [markdown]
# `SET_FEATURES` comes much later, when the guest's driver has started the device. QEMU sends it
# more than once: the second time adds **LOG_ALL** (bit 26), the "log your memory writes"
# switch for live migration. `sessions` lists every negotiation round with what it added:

# %%
session = sessions.sessions(capture)[0]
pd.DataFrame(
    {
        "row": r.row,
        "message": r.message,
        "kind": r.kind,
        "value": hex(r.value),
        "bits": ", ".join(r.names()),
        "added": ", ".join(r.delta()[0]),
        "removed": ", ".join(r.delta()[1]),
    }
    for r in session.rounds
)

# %% [markdown]
# ## 6. Who waits for an answer
#
# With REPLY_ACK negotiated, QEMU sets NEED_REPLY (flags `0x9`) where it wants to be sure the
# back-end has finished before it goes on: opening the back-end channel, adding memory, enabling
# rings, switching dirty logging on. The `GET_*` messages are answered anyway and go out with
# `0x1`; so do the messages QEMU does not wait for, such as `SET_VRING_KICK`. `SET_LOG_BASE` is
# answered without NEED_REPLY because LOG_SHMFD is negotiated (the "conditional" rule of the
# table above). Every reply is `0x5`.

# %%
requests = main[~main["is_reply"]]
answered = set(main.loc[main["is_reply"], "reply_to"].dropna().astype(int))
summary = (
    requests.assign(answered=requests.index.isin(answered))
    .groupby(["request", "flags", "answered"], observed=True)
    .size()
    .rename("count")
    .reset_index()
)
summary["flags"] = summary["flags"].map(hex)
summary

# %%
need_reply = requests[requests["need_reply"]]
assert need_reply.index.isin(answered).all(), "a NEED_REPLY request went unanswered"
assert set(main.loc[main["is_reply"], "flags"]) == {spec.VERSION | spec.FLAG_REPLY}
print(f"all {len(need_reply)} NEED_REPLY requests were answered; every reply has flags 0x5")

# %% [markdown]
# ## 7. Memory and file descriptors
#
# The back-end can only read the rings if it can see the guest's memory. The front-end
# describes that memory as **regions** [Memory access]. Each region has:
#
# * `guest_addr`: where it is in the guest's physical address space;
# * `region_size`;
# * `user_addr`: where it is mapped in the *front-end's* address space (QEMU's virtual address);
# * `mmap_offset`: where the region starts inside the file descriptor.
#
# The memory itself travels as a **file descriptor** (here a memfd: anonymous shared memory)
# attached to the message; the back-end `mmap`s it. A front-end can send the whole table at
# once in `SET_MEM_TABLE`, one FD per region; with CONFIGURE_MEM_SLOTS negotiated, QEMU adds
# the regions one at a time with `ADD_MEM_REG` instead.
#
# A capture cannot hold a file descriptor, but the proxy describes each one as it passes: what
# kind of file it is (memfd, eventfd, socket, pipe...), a memfd's name and size, the inode, and
# whether the proxy passed it on unchanged or **substituted** its own (it does that for the
# back-end channel and the device-state pipe, so that it can see what travels through them).
# That is the `fds` column:

# %%
df.loc[df["nfds"] > 0, ["ms", "request", "vring", "nfds", "fds"]]

# %% [markdown]
# The guest RAM region, as QEMU sent it:

# %%
region_row = main[(main["request"] == "ADD_MEM_REG") & ~main["is_reply"]].iloc[0]
dissect(region_row["raw"]).show()
print("FD:", region_row["fds"])
region = {name: int(region_row[name]) for name in ("guest_addr", "region_size", "user_addr", "mmap_offset")}
print(
    f"{region['region_size'] / 2**20:.0f} MiB of guest RAM at guest address {region['guest_addr']:#x}, "
    f"QEMU maps it at {region['user_addr']:#x}"
)

# %% [markdown]
# ## 8. Rings, kick and call
#
# For each virtqueue the front-end sends four messages [Front-end message types]:
#
# | message | payload | what it says |
# |---|---|---|
# | `SET_VRING_NUM` | ring, num | the ring has `num` entries |
# | `SET_VRING_BASE` | ring, num | where to start: the next available-ring index to process |
# | `SET_VRING_ADDR` | ring, flags, 4 addresses | where the descriptor table, used ring and available ring are |
# | `SET_VRING_KICK` | ring (+ FD) | the eventfd the front-end writes when the guest has added buffers |
#
# plus `SET_VRING_CALL` (the eventfd the back-end writes to interrupt the guest) and
# `SET_VRING_ERR` (for error reports). The kick and call **notifications never appear on the
# socket**: once the eventfds are handed over, the guest's "I added buffers" and the device's
# "I used buffers" are 8-byte writes to those eventfds (unless the INBAND_NOTIFICATIONS
# extension is used). A proxy on the socket sees the eventfds go by, not the notifications.
#
# virtio-fs has two queues here: ring 0, the high-priority queue, and ring 1, the request queue.

# %%
ring_messages = main[
    main["request"].isin(["SET_VRING_NUM", "SET_VRING_BASE", "SET_VRING_ADDR", "SET_VRING_KICK"]) & ~main["is_reply"]
]
ADDRESSES = ["desc_addr", "avail_addr", "used_addr", "log_addr"]
ring_table = ring_messages[["ms", "request", "vring", "num", "addr_flags", *ADDRESSES]].astype(
    {c: object for c in ADDRESSES}
)
for column in ADDRESSES:
    ring_table[column] = ring_table[column].map(lambda value: "" if pd.isna(value) else hex(value))
ring_table

# %% [markdown]
# The ring addresses are **user addresses** (QEMU's virtual addresses), because neither an IOMMU
# nor the GPA_ADDRESSES extension is in use [Memory access]. The back-end translates them
# through the region table: find the region whose user range holds the address, then add the
# offset to the region's guest address (or to its own mapping of the FD).
#
# `log_addr` is different: it is a *guest-physical* address, the one the back-end uses to mark
# the used ring dirty during migration [Migration]. So translating `used_addr` must give exactly
# `log_addr`. Let us check that with the numbers from the capture:


# %%
def to_guest(user_address: int) -> int:
    start, size = region["user_addr"], region["region_size"]
    assert start <= user_address < start + size, f"{user_address:#x} is outside the region"
    return region["guest_addr"] + (user_address - start)


for _, ring in ring_messages[ring_messages["request"] == "SET_VRING_ADDR"].drop_duplicates("vring").iterrows():
    used_gpa = to_guest(int(ring["used_addr"]))
    print(
        f"ring {ring['vring']}: desc at GPA {to_guest(int(ring['desc_addr'])):#x}, "
        f"used ring at GPA {used_gpa:#x}, log_addr {int(ring['log_addr']):#x}"
    )
    assert used_gpa == int(ring["log_addr"])

# %% [markdown]
# ### Ring states
#
# A ring has two independent states [Ring states]: **started/stopped** and
# **enabled/disabled**. Every ring begins stopped and disabled.
#
# * `SET_VRING_KICK` **starts** a ring; the reply to `GET_VRING_BASE` means it has **stopped**
#   (the back-end returns the index where it stopped, so that someone can resume from there);
# * `SET_VRING_ENABLE` 1 / 0 **enables** / **disables** it;
# * a started, enabled ring is processed normally; a started but disabled ring is processed
#   "without side effects"; a stopped ring is not touched at all.
#
# When every ring is stopped, the device is **suspended** [Suspended device state]: it must not
# write guest memory, send notifications or send messages, but it still answers the front-end.
# That is the state in which a device's state is migrated (second notebook).
#
# Here is the life of each ring in this capture, computed by walking the messages:

# %%
states: dict[int, dict[str, bool]] = {}
walk = []
for index, row in main.iterrows():
    name, ring = row["request"], row["vring"]
    if pd.isna(ring):
        continue
    state = states.setdefault(int(ring), {"started": False, "enabled": False})
    if name == "SET_VRING_KICK":
        state["started"] = True
    elif name == "SET_VRING_ENABLE" and not row["is_reply"]:
        state["enabled"] = bool(row["num"])
    elif name == "GET_VRING_BASE" and row["is_reply"]:
        state["started"] = False
    else:
        continue
    walk.append(
        {
            "row": index,
            "ms": row["ms"],
            "message": name + (" reply" if row["is_reply"] else ""),
            "ring": int(ring),
            "num": row["num"],
            **state,
        }
    )
pd.DataFrame(walk)

# %% [markdown]
# QEMU stops each ring the same way: first `SET_VRING_ENABLE 0`, then `GET_VRING_BASE`, whose
# reply says where the back-end stopped: the index of the next available-ring entry it would
# have processed. The guest sent its file requests on the request queue (ring 1); the
# high-priority queue (ring 0) is still at 0. The `sessions` analysis keeps the same bookkeeping for you, ring by
# ring, including which notification FDs each ring has:

# %%
pd.DataFrame(
    {
        "ring": ring.index,
        "size": ring.size,
        "base set": ring.base,
        "stopped at": ring.stopped_base,
        "state at the end": ring.state(),
        "kick": ring.kick,
        "call": ring.call,
        "err": ring.err,
    }
    for ring in session.rings.values()
)

# %% [markdown]
# Two things in the FD column are worth a second look. QEMU sends `SET_VRING_CALL` several
# times per ring: it swaps the call eventfd as it sets the device up, starts it and stops it.
# And every eventfd shows the same inode: all eventfds share one anonymous inode in the kernel,
# so the inode cannot tell two eventfds apart.

# %%
main[main["request"] == "SET_VRING_CALL"].groupby("vring").size().rename("SET_VRING_CALL messages").to_frame()

# %% [markdown]
# ## 9. The back-end channel
#
# The main socket is the front-end's: it asks, the back-end answers. When the back-end needs to
# ask something itself (an IOTLB miss, "my config space changed", "please map this shared
# memory"), it uses a second channel [Back-end communication]. With BACKEND_REQ negotiated, the
# front-end creates a socket pair and passes one end in `SET_BACKEND_REQ_FD`. On that channel
# the roles swap: the back-end sends `VHOST_USER_BACKEND_*` requests and the front-end replies.
#
# The proxy **substitutes** that socket with one of its own (see the `fds` column), relays the
# channel, and records its messages with `channel == "backend"`. Its opening and closing show
# up as events:

# %%
df.loc[
    df["request"].isin(["SET_BACKEND_REQ_FD", "backend_channel_open", "backend_channel_close"]),
    ["ms", "channel", "sender", "request", "is_reply", "flags", "fds", "attrs"],
]

# %%
backend_messages = df[df["channel"] == "backend"]
print(f"messages on the back-end channel in this capture: {len(backend_messages)}")

# %% [markdown]
# virtiofsd opened the channel but had nothing to ask during this run. To see the channel in
# use, we run vutrace's own reference peers (`vutrace.sim`) through an in-process proxy. Its
# back-end sends `BACKEND_CONFIG_CHANGE_MSG` once per connection, with NEED_REPLY, and the
# front-end then reads the new config space with `GET_CONFIG`. It takes a fraction of a second:

# %%
from vutrace.sim import ProxyThreads, run_scenario

with tempfile.TemporaryDirectory(prefix="vutrace-nb1-") as workdir:
    route = ProxyThreads(Path(workdir))
    result = run_scenario("basic", route=route, workdir=Path(workdir))
    sim = vutrace.load(route.captures[0])
print("\n".join(result.lines()))
assert result.ok

# %%
channel_rows = sim[(sim["channel"] == "backend") | sim["request"].isin(["GET_CONFIG", "backend_channel_open"])]
channel_rows[["channel", "sender", "request", "is_reply", "flags", "reply_to", "config_size"]].assign(
    config_data=channel_rows["config_data"].map(lambda data: data.hex(" ") if isinstance(data, bytes) else "")
)

# %% [markdown]
# On the back-end channel the roles are swapped: the back-end sends the request (flags `0x9`,
# NEED_REPLY, because REPLY_ACK is negotiated) and the front-end sends the reply (`0x5`). The
# config space read after the change differs from the one read at set-up.
#
# A back-end channel message is read with `channel="backend"`: the same id means something else
# there (id 2 is `SET_FEATURES` on the main socket, `CONFIG_CHANGE_MSG` on the back-end
# channel):

# %%
config_change = sim[(sim["channel"] == "backend") & ~sim["is_reply"]].iloc[0]["raw"]
dissect(config_change, "backend").show()
print("the same bytes read as a main-socket message:", dissect(config_change, "main").summary())

# %% [markdown]
# ## What we have seen
#
# * A vhost-user message is a 12-byte header (request, flags, size) and a payload whose layout
#   depends on the request; `dissectors.spec` holds those facts, and `encode`, `dissect` and
#   `decode` build and read messages from them.
# * The conversation starts with two layers of feature negotiation; protocol features unlock
#   extensions such as REPLY_ACK, the back-end channel and DEVICE_STATE.
# * Memory, notifications and the back-end channel travel as file descriptors; the proxy
#   describes each one in the `fds` column.
# * Rings are started by `SET_VRING_KICK` and stopped by `GET_VRING_BASE`; with all rings
#   stopped the device is suspended.
#
# Next: **02-device-state-migration.ipynb**, where the suspended device's state moves to
# another back-end.
