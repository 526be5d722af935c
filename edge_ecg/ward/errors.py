"""The ward's errors, in the project's hierarchy (`edge_ecg.errors`)."""

from edge_ecg.errors import EdgeECGError


class WardError(EdgeECGError):
    """The ward cannot go on as asked: broker unreachable, bundle mismatch, bad bed id."""


class StateError(WardError):
    """A bed's state snapshot cannot be written or read (unknown class, bad bytes, other
    bundle); the worker then replays the bed from its stream start instead."""
