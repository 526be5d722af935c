"""The ward's logs: module loggers (`edge_ecg.ward.*`) to stderr, as text or JSON lines.

JSON lines (`--log-json`) are one object a line with `t` (UTC ISO 8601), `level`, `logger`,
`msg` and, for an exception, `exc`: what a service manager or a log shipper reads.
"""

from __future__ import annotations

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


def setup(json_lines: bool = False, level: str | int = "INFO", stream=None) -> logging.Handler:
    """Send the ward's loggers to `stream` (stderr), replacing a handler set up before."""
    h = logging.StreamHandler(stream or sys.stderr)
    h.setFormatter(JsonFormatter() if json_lines else
                   logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    h.ward = True
    lg = logging.getLogger("edge_ecg.ward")
    for old in [x for x in lg.handlers if getattr(x, "ward", False)]:
        lg.removeHandler(old)
    lg.addHandler(h)
    lg.setLevel(level if isinstance(level, int) else level.upper())
    lg.propagate = False
    return h
