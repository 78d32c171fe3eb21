"""Generate the Wireshark dissector ``dissectors/wireshark/vutrace.lua`` from the fact tables.

Message names, payload layouts and field names come from ``dissectors.spec`` / ``dissectors.payloads``;
the pseudo-header layout and codes from ``vutrace.capture.record_format``. The generated file is
committed; ``tests/capture/test_lua.py`` checks it is up to date.

    python -m vutrace.capture.wireshark_lua          # rewrite the file
    python -m vutrace.capture.wireshark_lua --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

from dissectors import payloads
from dissectors.spec import MESSAGES, Channel, Field, Payload
from vutrace.capture import record_format as rf
from vutrace.capture.model import RecordKind

LUA_PATH = Path(__file__).resolve().parents[2] / "dissectors" / "wireshark" / "vutrace.lua"

PROTO_FIELD = {"B": "uint8", "H": "uint16", "I": "uint32", "Q": "uint64", "q": "int64", "i": "int32"}
HEX_HINTS = ("addr", "features", "offset", "iova", "mac", "u64", "status", "flags")
VARIABLE_FIELDS: tuple[Field, ...] = (
    Field("num_regions", "I", "number of memory regions"),
    Field("config_offset", "I", "offset in the config space"),
    Field("config_size", "I", "config bytes"),
    Field("config_flags", "I", "0 writable, 1 live migration"),
    Field("config_data", "s", "config space bytes"),
    Field("shmem_size", "Q", "size of a shared memory region (index = shmid)"),
    Field("op_code", "Q", "crypto operation code"),
    Field("crypto_setup", "s", "crypto session setup data and keys"),
    *payloads.XEN_FIELDS,
)
HANDWRITTEN = (Payload.MEM_REGION,)
"""Fixed layouts the template dissects itself (a memory region may carry the XEN_MMAP fields)."""
DERIVED_FIELDS: tuple[Field, ...] = (Field("state_error", "B", "device state error (0 = ok)"),)


def payload_fields() -> dict[str, Field]:
    """Every payload field the dissector shows, by flat-record name (one ProtoField each)."""
    fields: dict[str, Field] = {}
    layouts = [f for layout in payloads.FIXED.values() for f in layout.fields if not payloads.is_padding(f)]
    for field in (*layouts, *VARIABLE_FIELDS, *DERIVED_FIELDS):
        known = fields.setdefault(field.name, field)
        if known.fmt != field.fmt:
            raise ValueError(f"payload field {field.name} has formats {known.fmt} and {field.fmt}")
    return fields


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _table(mapping: dict[int, str]) -> str:
    return "{" + ", ".join(f"[{k}] = {_lua_string(v)}" for k, v in sorted(mapping.items())) + "}"


def _proto_field(field: Field) -> str:
    abbr = f"vutrace.{field.name}"
    label = field.name.replace("_", " ").capitalize()
    doc = _lua_string(field.doc)
    if field.fmt.endswith("s"):
        return f"ProtoField.bytes({_lua_string(abbr)}, {_lua_string(label)}, base.NONE, {doc})"
    kind = PROTO_FIELD[field.fmt]
    base = "base.HEX" if any(h in field.name for h in HEX_HINTS) and kind.startswith("uint") else "base.DEC"
    return f"ProtoField.{kind}({_lua_string(abbr)}, {_lua_string(label)}, {base}, nil, nil, {doc})"


def _fixed_function(kind: Payload) -> str:
    """A Lua function adding the fields of a fixed layout; returns its Info summary."""
    layout = payloads.FIXED[kind]
    split = payloads.U64_SPLITS.get(kind)
    lines = [f"LAYOUT[{_lua_string(kind.value)}] = function(tree, tvb, off, len)", "  local parts = {}"]
    offset = 0
    for field in layout.fields:
        size = struct.calcsize("<" + field.fmt)
        if not payloads.is_padding(field):
            parts = "nil" if field.name == "u64" and split is not None else "parts"
            lines.append(f"  add_field(tree, {parts}, tvb, off + {offset}, {size}, {_lua_string(field.name)})")
            if field.name == "u64" and split is not None:
                name, mask = split
                lines.append(f"  add_split(tree, parts, tvb, off + {offset}, {_lua_string(name)}, {mask})")
        offset += size
    lines += ["  return parts", "end"]
    return "\n".join(lines)


def _layouts() -> str:
    """Per channel code and request id: the request layout and the reply alternatives."""
    out = []
    for channel, table in MESSAGES.items():
        code = rf.CHANNEL_CODES[channel.value]
        names = {mid: m.name for mid, m in table.items()}
        requests = {
            mid: "{" + ", ".join(_lua_string(k.value) for k in payloads.alternatives(m, False)) + "}"
            for mid, m in table.items()
        }
        replies = {
            mid: "{" + ", ".join(_lua_string(k.value) for k in payloads.alternatives(m, True)) + "}"
            for mid, m in table.items()
        }
        out.append(f"REQUESTS[{code}] = {_table(names)}")
        out.append(f"REQUEST_LAYOUTS[{code}] = {{{', '.join(f'[{k}] = {v}' for k, v in requests.items())}}}")
        out.append(f"REPLY_LAYOUTS[{code}] = {{{', '.join(f'[{k}] = {v}' for k, v in replies.items())}}}")
    return "\n".join(out)


def render() -> str:
    """The whole Lua file."""
    fields = payload_fields()
    sizes = {kind.value: layout.size for kind, layout in payloads.FIXED.items()}
    substitutions = {
        "@FORMAT_VERSION@": str(rf.FORMAT_VERSION),
        "@MAJOR@": str(rf.VERSION_MAJOR),
        "@KINDS@": _table({int(k): k.name for k in RecordKind}),
        "@CHANNELS@": _table({code: str(ch) for ch, code in rf.CHANNEL_CODES.items()}),
        "@SENDERS@": _table({code: s for s, code in rf.SENDER_CODES.items()}),
        "@FD_KINDS@": _table({code: str(k) for k, code in rf.FD_KIND_CODES.items()}),
        "@FD_ACTIONS@": _table({code: str(a) for a, code in rf.FD_ACTION_CODES.items()}),
        "@PAYLOAD_FIELDS@": "\n".join(f"F[{_lua_string(n)}] = {_proto_field(f)}" for n, f in sorted(fields.items())),
        "@HEX_FIELDS@": "{"
        + ", ".join(f"[{_lua_string(n)}] = true" for n in sorted(fields) if any(h in n for h in HEX_HINTS))
        + "}",
        "@FIXED_SIZES@": "{" + ", ".join(f"[{_lua_string(k)}] = {v}" for k, v in sorted(sizes.items())) + "}",
        "@XEN_REGION_SIZE@": str(payloads.MEM_REGION_XEN.size),
        "@SHMEM_CONFIG_SIZE@": str(payloads.SHMEM_CONFIG_SIZE),
        "@CRYPTO_MIN_SIZE@": str(payloads.CRYPTO_MIN_SIZE),
        "@FIXED_FUNCTIONS@": "\n\n".join(_fixed_function(kind) for kind in payloads.FIXED if kind not in HANDWRITTEN),
        "@LAYOUTS@": _layouts(),
        "@MAIN@": str(rf.CHANNEL_CODES[Channel.MAIN.value]),
        "@FLAG_SHA256@": str(rf.FLAG_SHA256),
        "@FLAG_OMITTED@": str(rf.FLAG_DATA_OMITTED),
        "@FD_ENTRY_SIZE@": str(rf.FD_ENTRY.size),
        "@OFF_LATE_FDS@": str(rf.OFF_LATE_FDS),
        "@LATE_FDS_MINOR@": str(rf.LATE_FDS_MINOR),
        "@REGION_NAMES@": "{" + ", ".join(_lua_string(n) for n in payloads.REGION_NAMES) + "}",
    }
    text = TEMPLATE
    for key, value in substitutions.items():
        text = text.replace(key, value)
    return text


TEMPLATE = r"""-- vutrace.lua: Wireshark dissector for vutrace captures (capture format @FORMAT_VERSION@).
--
-- GENERATED by vutrace/capture/wireshark_lua.py from dissectors/spec.py and
-- vutrace/capture/record_format.py. Do not edit: run `python -m vutrace.capture.wireshark_lua`.
--
-- Load it once:   tshark -X lua_script:vutrace.lua -r capture.pcapng
--                 wireshark -X lua_script:vutrace.lua capture.pcapng
-- or for good:    cp vutrace.lua ~/.local/lib/wireshark/plugins/
--
-- vutrace packets are link type 252 (exported PDU) naming the dissector "vutrace"; this
-- file registers it. Display filters: vutrace.request == 42, vutrace.request_name ==
-- "SET_DEVICE_STATE_FD", vutrace.flags.reply, vutrace.channel == 2, vutrace.conn == 1,
-- vutrace.nfds > 0, vutrace.fd.kind == 1, vutrace.vring == 0, vutrace.features, ...

