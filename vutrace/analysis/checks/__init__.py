"""The conformance checker: run the rule table over one capture, or a migration's two captures.

Rule families live in one module each (framing, fds, replies, gating, rings, migration, cross); importing
them fills ``RULES``. docs/checks.md explains every rule and why it is there.
"""

from __future__ import annotations

from vutrace.analysis.checks import cross, fds, framing, gating, migration, replies, rings
from vutrace.analysis.checks.context import CheckContext
from vutrace.analysis.checks.model import RULES, SEVERITY_ORDER, Finding, Hit, RecordRef, Rule, Severity
from vutrace.analysis.frame import Capture
from vutrace.analysis.timeline import side_timeline

__all__ = ["Finding", "Rule", "Severity", "check", "has_errors", "rules"]
FAMILIES = (framing, fds, replies, gating, rings, migration, cross)
"""Rule families in the order the table lists them."""


def rules() -> list[Rule]:
    """The rule table, family by family."""
    order = {family.__name__: i for i, family in enumerate(FAMILIES)}
    return sorted(RULES, key=lambda r: order.get(r.check.__module__, len(order)))


def _finding(rule: Rule, hit: Hit, contexts: dict[str, CheckContext], default: str) -> Finding:
    side = hit.side or default
    refs = [(side, row) for row in hit.rows] + list(hit.more)
    records = tuple(RecordRef(s, r, int(contexts[s].by_row[r]["ts_ns"])) for s, r in refs if r in contexts[s].by_row)
    return Finding(rule.id, rule.severity, hit.message, rule.section, records)


def check(first: Capture, second: Capture | None = None) -> list[Finding]:
    """Every finding of every rule, errors first, then by time."""
    captures = [c for c in (first, second) if c is not None]
    contexts = {c.label: CheckContext(c) for c in captures}
    findings: list[Finding] = []
    for rule in rules():
        if rule.cross:
            continue
        for label, ctx in contexts.items():
            findings.extend(_finding(rule, hit, contexts, label) for hit in rule.check(ctx))
    if second is not None:
        roles = {side_timeline(c).role: c.label for c in captures}
        if "source" in roles and "destination" in roles:
            source, destination = contexts[roles["source"]], contexts[roles["destination"]]
            for rule in rules():
                if rule.cross:
                    findings.extend(
                        _finding(rule, hit, contexts, source.label) for hit in rule.check(source, destination)
                    )
    order = {c.label: i for i, c in enumerate(captures)}
    findings.sort(key=lambda f: (SEVERITY_ORDER[f.severity], order.get(f.side or "", 0), f.ts_ns or 0))
    return findings


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity is Severity.ERROR for f in findings)
