"""``vutrace state`` and the analysis behind it, on the real samples and on captures of vutrace sim runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from state_fixtures import FILE_HANDLES, FIND_PATHS, NO_GUEST, rewrite, sample, state_bytes

from vutrace.analysis import state_contents
from vutrace.analysis.frame import Capture
from vutrace.cli import main
from vutrace.commands.state import printable
from vutrace.loader import load
from vutrace.sim.routing import ProxyThreads
from vutrace.sim.scenarios import run_scenario

SCENARIOS = ("migrate", "migrate-corrupt", "migrate-fd-error")


@pytest.fixture(scope="module")
def sim_captures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``<scenario>/<side>`` -> capture, written by the in-process proxy between the simulated peers."""
    out = {}
    for name in SCENARIOS:
        directory = tmp_path_factory.mktemp(name)
        result = run_scenario(name, route=ProxyThreads(directory))
        assert result.ok, result.lines()
        out.update({f"{name}/{p.stem}": p for p in directory.glob("*.pcapng")})
    return out


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def contents_of(path: Path) -> list[state_contents.StreamContents]:
    return state_contents.contents(Capture(load(path), path.name, str(path)))


def test_find_paths_sample_in_text(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "state", str(sample(FIND_PATHS[0])))
    assert status == 0
    assert out.startswith("virtiofs-migration-source.pcapng: stream 1 (connection 1), SAVE, 244 bytes\n")
    assert "  summary: V2: 18 inodes, 3 open handles, 0 mount paths" in out
    assert "  inodes: 18, next id 19" in out
    assert '    17     1  /dir/sub/deep       parent 16, name "deep"' in out
    assert "    15     18  O_WRONLY|O_APPEND|O_LARGEFILE  /appended" in out
    assert "  negotiated options: announce_submounts (off: writeback, posix_acl, sup_group_extension)" in out
    assert "  mount paths: none" in out
    assert "warning" not in out and "error" not in out


def test_file_handles_sample_in_text(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "state", str(sample(FILE_HANDLES[1])))
    assert ", LOAD, 290 bytes" in out
    assert (
        'file handle mount 47 FILEID_INO32_GEN 8ee32300e32aa04a (ino 2352014 generation 1252010723) (mount path ".")'
        in out
    )
    assert '  mount paths: 47 -> "."' in out


def test_json_carries_the_structured_state(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "state", str(sample(FIND_PATHS[1])), "--format", "json")
    assert status == 0
    (stream,) = json.loads(out)["streams"]
    assert (stream["direction"], stream["size"], stream["captured"], stream["complete"]) == ("LOAD", 244, 244, True)
    decoded = stream["decoded"]
    assert decoded["format"] == "virtiofsd" and decoded["content"]["version"] == "V2"
    paths = {i["path"] for i in decoded["content"]["inodes"]}
    assert {"/", "/dir", "/dir/sub", "/dir/sub/deep", "/appended"} <= paths
    assert [h["flag_names"] for h in decoded["content"]["handles"]][-1] == "O_WRONLY|O_APPEND|O_LARGEFILE"
    assert "raw" not in stream


def test_raw_adds_the_bytes(capsys: pytest.CaptureFixture[str]) -> None:
    data = state_bytes(sample(NO_GUEST[0]))
    _, out, _ = run(capsys, "state", str(sample(NO_GUEST[0])), "--raw")
    assert "  bytes (10):\n    00000000  01 00 02 00 00 00 00 00  00 00" in out
    _, out, _ = run(capsys, "state", str(sample(NO_GUEST[0])), "--raw", "--format", "json")
    assert json.loads(out)["streams"][0]["raw"] == data.hex()


def test_a_capture_without_a_state_stream_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "state", str(sample("dpdk-testpmd.pcapng")))
    assert (status, out) == (0, "dpdk-testpmd.pcapng: no device-state stream\n")
    status, out, _ = run(capsys, "state", str(sample("dpdk-testpmd.pcapng")), "--format", "json")
    assert status == 0 and json.loads(out)["streams"] == []


def test_a_bad_file_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "notes.pcapng"
    bad.write_text("not a capture\n")
    status, out, err = run(capsys, "state", str(bad))
    assert status == 2 and out == "" and err.startswith("vutrace state: ") and err.count("\n") == 1
    status, _, err = run(capsys, "state", str(tmp_path / "missing.pcapng"))
    assert status == 2 and err.startswith("vutrace state: cannot read")


