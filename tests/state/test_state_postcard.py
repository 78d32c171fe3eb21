"""The postcard reader: varints with overflow checks, zigzag, bool, option, lengths bounded by the input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from state_fixtures import text, varint, zigzag

from dissectors.state.postcard import PostcardError, Reader


@pytest.mark.parametrize(
    ("encoded", "value"),
    [
        ("00", 0),
        ("01", 1),
        ("7f", 127),
        ("8001", 128),
        ("ac02", 300),
        ("ffffffffffffffffff01", (1 << 64) - 1),
        ("8000", 0),
    ],
)
def test_u64_varints_decode_like_postcard_including_over_long_forms(encoded: str, value: int) -> None:
    reader = Reader(bytes.fromhex(encoded))
    assert reader.u64() == value
    assert reader.at_end()


def test_a_tenth_byte_beyond_64_bits_is_an_overflow() -> None:
    with pytest.raises(PostcardError, match="varint overflows u64 at byte 0"):
        Reader(bytes.fromhex("ffffffffffffffffff02")).u64()


def test_a_varint_longer_than_ten_bytes_is_refused() -> None:
    with pytest.raises(PostcardError, match="longer than 10 bytes"):
        Reader(b"\x80" * 10 + b"\x00").u64()


def test_a_32_bit_varint_keeps_to_five_bytes_and_four_bits_in_the_last() -> None:
    assert Reader(bytes.fromhex("ffffffff0f")).varint(32) == 0xFFFFFFFF
    with pytest.raises(PostcardError, match="overflows u32"):
        Reader(bytes.fromhex("ffffffff10")).varint(32)


def test_a_cut_varint_names_where_it_started_and_what_was_read() -> None:
    reader = Reader(b"\x05\xff\xff")
    reader.u8()
    with pytest.raises(PostcardError) as caught:
        reader.u64("next_inode")
    assert caught.value.offset == 1 and caught.value.what == "next_inode"
    assert str(caught.value) == "next_inode: input ends inside a varint at byte 1"


@pytest.mark.parametrize(
    ("encoded", "value"), [("00", 0), ("01", -1), ("02", 1), ("03", -2), ("feffffff0f", 2**31 - 1)]
)
def test_zigzag_signed_values(encoded: str, value: int) -> None:
    assert Reader(bytes.fromhex(encoded)).i32() == value


@given(st.integers(0, (1 << 64) - 1))
def test_every_u64_written_by_the_independent_writer_reads_back(value: int) -> None:
    assert Reader(varint(value)).u64() == value


@given(st.integers(-(2**31), 2**31 - 1))
def test_every_i32_written_by_the_independent_writer_reads_back(value: int) -> None:
    assert Reader(zigzag(value)).i32() == value


def test_bool_and_option_accept_only_zero_and_one() -> None:
    reader = Reader(b"\x00\x01\x00\x01")
    assert [reader.boolean(), reader.boolean(), reader.option(), reader.option()] == [False, True, False, True]
    with pytest.raises(PostcardError, match="bool byte is 0x02"):
        Reader(b"\x02").boolean()
    with pytest.raises(PostcardError, match="option tag is 0x02"):
        Reader(b"\x02").option()


def test_strings_and_byte_vectors() -> None:
    reader = Reader(text("dir") + text(b"\x00\xff"))
    assert reader.string() == "dir"
    assert reader.byte_vec() == b"\x00\xff"
    assert reader.at_end()


def test_a_length_beyond_the_input_is_refused_before_anything_is_read() -> None:
    reader = Reader(varint(1 << 40) + b"abc")
    with pytest.raises(PostcardError, match="length 1099511627776 exceeds the 3 bytes left at byte 0"):
        reader.string("name")


def test_a_string_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(PostcardError, match="not UTF-8"):
        Reader(text(b"\xff\xfe")).string()


def test_a_huge_item_count_is_returned_for_the_caller_to_loop_until_the_input_ends() -> None:
    reader = Reader(varint(1 << 60) + b"\x01")
    count = reader.count()
    assert count == 1 << 60
    items = []
    with pytest.raises(PostcardError, match="input ends"):
        for _ in range(count):
            items.append(reader.u8())
    assert items == [1]


def test_reading_past_the_end_is_an_error_not_an_index_error() -> None:
    with pytest.raises(PostcardError, match="input ends at byte 0"):
        Reader(b"").u8()
