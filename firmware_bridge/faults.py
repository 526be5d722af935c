"""Fault specifications for the virtual monitor: what to break on the link, and how often.

`FaultSpec.parse("drop=0.01,bitflip=0.005,truncate=0.002,garbage=0.002,clockjump=0.001,"
"stall=2@30s,disconnect=5@60s,reboot=1@90s,wrap,seed=1")`. Rates are probabilities per frame; timed faults
are `DURATION@START` in signal seconds (an `s` suffix is allowed). See PROTOCOL.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_ecg.errors import SourceError

RATE_KEYS = ("drop", "bitflip", "truncate", "garbage", "clockjump")
TIMED_KEYS = ("stall", "disconnect", "reboot")


@dataclass(frozen=True)
class TimedFault:
    start_s: float       # signal time at which it begins
    duration_s: float


@dataclass(frozen=True)
class FaultSpec:
    drop: float = 0.0
    bitflip: float = 0.0
    truncate: float = 0.0
    garbage: float = 0.0
    clockjump: float = 0.0
    stall: tuple[TimedFault, ...] = ()
    disconnect: tuple[TimedFault, ...] = ()
    reboot: tuple[TimedFault, ...] = ()
    wrap: bool = False
    seed: int = 0
    garbage_max_bytes: int = 64

    @property
    def any(self) -> bool:
        return bool(any(getattr(self, k) for k in RATE_KEYS) or self.stall or self.disconnect
                    or self.reboot or self.wrap)

    @classmethod
    def parse(cls, spec: str | None, seed: int | None = None) -> "FaultSpec":
        """Parse `key=value,...`; SourceError naming the bad item and the accepted forms."""
        kw: dict = {k: [] for k in TIMED_KEYS}
        for item in filter(None, (s.strip() for s in (spec or "").split(","))):
            key, sep, value = item.partition("=")
            key = key.strip().lower()
            try:
                if key in RATE_KEYS:
                    p = float(value)
                    if not 0.0 <= p <= 1.0:
                        raise ValueError
                    kw[key] = p
                elif key in TIMED_KEYS:
                    dur, at, start = value.partition("@")
                    if not at:
                        raise ValueError
                    t = TimedFault(start_s=float(start.rstrip("s")),
                                   duration_s=float(dur.rstrip("s")))
                    if t.start_s < 0 or t.duration_s <= 0:
                        raise ValueError
                    kw[key].append(t)
                elif key == "wrap" and not sep:
                    kw["wrap"] = True
                elif key == "seed":
                    kw["seed"] = int(value)
                elif key == "garbage_max_bytes":
                    kw["garbage_max_bytes"] = max(1, int(value))
                else:
                    raise KeyError
            except KeyError:
                raise SourceError(
                    f"fault spec item {item!r}: unknown fault {key!r}; known: "
                    + ", ".join(RATE_KEYS + TIMED_KEYS) + ", wrap, seed") from None
            except ValueError:
                raise SourceError(
                    f"fault spec item {item!r}: use {key}=P with 0<=P<=1 for rates, "
                    f"{key}=D@Ts for stall/disconnect/reboot, bare 'wrap', seed=N") from None
        if seed is not None:
            kw["seed"] = seed
        for k in TIMED_KEYS:
            kw[k] = tuple(sorted(kw[k], key=lambda t: t.start_s))
        return cls(**kw)


__all__ = ["RATE_KEYS", "TIMED_KEYS", "FaultSpec", "TimedFault"]