def test_sim_migration_states_verify_on_both_sides(sim_captures: dict[str, Path]) -> None:
    for side in ("source", "destination"):
        (item,) = contents_of(sim_captures[f"migrate/{side}"])
        assert item.complete and item.decoded is not None
        assert item.decoded.format == "vutrace-sim" and item.decoded.error is None
    saved, loaded = (contents_of(sim_captures[f"migrate/{side}"])[0] for side in ("source", "destination"))
    assert saved.data == loaded.data and saved.stream.direction == "SAVE" and loaded.stream.direction == "LOAD"


def test_sim_corruption_shows_in_the_destinations_state(
    capsys: pytest.CaptureFixture[str], sim_captures: dict[str, Path]
) -> None:
    _, out, _ = run(capsys, "state", str(sim_captures["migrate/source"]))
    assert "  payload: 4096 of 4096 bytes present, the seed's stream" in out and " verifies" in out
    _, out, _ = run(capsys, "state", str(sim_captures["migrate-corrupt/destination"]))
    assert "DIFFERS from the seed's stream at payload byte" in out
    assert "does NOT verify" in out and "\n  error: payload byte " in out


def test_a_refused_transfer_has_no_bytes(capsys: pytest.CaptureFixture[str], sim_captures: dict[str, Path]) -> None:
    status, out, _ = run(capsys, "state", str(sim_captures["migrate-fd-error/source"]))
    assert status == 0
    assert "refused by the back-end: SET_DEVICE_STATE_FD error 1" in out and "no state bytes in the capture" in out


def test_chunks_out_of_order_are_joined_by_offset(tmp_path: Path) -> None:
    path = rewrite(sample(FIND_PATHS[0]), tmp_path / "reordered.pcapng", split=(100, 150), reverse=True)
    (item,) = contents_of(path)
    assert item.complete and item.data == state_bytes(sample(FIND_PATHS[0]))
    assert item.decoded is not None and item.decoded.format == "virtiofsd"


def test_a_gap_is_reported_and_the_bytes_before_it_are_decoded(tmp_path: Path) -> None:
    path = rewrite(sample(FIND_PATHS[0]), tmp_path / "gap.pcapng", split=(100, 150), drop=(1,))
    (item,) = contents_of(path)
    assert item.notes == ["bytes 100 to 149 are missing from the capture"] and len(item.data) == 100
    assert item.decoded is not None and item.decoded.format == "unknown"
    (attempt,) = item.decoded.attempts
    assert attempt.format == "virtiofsd" and attempt.error is not None and "(7 of 18 inodes decoded)" in attempt.error


def test_a_cut_off_capture_says_how_much_it_holds(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = rewrite(sample(FIND_PATHS[0]), tmp_path / "cut.pcapng", split=(100,), drop=(1,))
    _, out, _ = run(capsys, "state", str(path))
    assert "  note: the stream carried 244 bytes, the capture holds the first 100" in out
    assert "  format: unknown: 100 bytes in no known format: 01 12 01 11" in out
    assert (
        "  read as virtiofsd, it fails: inodes[7].file_handle: input ends at byte 100 (7 of 18 inodes decoded)" in out
    )
    assert "      3     1  /file-1" in out


def test_a_hash_only_capture_cannot_show_contents(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = rewrite(sample(FIND_PATHS[0]), tmp_path / "hashed.pcapng", state_payload="hash")
    (item,) = contents_of(path)
    assert item.decoded is None and item.size == 244 and item.data == b""
    _, out, _ = run(capsys, "state", str(path))
    assert 'keeps only the length and SHA-256 of 244 bytes (recorded with state payload "hash")' in out
    assert "no state bytes in the capture" in out


def test_the_decoded_rows_of_all_streams_form_one_frame() -> None:
    found = contents_of(sample(FILE_HANDLES[0]))
    frame = state_contents.rows_frame(found)
    assert list(frame.columns[:5]) == ["side", "conn", "stream", "direction", "format"]
    assert (frame["kind"] == "inode").sum() == 18
    assert frame.loc[frame["kind"] == "mount_path", "path"].tolist() == ["."]
    assert (frame["offset"] + frame["length"]).max() == 290


def test_guest_chosen_names_cannot_drive_the_terminal() -> None:
    assert printable("evil\x1b[2J\nname") == "evil\\x1b[2J\\nname"
    assert printable(None) == "-" and printable("dir/ü") == "dir/ü"