local p = Proto("vutrace", "vhost-user (vutrace)")

local KINDS = @KINDS@
local CHANNELS = @CHANNELS@
local SENDERS = @SENDERS@
local FD_KINDS = @FD_KINDS@
local FD_ACTIONS = @FD_ACTIONS@
local RECEIVER = {frontend = "backend", backend = "frontend"}
local REQUESTS, REQUEST_LAYOUTS, REPLY_LAYOUTS = {}, {}, {}
local FIXED_SIZES = @FIXED_SIZES@
local HEX_FIELDS = @HEX_FIELDS@
local REGION_NAMES = @REGION_NAMES@

local F = {}
F.version = ProtoField.uint8("vutrace.version", "Record version (major)", base.DEC)
F.minor = ProtoField.uint8("vutrace.minor", "Record version (minor)", base.DEC)
F.kind = ProtoField.uint8("vutrace.kind", "Record kind", base.DEC, KINDS)
F.channel = ProtoField.uint8("vutrace.channel", "Channel", base.DEC, CHANNELS)
F.header_len = ProtoField.uint32("vutrace.header_len", "Pseudo-header length", base.DEC)
F.sender = ProtoField.uint8("vutrace.sender", "Sender", base.DEC, SENDERS)
F.nfds = ProtoField.uint8("vutrace.nfds", "FDs", base.DEC)
F.late_fds = ProtoField.uint8("vutrace.late_fds", "FDs after the first byte", base.DEC)
F.record_flags = ProtoField.uint16("vutrace.record_flags", "Record flags", base.HEX)
F.conn = ProtoField.uint32("vutrace.conn", "Connection", base.DEC)
F.stream = ProtoField.uint32("vutrace.stream", "State stream", base.DEC)
F.data_len = ProtoField.uint32("vutrace.data_len", "Data length", base.DEC)
F.state_offset = ProtoField.uint64("vutrace.state.offset", "Stream offset", base.DEC)
F.state_length = ProtoField.uint64("vutrace.state.length", "Chunk length", base.DEC)
F.state_sha256 = ProtoField.bytes("vutrace.state.sha256", "Chunk SHA-256")
F.state_data = ProtoField.bytes("vutrace.state.data", "Chunk bytes")
F.event_name = ProtoField.string("vutrace.event.name", "Event")
F.event_attrs = ProtoField.string("vutrace.event.attrs", "Attributes (JSON)")
F.fd = ProtoField.bytes("vutrace.fd", "FD", base.NONE)
F.fd_kind = ProtoField.uint8("vutrace.fd.kind", "Kind", base.DEC, FD_KINDS)
F.fd_action = ProtoField.uint8("vutrace.fd.action", "Action", base.DEC, FD_ACTIONS)
F.fd_num = ProtoField.int32("vutrace.fd.fd", "FD number in the proxy", base.DEC)
F.fd_size = ProtoField.uint64("vutrace.fd.size", "Size", base.DEC)
F.fd_dev = ProtoField.uint64("vutrace.fd.dev", "Device", base.HEX)
F.fd_ino = ProtoField.uint64("vutrace.fd.ino", "Inode", base.DEC)
F.fd_seals = ProtoField.uint32("vutrace.fd.seals", "Seals", base.HEX)
F.fd_target = ProtoField.string("vutrace.fd.target", "Target")
F.fd_memfd_name = ProtoField.string("vutrace.fd.memfd_name", "memfd name")
F.request = ProtoField.uint32("vutrace.request", "Request", base.DEC)
F.request_name = ProtoField.string("vutrace.request_name", "Request name")
F.flags = ProtoField.uint32("vutrace.flags", "Flags", base.HEX)
F.flags_version = ProtoField.uint32("vutrace.flags.version", "Version", base.DEC, nil, 0x3)
F.flags_reply = ProtoField.bool("vutrace.flags.reply", "Reply", 32, nil, 0x4)
F.flags_need_reply = ProtoField.bool("vutrace.flags.need_reply", "Need reply", 32, nil, 0x8)
F.size = ProtoField.uint32("vutrace.size", "Size", base.DEC)
F.payload = ProtoField.bytes("vutrace.payload", "Payload")
F.region = ProtoField.bytes("vutrace.region", "Memory region")
F.nofd = ProtoField.bool("vutrace.nofd", "No FD (bit 8)")
@PAYLOAD_FIELDS@

