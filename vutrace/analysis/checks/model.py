"""Findings, rules and the rule table of the conformance checker.

A rule is a function that looks at one capture (or, for cross-capture rules, a source and a
destination capture) and yields ``Hit``s: the offending records and a one-line message. The
runner turns hits into ``Finding``s carrying the rule's id, severity and spec section. Rule
families register their rules with the ``rule`` decorator, so the table is the registry itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


SEVERITY_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


@dataclass(frozen=True)
class RecordRef:
    """One offending record: which capture, which row, when."""

    side: str
    row: int
    ts_ns: int


@dataclass(frozen=True)
class Hit:
    """What a rule function reports: the message and the rows (of its capture) it is about."""

    message: str
    rows: tuple[int, ...]
    side: str | None = None
    """For cross-capture rules: the capture the rows belong to (else the checked capture)."""
    more: tuple[tuple[str, int], ...] = ()
    """For cross-capture rules: further (side, row) references in the other capture."""


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    title: str
    """What the rule checks, in one line (docs/checks.md explains the reasoning)."""
    section: str
    """The section of vhost-user.rst the rule comes from."""
    ref: str
    """The rule's number in the protocol reference (e.g. F1, G2, S6), or "" if it has none."""
    check: Callable[..., Iterable[Hit]]
    cross: bool = False
    """Takes (source, destination) contexts instead of one."""


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    message: str
    section: str
    records: tuple[RecordRef, ...]

    @property
    def ts_ns(self) -> int | None:
        return self.records[0].ts_ns if self.records else None

    @property
    def side(self) -> str | None:
        return self.records[0].side if self.records else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity.value,
            "message": self.message,
            "section": self.section,
            "records": [{"capture": r.side, "row": r.row, "record": r.row + 1, "ts_ns": r.ts_ns} for r in self.records],
        }


RULES: list[Rule] = []
"""The rule table, in registration order (one module per rule family)."""


def rule(
    id: str, severity: Severity, title: str, section: str, ref: str = "", *, cross: bool = False
) -> Callable[[Callable[..., Iterable[Hit]]], Callable[..., Iterable[Hit]]]:
    """Register a rule function in ``RULES``."""

    def register(check: Callable[..., Iterable[Hit]]) -> Callable[..., Iterable[Hit]]:
        if any(r.id == id for r in RULES):
            raise ValueError(f"duplicate rule id {id}")
        RULES.append(Rule(id, severity, title, section, ref, check, cross))
        return check

    return register
