"""Each kind of bad input gives its own clear error or warning, and the decoder never raises."""

from __future__ import annotations

import struct

import pytest

from dissectors.records import decode


def header(request: int, flags: int, size: int) -> bytes:
    return struct.pack("<III", request, flags, size)


@pytest.mark.parametrize("length", [0, 3])
def test_fewer_than_four_bytes_have_no_request_id(length: int) -> None:
    rec = decode(bytes.fromhex("0c0000")[:length])
    assert rec["request_id"] is None
    assert rec["request"] == "TRUNCATED"
    assert rec["error"] == f"truncated header: {length} of 12 bytes"


def test_a_partial_header_keeps_what_it_has() -> None:
    rec = decode(bytes.fromhex("0c000000 05000000 08"))
    assert (rec["request_id"], rec["flags"], rec["is_reply"], rec["request"]) == (12, 5, True, "TRUNCATED")
    assert rec["error"] == "truncated header: 9 of 12 bytes"


def test_a_size_larger_than_the_bytes_given_is_a_truncated_payload() -> None:
    rec = decode(header(9, 1, 40) + bytes(12))
    assert rec["error"] == "truncated payload: size 40, 12 bytes present"
    assert rec["payload_len"] == 12
    assert "desc_addr" not in rec


def test_bytes_beyond_the_size_are_a_warning_and_not_decoded() -> None:
    rec = decode(header(8, 1, 8) + struct.pack("<II", 1, 256) + b"\xff\xff")
    assert rec["error"] is None
    assert rec["warning"] == "2 trailing bytes beyond size 8"
    assert (rec["vring"], rec["num"], rec["payload_len"]) == (1, 256, 8)


def test_a_payload_size_the_message_does_not_have_names_expected_and_got() -> None:
    rec = decode(header(8, 1, 4) + bytes(4))
    assert rec["error"] == "payload size 4, expected 8 for SET_VRING_NUM request"


def test_a_longer_payload_than_the_layout_decodes_the_layout_and_reports_the_size() -> None:
    rec = decode(header(2, 1, 12) + struct.pack("<QI", 0x1_0000_0000, 7))
    assert rec["error"] == "payload size 12, expected 8 for SET_FEATURES request"
    assert rec["features"] == 0x1_0000_0000


def test_reply_alternatives_are_listed_in_the_error() -> None:
    rec = decode(header(6, 5, 4) + bytes(4))
    assert rec["error"] == "payload size 4, expected 8 or 16 for SET_LOG_BASE reply"


def test_an_undefined_request_id_is_unknown_with_its_number() -> None:
    rec = decode(header(99, 1, 0))
    assert rec["request"] == "UNKNOWN_99"
    assert rec["error"] == "unknown request id 99 on the main channel"


def test_an_id_defined_only_on_the_main_channel_is_unknown_on_the_backend_channel() -> None:
    rec = decode(header(42, 1, 8) + bytes(8), "backend")
    assert rec["request"] == "UNKNOWN_42"
    assert rec["error"] == "unknown request id 42 on the backend channel"


def test_version_bits_other_than_one_are_an_error() -> None:
    rec = decode(header(1, 0x6, 8) + bytes(8))
    assert rec["version"] == 2
    assert rec["error"] == "version 2, expected 1"
    assert rec["features"] == 0


def test_undefined_flag_bits_are_a_warning() -> None:
    rec = decode(header(3, 0x31, 0))
    assert rec["error"] is None
    assert rec["warning"] == "undefined flag bits 0x30"


def test_the_reply_flag_alone_decides_the_layout() -> None:
    as_reply = decode(header(12, 0x5, 8) + struct.pack("<Q", 0x100))
    assert as_reply["result"] == 0x100
    assert "vring" not in as_reply
    no_payload = decode(header(1, 0x5, 0))
    assert no_payload["error"] == "payload size 0, expected 8 for GET_FEATURES reply"


def test_more_than_eight_memory_regions_are_an_error() -> None:
    rec = decode(header(5, 1, 8 + 9 * 32) + struct.pack("<II", 9, 0) + bytes(9 * 32))
    assert rec["error"] == "num_regions 9 exceeds 8"
    assert len(rec["regions"]) == 9