local E = {
    malformed = ProtoExpert.new("vutrace.malformed", "Malformed vhost-user message",
        expert.group.MALFORMED, expert.severity.ERROR),
    version = ProtoExpert.new("vutrace.unknown_version", "Record of an unknown vutrace record version",
        expert.group.UNDECODED, expert.severity.NOTE),
    late_fds = ProtoExpert.new("vutrace.fds_after_first_byte", "FDs arrived after the first byte of the message",
        expert.group.PROTOCOL, expert.severity.WARN),
}

local all_fields = {}
for _, field in pairs(F) do table.insert(all_fields, field) end
p.fields = all_fields
p.experts = {E.malformed, E.version, E.late_fds}

local function hex64(range)
    local text = range:le_uint64():tohex():gsub("^0+(.)", "%1")
    return "0x" .. text
end

-- Add one little-endian payload field; remember "name=value" for the Info column (unless parts is nil).
local function add_field(tree, parts, tvb, off, size, name)
    local field = F[name]
    local range = tvb(off, size)
    tree:add_le(field, range)
    local value
    if size == 8 then
        value = HEX_FIELDS[name] and hex64(range) or tostring(range:le_uint64())
    elseif size <= 4 then
        value = tostring(range:le_uint())
        if HEX_FIELDS[name] then value = string.format("0x%x", range:le_uint()) end
    else
        value = nil
    end
    if value and parts and #parts < 4 then table.insert(parts, name .. "=" .. value) end
