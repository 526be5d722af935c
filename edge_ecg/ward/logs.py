"""The ward's logs: module loggers (`edge_ecg.ward.*`) to stderr, as text or JSON lines.

JSON lines (`--log-json`) are one object a line with `t` (UTC ISO 8601), `level`, `logger`,
`msg` and, for an exception, `exc`: what a service manager or a log shipper reads.
The CLI sends every library logger (`LIBRARY_LOGGERS`) the same way for the length of a
command (`configured`); library code only logs, it never configures handlers.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import sys


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        d = {"t": _dt.datetime.fromtimestamp(record.created, _dt.timezone.utc)
             .isoformat(timespec="milliseconds"),
             "level": record.levelname.lower(), "logger": record.name,
             "msg": record.getMessage()}
        if record.exc_info:
            d["exc"] = self.formatException(record.exc_info)
        return json.dumps(d, ensure_ascii=False)


# the top-level packages whose module loggers the CLI configures
LIBRARY_LOGGERS = ("edge_ecg", "firmware_bridge", "profiles", "export")


def setup(json_lines: bool = False, level: str | int = "INFO", stream=None,
          names: tuple[str, ...] = ("edge_ecg.ward",)) -> logging.Handler:
    """Send the loggers `names` (the ward's) to `stream` (stderr), replacing a handler set up
    before."""
    h = logging.StreamHandler(stream or sys.stderr)
    h.setFormatter(JsonFormatter() if json_lines else
                   logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    h.ward = True  # type: ignore[attr-defined]  # marks the handlers this module set up
    for name in names:
        lg = logging.getLogger(name)
        for old in [x for x in lg.handlers if getattr(x, "ward", False)]:
            lg.removeHandler(old)
        lg.addHandler(h)
        lg.setLevel(level if isinstance(level, int) else level.upper())
        lg.propagate = False
    return h


@contextlib.contextmanager
def configured(json_lines: bool = False, level: str | int = "INFO", stream=None,
               names: tuple[str, ...] = LIBRARY_LOGGERS):
    """`setup` for the length of a `with` block (a CLI command); the loggers' handlers, level
    and propagation are put back after it, so a command run inside a test leaks nothing."""
    loggers = [logging.getLogger(n) for n in names]
    saved = [(lg.propagate, lg.level, list(lg.handlers)) for lg in loggers]
    h = setup(json_lines, level, stream, names)
    try:
        yield h
    finally:
        for lg, (propagate, lvl, handlers) in zip(loggers, saved):
            lg.propagate = propagate
            lg.setLevel(lvl)
            lg.handlers[:] = handlers
