"""What a back-end reports: events (info, faults it injected, problems it found) and state transfers."""

from __future__ import annotations

from dataclasses import dataclass

from vutrace.sim.state import DeviceSnapshot


@dataclass(frozen=True)
class Event:
    ts: float
    level: str
    """``info``, ``fault`` (injected on purpose) or ``problem`` (the peer broke a rule, or something failed)."""
    text: str


@dataclass
class TransferReport:
    """One device-state transfer as the back-end saw it."""

    direction: str
    channel: str
    """``frontend`` (the front-end's pipe) or ``backend`` (its own)."""
    bytes: int = 0
    sha256: str = ""
    seconds: float = 0.0
    error: str | None = None
    snapshot: DeviceSnapshot | None = None