end

-- The 8-bit value in bits 0-7 and the no-FD flag (bit 8) of a u64.
local function add_split(tree, parts, tvb, off, name, mask)
    local low = tvb(off, 4):le_uint()
    local value = low % (mask + 1)
    local nofd = math.floor(low / 256) % 2 == 1
    tree:add(F[name], tvb(off, 1), value)
    tree:add(F.nofd, tvb(off + 1, 1), nofd)
    table.insert(parts, name .. "=" .. value)
    if nofd then table.insert(parts, "nofd") end
end

local LAYOUT = {}

@FIXED_FUNCTIONS@

local function add_regions(tree, parts, tvb, off, count, size)
    for i = 0, count - 1 do
        local start = off + i * size
        local sub = tree:add(F.region, tvb(start, size))
        sub:set_text(string.format("Memory region %d", i))
        for j, name in ipairs(REGION_NAMES) do
            sub:add_le(F[name], tvb(start + (j - 1) * 8, 8))
        end
        if size > 32 then
            sub:add_le(F.xen_flags, tvb(start + 32, 4))
            sub:add_le(F.domid, tvb(start + 36, 4))
        end
    end
end

LAYOUT["mem_table"] = function(tree, tvb, off, len)
    local parts = {}
    if len < 8 then return parts end
    local count = tvb(off, 4):le_uint()
    tree:add_le(F.num_regions, tvb(off, 4))
    table.insert(parts, "num_regions=" .. count)
    local size = 32
    if count > 0 and len - 8 == count * 40 then size = 40 end
    local fit = math.min(count, math.floor((len - 8) / size))
    add_regions(tree, parts, tvb, off + 8, fit, size)
    return parts
