"""virtiofsd's migration state: the real streams in samples/, hand-built variants, malformed input."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from state_fixtures import (
    FILE_HANDLES,
    FIND_PATHS,
    NO_GUEST,
    by_handle,
    file_handle,
    full_path,
    handle,
    inode,
    invalid,
    path,
    root,
    sample,
    seq,
    state,
    state_bytes,
    text,
    varint,
)

from dissectors.state import virtiofsd
from dissectors.state.virtiofsd import VirtiofsdState, open_flags

O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND, O_LARGEFILE = 0o1, 0o2, 0o100, 0o1000, 0o2000, 0o100000


def decoded_state(data: bytes) -> VirtiofsdState:
    result = virtiofsd.decode(data)
    assert isinstance(result.content, VirtiofsdState)
    return result.content


@pytest.fixture(scope="module")
def find_paths() -> bytes:
    return state_bytes(sample(FIND_PATHS[0]))


@pytest.fixture(scope="module")
def file_handles() -> bytes:
    return state_bytes(sample(FILE_HANDLES[0]))


def test_find_paths_sample_names_every_file_under_its_parent(find_paths: bytes) -> None:
    result = virtiofsd.decode(find_paths)
    assert result.recognised and result.error is None and result.warnings == []
    content = decoded_state(find_paths)
    assert content.version == "V2" and content.mount_paths == {}
    by_name = {i.location.filename: i for i in content.inodes if i.location.kind == "path"}
    (top,) = [i for i in content.inodes if i.location.kind == "root"]
    assert top.id == 1 and top.path == "/"
    assert {f"file-{n}" for n in range(1, 13)} <= by_name.keys()
    assert all(by_name[f"file-{n}"].location.parent == top.id for n in range(1, 13))
    assert by_name["sub"].location.parent == by_name["dir"].id
    assert by_name["deep"].location.parent == by_name["sub"].id
    assert by_name["deep"].path == "/dir/sub/deep"
    assert by_name["appended"].location.parent == top.id and by_name["appended"].path == "/appended"
    assert content.next_inode == max(i.id for i in content.inodes) + 1


def test_find_paths_sample_keeps_the_guests_open_files_with_their_flags(find_paths: bytes) -> None:
    content = decoded_state(find_paths)
    paths = {i.id: i.path for i in content.inodes}
    opened = {paths[h.inode]: h.flag_names for h in content.handles}
    assert opened["/file-1"] == "O_RDONLY|O_LARGEFILE"
    assert opened["/appended"] == "O_WRONLY|O_APPEND|O_LARGEFILE"
    assert content.next_handle == max(h.id for h in content.handles) + 1
    assert content.negotiated_opts is not None and content.negotiated_opts.enabled() == ["announce_submounts"]


def test_file_handles_sample_locates_inodes_by_handle_on_a_migrated_mount(file_handles: bytes) -> None:
    result = virtiofsd.decode(file_handles)
    assert result.recognised and result.warnings == []
    content = decoded_state(file_handles)
    located = [i for i in content.inodes if i.location.kind == "file-handle"]
    assert len(located) == len(content.inodes) - 1
    handles = [i.location.handle for i in located if i.location.handle is not None]
    assert {h.mnt_id for h in handles} == set(content.mount_paths or {}) == {47}
    assert content.mount_paths == {47: "."}
    assert all(h.type_name == "FILEID_INO32_GEN" and len(h.handle) == 8 for h in handles)
    first = handles[0]
    assert first.handle_fields()["ino"] == int.from_bytes(first.handle[:4], "little")
    assert all(i.path is None for i in located)


@pytest.mark.parametrize("pair", [FIND_PATHS, FILE_HANDLES, NO_GUEST])
def test_the_destination_loaded_exactly_what_the_source_saved(pair: tuple[str, str]) -> None:
    saved, loaded = (state_bytes(sample(name)) for name in pair)
    assert saved == loaded
    assert virtiofsd.decode(saved).rows == virtiofsd.decode(loaded).rows


def test_no_guest_sample_is_the_empty_v2_state() -> None:
    data = state_bytes(sample(NO_GUEST[0]))
    assert data == bytes.fromhex("01000200000000000000")
    content = decoded_state(data)
    assert (content.version, content.inodes, content.next_inode) == ("V2", [], 2)
    assert (content.handles, content.next_handle, content.mount_paths) == ([], 0, {})
    assert content.negotiated_opts is not None and content.negotiated_opts.enabled() == []
    assert [r["kind"] for r in virtiofsd.decode(data).rows] == [
        "version",
        "count",
        "next_inode",
        "count",
        "next_handle",
        "negotiated_opts",
        "count",
    ]


@pytest.mark.parametrize("name", [*FIND_PATHS, *FILE_HANDLES, *NO_GUEST])
def test_rows_cover_every_byte_of_a_real_stream_in_order(name: str) -> None:
    data = state_bytes(sample(name))
    rows = virtiofsd.decode(data).rows
    assert rows[0]["offset"] == 0
    assert all(a["offset"] + a["length"] == b["offset"] for a, b in itertools.pairwise(rows))
    assert rows[-1]["offset"] + rows[-1]["length"] == len(data)


def test_every_location_variant_and_a_verify_handle() -> None:
    data = state(
        0,
        [
            inode(1, 3, root()),
            inode(2, 1, path(1, "etc")),
            inode(3, 1, full_path("etc/hosts")),
            inode(4, 1, by_handle(7, 0x81, bytes(range(12))), verify=file_handle(7, 0x81, bytes(range(12)))),
            inode(5, 1, invalid()),
        ],
        6,
        [handle(0, 3, O_RDWR | O_CREAT | O_TRUNC)],
        1,
        (True, False, True, False),
    )
    result = virtiofsd.decode(data)
    assert result.recognised and result.error is None
    content = decoded_state(data)
    assert content.version == "V1" and content.mount_paths is None
    kinds = [i.location.kind for i in content.inodes]
    assert kinds == ["root", "path", "full-path", "file-handle", "invalid"]
    assert [i.path for i in content.inodes] == ["/", "/etc", "/etc/hosts", None, None]
    by_id = {i.id: i for i in content.inodes}
    assert by_id[4].file_handle is not None and by_id[4].file_handle.handle_fields() == {
        "ino": 0x0706050403020100,
        "generation": 0x0B0A0908,
    }
    assert content.handles[0].flag_names == "O_RDWR|O_CREAT|O_TRUNC"
    assert content.negotiated_opts is not None and content.negotiated_opts.enabled() == ["writeback", "posix_acl"]
    assert result.warnings == [
        "inode 5 is Invalid: the source could not find it (the destination applies --migration-on-error)"
    ]


def test_v2_mount_paths_and_a_negative_handle_type() -> None:
    data = state(1, [inode(1, 1, root()), inode(2, 1, by_handle(30, -1, b"\x01"))], 3, mount_paths={30: "sub/mnt"})
    content = decoded_state(data)
    handle_ = content.inodes[1].location.handle
    assert handle_ is not None and handle_.handle_type == -1 and handle_.type_name == "type 0xffffffff"
    assert content.mount_paths == {30: "sub/mnt"}


@pytest.mark.parametrize(
    ("inodes", "handles", "next_inode", "next_handle", "mount_paths", "warning"),
    [
        ([inode(1, 1, root()), inode(2, 1, path(9, "x"))], [], 3, 0, {}, "inode 2: parent 9 is not in the state"),
        (
            [inode(1, 1, root()), inode(2, 1, path(3, "a")), inode(3, 1, path(2, "b"))],
            [],
            4,
            0,
            {},
            "inode 2: its parent chain loops back to inode 2",
        ),
        ([inode(1, 1, root()), inode(1, 1, path(1, "a"))], [], 2, 0, {}, "inode ids appear more than once: 1"),
        ([inode(2, 1, path(1, "a"))], [], 3, 0, {}, "0 root inodes, expected 1"),
        ([inode(1, 1, root()), inode(5, 1, path(1, "a"))], [], 5, 0, {}, "next_inode 5 is not above"),
        ([inode(1, 1, root())], [handle(0, 8, 0)], 2, 1, {}, "handle 0: inode 8 is not in the state"),
        ([inode(1, 1, root())], [handle(4, 1, 0)], 2, 3, {}, "next_handle 3 is not above the largest handle id 4"),
        (
            [inode(1, 1, root()), inode(2, 1, by_handle(5, 1, b"12345678"))],
            [],
            3,
            0,
            {6: "."},
            "file handles on mount ids without a mount path: 5",
        ),
    ],
)
def test_a_state_that_decodes_but_would_fail_on_the_destination_gets_a_warning(
    inodes: list[bytes],
    handles: list[bytes],
    next_inode: int,
    next_handle: int,
    mount_paths: dict[int, str],
    warning: str,
) -> None:
    result = virtiofsd.decode(state(1, inodes, next_inode, handles, next_handle, mount_paths=mount_paths))
    assert result.recognised
    assert any(w.startswith(warning) for w in result.warnings), result.warnings


def test_a_mount_id_given_twice_is_flagged() -> None:
    empty_v1_body = state(0, [], 1)[1:]
    data = varint(1) + empty_v1_body + seq([varint(9) + text("a"), varint(9) + text("b")])
    result = virtiofsd.decode(data)
    assert result.recognised and decoded_state(data).mount_paths == {9: "b"}
    assert result.warnings == ["mount ids appear more than once in mount_paths (the last path counts)"]
    assert [r["path"] for r in result.rows if r["kind"] == "mount_path"] == ["a", "b"]


def test_a_deep_tree_resolves_without_recursion() -> None:
    depth = 1500
    inodes = [inode(1, 1, root())] + [inode(n, 1, path(n - 1, "d")) for n in range(2, depth + 2)]
    content = decoded_state(state(1, inodes, depth + 2))
    assert content.inodes[-1].path == "/d" * depth


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (varint(2), "version: variant 2, expected 0 (V1) or 1 (V2) at byte 0"),
        (state(1, [inode(1, 1, varint(5))], 2), "inodes[0].location: variant 5, expected 0 to 4 at byte 4"),
        (
            state(1, [inode(1, 1, root())], 2, [varint(0) + varint(1) + varint(1) + varint(0)], 1),
            "handles[0].source: variant 1, expected 0 (OpenInode) at byte 10",
        ),
        (state(1, [], 1)[:-5] + b"\x02\x00\x00\x00\x00", "negotiated_opts.writeback: bool byte is 0x02"),
        (varint(1) + varint(1) + varint(1) + varint(1) + root() + b"\x07", "inodes[0].file_handle: option tag"),
        (state(1, [inode(1, 1, path(1, b"\xc3\x28"))], 2), "inodes[0].location.filename: string is not UTF-8"),
        (state(1, [], 1) + b"\x00\x00", "2 bytes after the end of the state at byte 10"),
    ],
)
def test_malformed_input_names_the_field_and_keeps_what_decoded(data: bytes, error: str) -> None:
    result = virtiofsd.decode(data)
    assert not result.recognised and not virtiofsd.detect(data)
    assert result.error is not None and result.error.startswith(error), result.error
    assert result.content is not None


@pytest.mark.parametrize("name", [FIND_PATHS[0], FILE_HANDLES[0], NO_GUEST[0]])
def test_a_stream_cut_at_any_offset_never_raises_and_keeps_every_complete_item(name: str) -> None:
    data = state_bytes(sample(name))
    whole = decoded_state(data)
    kept_before = 0
    for cut in range(len(data)):
        result = virtiofsd.decode(data[:cut])
        assert not result.recognised and result.error
        content = decoded_state(data[:cut])
        assert len(content.inodes) >= kept_before
        kept_before = len(content.inodes)
        assert [i.id for i in content.inodes] == [i.id for i in whole.inodes[: len(content.inodes)]]
        assert all(i.offset + i.length <= cut for i in content.inodes)
        error_rows = [r for r in result.rows if r["kind"] == "error"]
        assert len(error_rows) == 1 and error_rows[0]["offset"] + error_rows[0]["length"] == cut


def test_a_cut_list_says_how_many_items_arrived(find_paths: bytes) -> None:
    result = virtiofsd.decode(find_paths[:100])
    assert result.error is not None and result.error.endswith("(7 of 18 inodes decoded)")
    assert result.summary == "V2: 7 inodes, 0 open handles decoded before the error"


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    result = virtiofsd.decode(data)
    assert result.recognised == (result.error is None)


@given(st.binary(min_size=1, max_size=40))
def test_a_mutated_real_stream_never_raises(noise: bytes) -> None:
    data = bytearray(state_bytes(sample(FIND_PATHS[0])))
    for position, value in enumerate(noise):
        data[(position * 37 + value) % len(data)] = value
    virtiofsd.decode(bytes(data))


@pytest.mark.parametrize(
    ("flags", "names"),
    [
        (0, "O_RDONLY"),
        (O_WRONLY | O_APPEND | O_LARGEFILE, "O_WRONLY|O_APPEND|O_LARGEFILE"),
        (O_RDWR | O_CREAT | O_TRUNC, "O_RDWR|O_CREAT|O_TRUNC"),
        (0o4010000, "O_RDONLY|O_SYNC"),
        (0o10000, "O_RDONLY|O_DSYNC"),
        (0o20200002, "O_RDWR|O_TMPFILE"),
        (0o200000 | 0o2000000, "O_RDONLY|O_DIRECTORY|O_CLOEXEC"),
        (0x40000000 | O_WRONLY, "O_WRONLY|0x40000000"),
        (-1 & ~0o7777777777, "O_RDONLY|0xc0000000"),
    ],
)
def test_open_flags_by_name(flags: int, names: str) -> None:
    assert open_flags(flags) == names


def test_text_fixture_writer_matches_the_real_sample_encoding(find_paths: bytes) -> None:
    assert text("file-1") in find_paths and text(".vutrace-guest.sh") in find_paths
