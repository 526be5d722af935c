"""A user's TOML file (a device profile, a unit's alarm limits) read as data, never code: every
way it can fail is one specific error naming the file, raised as the caller's own class."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:                            # Python 3.10: the same parser as the `tomli` package
    import tomli as tomllib


def read_toml(path: str | Path, error: type[Exception], what: str,
              max_bytes: int | None = None) -> dict:
    """The parsed document of `path`; `error(message)` if it is missing, larger than
    `max_bytes`, not UTF-8, not TOML or nested past the parser's depth. `what` names the
    kind of file in the messages ("a profile", "alarm limits")."""
    p = Path(path)
    try:
        if max_bytes is not None and p.stat().st_size > max_bytes:
            raise error(f"{p}: {p.stat().st_size} bytes; {what} is at most {max_bytes}")
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{p}: cannot read {what} ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise error(f"{p}: not UTF-8 text ({exc}); {what} must be a TOML file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{p}: not valid TOML ({exc})") from exc
    except RecursionError as exc:
        raise error(f"{p}: nested too deeply to be {what}") from exc


__all__ = ["read_toml"]
