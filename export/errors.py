"""Why an export fails: subclasses of `BundleError` (the request does not give a fit bundle).

The CLI prints these like any `EdgeECGError`; tests catch the specific class.
"""

from __future__ import annotations

from edge_ecg.errors import BundleError


class ExportError(BundleError):
    """The export stage cannot produce a bundle that meets its checks."""


class ParityError(ExportError):
    """An exported graph does not reproduce the torch model within tolerance."""


class MetricDropError(ExportError):
    """Routing or quantization costs more task metric than the tolerance allows."""
