"""Cross-capture rules: a migration source and its destination compared.

The source capture is the one with a SAVE transfer, the destination the one with a LOAD transfer.
"""

from __future__ import annotations

from collections.abc import Iterator

from vutrace.analysis.checks.context import CheckContext
from vutrace.analysis.checks.model import Hit, Severity, rule
from vutrace.analysis.throughput import Stream, streams
from vutrace.analysis.timeline import side_timeline


def _stream(ctx: CheckContext, direction: str) -> Stream | None:
    return next((s for s in streams(ctx.capture) if s.direction == direction and s.close_row is not None), None)


@rule(
    "migration.state-size",
    Severity.ERROR,
    "The destination loads as many state bytes as the source saved",
    "Migrating back-end state",
    "S5",
    cross=True,
)
def state_size(source: CheckContext, destination: CheckContext) -> Iterator[Hit]:
    saved, loaded = _stream(source, "SAVE"), _stream(destination, "LOAD")
    if saved is None or loaded is None or saved.total == loaded.total:
        return
    assert saved.close_row is not None and loaded.close_row is not None
    yield Hit(
        f"the source saved {saved.total} bytes of device state, the destination loaded {loaded.total}",
        (saved.close_row,),
        side=source.label,
        more=((destination.label, loaded.close_row),),
    )


@rule(
    "migration.state-hash",
    Severity.ERROR,
    "The destination loads the same state bytes the source saved (SHA-256)",
    "Migrating back-end state",
    "S5",
    cross=True,
)
def state_hash(source: CheckContext, destination: CheckContext) -> Iterator[Hit]:
    saved, loaded = _stream(source, "SAVE"), _stream(destination, "LOAD")
    if saved is None or loaded is None or saved.total != loaded.total or not saved.sha256 or not loaded.sha256:
        return
    if saved.sha256 != loaded.sha256:
        assert saved.close_row is not None and loaded.close_row is not None
        yield Hit(
            f"the state bytes differ: SHA-256 {saved.sha256[:16]}… saved, {loaded.sha256[:16]}… loaded",
            (saved.close_row,),
            side=source.label,
            more=((destination.label, loaded.close_row),),
        )


@rule(
    "migration.ring-base",
    Severity.ERROR,
    "The destination's SET_VRING_BASE equals the source's GET_VRING_BASE reply for every ring",
    "Migrating back-end state",
    "S7",
    cross=True,
)
def ring_base(source: CheckContext, destination: CheckContext) -> Iterator[Hit]:
    stopped = side_timeline(source.capture).stopped_bases
    restarted = side_timeline(destination.capture).set_bases
    for vring in sorted(set(stopped) & set(restarted)):
        (src, src_row), (dst, dst_row) = stopped[vring], restarted[vring]
        if src != dst:
            yield Hit(
                f"ring {vring}: the source stopped at base {src}, the destination restarts at {dst}",
                (src_row,),
                side=source.label,
                more=((destination.label, dst_row),),
            )
