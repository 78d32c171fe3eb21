"""Errors the simulated peers raise: each names the message, the field, what was expected and what came."""

from __future__ import annotations


class SimError(Exception):
    """Base of every failure of a simulated peer; the text is one line meant for people."""


class ProtocolViolation(SimError):
    """The peer sent something the spec does not allow (wrong flags, size, FD count, gate...)."""


class PeerClosed(SimError):
    """The peer closed the connection (EOF, EPIPE, ECONNRESET)."""


class PeerTimeout(SimError):
    """A bounded wait ran out: no reply, no notification, no state data in time."""


class Refused(SimError):
    """The peer answered with a failure code (a non-zero u64 result)."""


class TransferFailed(SimError):
    """The device-state transfer did not complete or did not verify."""


class GuestError(SimError):
    """The virtqueues disagree with what the driver expects (bad response, lost request)."""