end

LAYOUT["mem_region"] = function(tree, tvb, off, len)
    local parts = {}
    add_regions(tree, parts, tvb, off + 8, 1, len - 8)
    table.insert(parts, "guest_addr=" .. hex64(tvb(off + 8, 8)))
    table.insert(parts, "region_size=" .. tostring(tvb(off + 16, 8):le_uint64()))
    return parts
end

LAYOUT["config"] = function(tree, tvb, off, len)
    local parts = {}
    if len < 12 then return parts end
    tree:add_le(F.config_offset, tvb(off, 4))
    tree:add_le(F.config_size, tvb(off + 4, 4))
    tree:add_le(F.config_flags, tvb(off + 8, 4))
    local size = math.min(tvb(off + 4, 4):le_uint(), len - 12)
    if size > 0 then tree:add(F.config_data, tvb(off + 12, size)) end
    table.insert(parts, "config_offset=" .. tvb(off, 4):le_uint())
    table.insert(parts, "config_size=" .. tvb(off + 4, 4):le_uint())
    return parts
end

LAYOUT["shmem_config"] = function(tree, tvb, off, len)
    local parts = {}
    tree:add_le(F.num_regions, tvb(off, 4))
    table.insert(parts, "num_regions=" .. tvb(off, 4):le_uint())
    for i = 0, math.floor((len - 8) / 8) - 1 do
        local range = tvb(off + 8 + i * 8, 8)
        if range:le_uint64() ~= UInt64(0) then tree:add_le(F.shmem_size, range):append_text(" (shmid " .. i .. ")") end
    end
    return parts
end

LAYOUT["crypto_session"] = function(tree, tvb, off, len)
    local parts = {}
    tree:add_le(F.op_code, tvb(off, 8))
    if len > 16 then tree:add(F.crypto_setup, tvb(off + 8, len - 16)) end
    tree:add_le(F.session_id, tvb(off + len - 8, 8))
    table.insert(parts, "session_id=" .. tostring(tvb(off + len - 8, 8):le_int64()))
    return parts
end

@LAYOUTS@

-- The first layout that fits the payload size (as dissectors/payloads.py choose() does).
local function fits(kind, len, is_reply)
    local size = FIXED_SIZES[kind]
    if size ~= nil then
        return len == size or (kind == "mem_region" and len == @XEN_REGION_SIZE@)
    end
    if kind == "mem_table" then return len == 0 or len >= 8 end
    if kind == "config" then return len >= 12 or (is_reply and len == 0) end
    if kind == "shmem_config" then return len == @SHMEM_CONFIG_SIZE@ end
    if kind == "crypto_session" then return len >= @CRYPTO_MIN_SIZE@ end
    return false
end

local function choose(channel, request, is_reply, len)
    local table_ = is_reply and REPLY_LAYOUTS[channel] or REQUEST_LAYOUTS[channel]
    local options = table_ and table_[request]
    if options == nil then return nil, false end
    for _, kind in ipairs(options) do
        if fits(kind, len, is_reply) then return kind, true end
    end
    return options[1], false
end

