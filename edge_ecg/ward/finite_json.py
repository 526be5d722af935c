"""JSON for the station's pages and APIs with no non-finite number in it.

JSON has no Infinity or NaN: one frame with gain 1e-30 once put `Infinity` in /api/ward,
which `JSON.parse` rejects, and the page stopped updating for every bed. Every value the
station sends goes through `dumps`: non-finite floats become null, and `allow_nan=False`
makes any that slipped past an error here rather than in the browser.
"""

from __future__ import annotations

import json
import math

import numpy as np


def finite(obj):
    """`obj` with every non-finite float (numpy scalars included) replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if isinstance(obj, np.generic):
        return finite(obj.item())
    return obj


def dumps(obj) -> str:
    return json.dumps(finite(obj), separators=(",", ":"), allow_nan=False)