def test_a_memory_table_size_that_does_not_match_num_regions_is_an_error() -> None:
    rec = decode(header(5, 1, 8 + 32) + struct.pack("<II", 2, 0) + bytes(32))
    assert rec["error"] == "payload size 40 does not match num_regions 2 (expected 8+32*2 = 72)"
    assert rec["num_regions"] == 2
    assert len(rec["regions"]) == 1


def test_an_empty_memory_table_is_the_postcopy_acknowledgement() -> None:
    rec = decode(header(5, 1, 0))
    assert rec["error"] is None
    assert rec["warning"] == "empty memory table (postcopy acknowledgement)"
    assert (rec["num_regions"], rec["regions"]) == (0, ())


def test_an_empty_get_config_reply_is_the_back_ends_error_report() -> None:
    rec = decode(header(24, 5, 0))
    assert rec["error"] is None
    assert rec["warning"] == "back-end reported an error (0-byte GET_CONFIG reply)"


def test_an_empty_config_request_is_an_error() -> None:
    assert decode(header(25, 1, 0))["error"] == "payload size 0, expected 12+size for SET_CONFIG request"


def test_config_data_shorter_than_its_size_field_is_an_error() -> None:
    rec = decode(header(25, 1, 14) + struct.pack("<III", 0, 4, 0) + b"ab")
    assert rec["error"] == "config size 4, 2 data bytes present"
    assert rec["config_data"] == b"ab"


def test_a_shmem_config_of_the_wrong_size_is_an_error() -> None:
    rec = decode(header(44, 5, 16) + bytes(16))
    assert rec["error"] == "payload size 16, expected 2056 for GET_SHMEM_CONFIG reply"


def test_a_shmem_region_count_that_disagrees_with_the_sizes_is_a_warning() -> None:
    rec = decode(header(44, 5, 2056) + struct.pack("<II", 2, 0) + struct.pack("<Q", 4096) + bytes(255 * 8))
    assert rec["warning"] == "num_regions 2 but 1 non-zero region sizes"
    assert rec["shmem_sizes"][:2] == (4096, 0)


def test_a_crypto_session_without_room_for_op_code_and_session_id_is_an_error() -> None:
    rec = decode(header(26, 1, 8) + bytes(8))
    assert rec["error"] == "payload size 8, expected >= 16 for CREATE_CRYPTO_SESSION request"


@pytest.mark.parametrize(
    ("message", "nfds", "warning"),
    [
        (header(12, 1, 8) + struct.pack("<Q", 0), 0, "0 FDs attached, expected 1"),
        (header(12, 1, 8) + struct.pack("<Q", 0x100), 1, "1 FDs attached, expected 0"),
        (header(3, 1, 0), 2, "2 FDs attached, expected 0"),
        (header(5, 1, 40) + struct.pack("<II", 1, 0) + bytes(32), 0, "0 FDs attached, expected 1"),
        (header(42, 5, 8) + struct.pack("<Q", 0), 0, "0 FDs attached, expected 1"),
    ],
    ids=["kick-without-fd", "kick-nofd-with-fd", "fd-on-set-owner", "mem-table-fd-count", "state-reply-fd"],
)
def test_an_fd_count_the_message_does_not_allow_is_a_warning(message: bytes, nfds: int, warning: str) -> None:
    assert decode(message, "main", nfds)["warning"] == warning


def test_fd_counts_are_not_checked_when_unknown() -> None:
    assert decode(header(12, 1, 8) + struct.pack("<Q", 0))["warning"] is None


def test_an_unknown_channel_is_an_error() -> None:
    rec = decode(header(1, 1, 0), "state")
    assert rec["error"] == "unknown channel 'state'"


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_any_bytes_like_input_decodes(kind: type) -> None:
    rec = decode(kind(header(8, 1, 8) + struct.pack("<II", 0, 256)))
    assert (rec["error"], rec["num"]) == (None, 256)