local function dissect_message(tvb, pinfo, tree, base, len, channel)
    if len < 12 then
        tree:add_proto_expert_info(E.malformed, "truncated header: " .. len .. " of 12 bytes")
        return "TRUNCATED"
    end
    local request = tvb(base, 4):le_uint()
    local flags = tvb(base + 4, 4):le_uint()
    local size = tvb(base + 8, 4):le_uint()
    local is_reply = math.floor(flags / 4) % 2 == 1
    local names = REQUESTS[channel] or {}
    local name = names[request] or ("UNKNOWN_" .. request)
    local msg = tree:add(p, tvb(base, len), "vhost-user " .. name .. (is_reply and " reply" or ""))
    msg:add_le(F.request, tvb(base, 4)):append_text(" (" .. name .. ")")
    msg:add(F.request_name, tvb(base, 4), name)
    local flag_item = msg:add_le(F.flags, tvb(base + 4, 4))
    flag_item:add_le(F.flags_version, tvb(base + 4, 4))
    -- The bit items are present only when the bit is set, so "vutrace.flags.reply" alone filters replies.
    if is_reply then flag_item:add_le(F.flags_reply, tvb(base + 4, 4)) end
    if math.floor(flags / 8) % 2 == 1 then flag_item:add_le(F.flags_need_reply, tvb(base + 4, 4)) end
    msg:add_le(F.size, tvb(base + 8, 4))
    local present = len - 12
    local payload_len = math.min(size, present)
    local summary = name .. (is_reply and " reply" or "")
    if math.floor(flags / 8) % 2 == 1 then summary = summary .. " need_reply" end
    if present < size then
        local text = "truncated payload: size " .. size .. ", " .. present .. " bytes present"
        msg:add_proto_expert_info(E.malformed, text)
    end
    if payload_len > 0 then
        local body = msg:add(F.payload, tvb(base + 12, payload_len))
        local kind, ok = choose(channel, request, is_reply, payload_len)
        if kind ~= nil and LAYOUT[kind] ~= nil and (ok or (FIXED_SIZES[kind] or 0) <= payload_len) then
            body:set_text("Payload (" .. kind .. ")")
            local parts = LAYOUT[kind](body, tvb, base + 12, payload_len)
            if #parts > 0 then summary = summary .. " " .. table.concat(parts, " ") end
        end
        if kind ~= nil and not ok then
            body:add_proto_expert_info(E.malformed, "payload size " .. payload_len .. " fits no layout of " .. name)
        end
    end
    return summary
end

