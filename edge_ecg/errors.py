"""The exception hierarchy: one class per kind of user-facing failure.

Messages name the file, field or byte offset at fault and say what to do; the CLI prints them
and exits non-zero without a traceback.
"""


class EdgeECGError(Exception):
    """Base class for every error edge-ecg raises on purpose."""


class SignalError(EdgeECGError):
    """A signal is unusable as given (NaN, wrong shape, wrong rate, too short)."""


class RecordError(EdgeECGError):
    """A WFDB record or label table is missing, unreadable or malformed."""


class CheckpointError(EdgeECGError):
    """A model checkpoint is missing, malformed, or holds something other than tensors."""


class BundleError(EdgeECGError):
    """An exported bundle is incomplete, tampered with, or does not fit the request."""


class ProfileError(EdgeECGError):
    """A device profile is malformed (the message names the key)."""


class FrameError(EdgeECGError):
    """A wire-protocol frame is malformed."""


class SourceError(EdgeECGError):
    """A signal source (serial, BLE, replay) cannot be opened or has failed."""
