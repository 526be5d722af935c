"""The central station's page: files in `edge_ecg/ward/static`, shipped as package data,
no external asset (a ward network is isolated; a clinic's tablet may have no internet).

    station.html, station.js, station.css   tiles drawn from one `full` state, then kept
                                            live by per-bed `diff` server-sent events
    login.html, login.js                    the login form (posts JSON)

Each tile: the ECG strip with its beats, HR (or NO DATA / NO ANALYSIS when the bed went
quiet), how old its data is, the model's rhythm call, ectopic counts (when the runtime
classes beats), signal quality or why analysis is withheld, and the alarms, highest priority
first, with Ack and Silence for clinicians. Laid out for a 1280x800 touch screen.
"""

from __future__ import annotations

from importlib import resources

TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
         ".svg": "image/svg+xml", ".png": "image/png"}
_CACHE: dict[str, tuple[bytes, str]] = {}


def _load() -> dict[str, tuple[bytes, str]]:
    if not _CACHE:
        root = resources.files("edge_ecg.ward") / "static"
        for f in root.iterdir():
            ext = "." + f.name.rsplit(".", 1)[-1]
            if f.is_file() and ext in TYPES:
                _CACHE[f.name] = (f.read_bytes(), TYPES[ext])
    return _CACHE


def asset(name: str) -> tuple[bytes, str] | None:
    """(bytes, content type) of a static file by its bare name; None for anything else
    (the names are a fixed set read at start: no path reaches the file system)."""
    return _load().get(name)