function p.dissector(tvb, pinfo, tree)
    local len = tvb:len()
    if len < 32 or tvb(0, 4):string() ~= "VUTR" then return 0 end
    pinfo.cols.protocol = "vhost-user"
    local t = tree:add(p, tvb())
    local major = tvb(4, 1):uint()
    t:add(F.version, tvb(4, 1))
    t:add(F.minor, tvb(5, 1))
    if major ~= @MAJOR@ then
        t:add_proto_expert_info(E.version)
        pinfo.cols.info = "vutrace record version " .. major
        return len
    end
    local minor = tvb(5, 1):uint()
    local kind = tvb(6, 1):uint()
    local channel = tvb(7, 1):uint()
    local header_len = tvb(8, 4):le_uint()
    local sender = SENDERS[tvb(12, 1):uint()] or "?"
    local nfds = tvb(13, 1):uint()
    local record_flags = tvb(14, 2):le_uint()
    local conn = tvb(16, 4):le_uint()
    local data_len = tvb(24, 4):le_uint()
    local hdr = t:add(p, tvb(0, math.min(header_len, len)), "vutrace pseudo-header")
    hdr:add(F.kind, tvb(6, 1))
    hdr:add(F.channel, tvb(7, 1))
    hdr:add_le(F.header_len, tvb(8, 4))
    hdr:add(F.sender, tvb(12, 1))
    hdr:add(F.nfds, tvb(13, 1))
    if kind == 1 and minor >= @LATE_FDS_MINOR@ then
        local late = tvb(@OFF_LATE_FDS@, 1):uint()
        hdr:add(F.late_fds, tvb(@OFF_LATE_FDS@, 1))
        if late > 0 then
            hdr:add_proto_expert_info(E.late_fds, late .. " of " .. nfds .. " FDs arrived after the first byte")
        end
    end
    hdr:add_le(F.record_flags, tvb(14, 2))
    hdr:add_le(F.conn, tvb(16, 4))
    hdr:add_le(F.stream, tvb(20, 4))
    hdr:add_le(F.data_len, tvb(24, 4))
    local pos = 32
    local info
    local channel_name = CHANNELS[channel] or "?"
    if kind == 2 then
        hdr:add_le(F.state_offset, tvb(32, 8))
        hdr:add_le(F.state_length, tvb(40, 8))
        if record_flags % 2 == @FLAG_SHA256@ then hdr:add(F.state_sha256, tvb(48, 32)) end
        pos = 80
        info = string.format("STATE_CHUNK stream=%d offset=%s nbytes=%s", tvb(20, 4):le_uint(),
            tostring(tvb(32, 8):le_uint64()), tostring(tvb(40, 8):le_uint64()))
        if math.floor(record_flags / @FLAG_OMITTED@) % 2 == 1 then info = info .. " (hash only)" end
    elseif kind == 3 then
        local name_len = tvb(32, 2):le_uint()
        local attrs_len = tvb(36, 4):le_uint()
        local name = name_len > 0 and tvb(40, name_len):string() or ""
        hdr:add(F.event_name, tvb(40, math.max(name_len, 1)), name)
        if attrs_len > 0 then hdr:add(F.event_attrs, tvb(40 + name_len, attrs_len)) end
        pos = 40 + name_len + attrs_len
        info = "event " .. name
        if attrs_len > 0 then info = info .. " " .. tvb(40 + name_len, attrs_len):string() end
    end
    for i = 1, nfds do
        if pos + @FD_ENTRY_SIZE@ > header_len then break end
        local entry_len = tvb(pos, 2):le_uint()
        local target_len = tvb(pos + 6, 2):le_uint()
        local name_len = tvb(pos + 8, 2):le_uint()
        local fd = hdr:add(F.fd, tvb(pos, entry_len))
        local fd_kind = FD_KINDS[tvb(pos + 2, 1):uint()] or "?"
        fd:set_text(string.format("FD %d: %s %s", tvb(pos + 12, 4):le_int(), fd_kind,
            FD_ACTIONS[tvb(pos + 3, 1):uint()] or "?"))
        fd:add(F.fd_kind, tvb(pos + 2, 1))
        fd:add(F.fd_action, tvb(pos + 3, 1))
        fd:add_le(F.fd_num, tvb(pos + 12, 4))
        if tvb(pos + 4, 1):uint() % 2 == 1 then fd:add_le(F.fd_size, tvb(pos + 16, 8)) end
        fd:add_le(F.fd_dev, tvb(pos + 24, 8))
        fd:add_le(F.fd_ino, tvb(pos + 32, 8))
        if math.floor(tvb(pos + 4, 1):uint() / 2) % 2 == 1 then fd:add_le(F.fd_seals, tvb(pos + 40, 4)) end
        if target_len > 0 then fd:add(F.fd_target, tvb(pos + @FD_ENTRY_SIZE@, target_len)) end
        if name_len > 0 then fd:add(F.fd_memfd_name, tvb(pos + @FD_ENTRY_SIZE@ + target_len, name_len)) end
        pos = pos + entry_len
    end
    if header_len + data_len > len then
        t:add_proto_expert_info(E.malformed, "record data runs past the packet")
        data_len = math.max(len - header_len, 0)
    end
    if kind == 1 then
        info = dissect_message(tvb, pinfo, t, header_len, data_len, channel)
    elseif kind == 2 and data_len > 0 then
        t:add(F.state_data, tvb(header_len, data_len))
    elseif info == nil then
        info = "record kind " .. kind
    end
    local receiver = RECEIVER[sender]
    pinfo.cols.src = sender
    pinfo.cols.dst = receiver or ""
    local text = string.format("#%d %s %s", conn, channel_name, info)
    pinfo.cols.info = text
    local direction = receiver and (sender .. " → " .. receiver) or sender
    t:append_text(string.format(", #%d %s %s, %s", conn, channel_name, direction, info))
    return len
end
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate dissectors/wireshark/vutrace.lua")
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file differs")
    parser.add_argument("-o", "--output", type=Path, default=LUA_PATH)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run python -m vutrace.capture.wireshark_lua", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
