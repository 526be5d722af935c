"""The source interface every signal source implements, and the spec that selects one.

It sits beside `Chunk` (what a source yields) so that the device packages (firmware_bridge's
serial, BLE, BrainFlow and LSL sources) and the runtime (replays, `open_source`) both build on
it without importing each other.

As BrainFlow's boards, minus the silent overwrite: `open()`, `read() -> Chunk | None`,
`close()`, usable as a context manager. Loss is reported through `Chunk.index` jumps (the ring
buffer marks the gap) and `stats()`, never hidden.

Specs: `serial:/dev/ttyUSB0?baud=921600`, `ble:AA:BB:CC:DD:EE:FF`, `record:PATH?speed=max`,
`synth:CONDITION?seconds=60&seed=1`, `edf:PATH?speed=max`, `brainflow:SYNTHETIC_BOARD`,
`lsl:NAME_OR_TYPE`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from urllib.parse import parse_qsl

from edge_ecg.errors import SourceError
from edge_ecg.signal.chunk import Chunk


class Source(abc.ABC):
    """A stream of `Chunk`s from one device."""

    @abc.abstractmethod
    def open(self) -> None:
        """Connect and start streaming. Raises `SourceError` with what to check."""

    @abc.abstractmethod
    def read(self, timeout_s: float = 0.1) -> Chunk | None:
        """The next chunk, or None when none arrived within `timeout_s`.

        Raises `EOFError` when a finite source (a replay) is exhausted.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Stop streaming and release the device; safe to call twice."""

    def stats(self) -> dict[str, int]:
        """Loss and error counters (e.g. crc_errors, lost_frames, reconnects)."""
        return {}

    def __enter__(self) -> "Source":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class SourceSpec:
    kind: str                 # serial | ble | record | synth | edf | brainflow | lsl
    target: str               # port, address, path or condition
    options: dict[str, str]

    @classmethod
    def parse(cls, spec: str) -> "SourceSpec":
        kind, sep, rest = spec.partition(":")
        if not sep or not rest or kind not in SOURCE_KINDS:
            raise SourceError(
                f"source spec {spec!r} not understood: use one of "
                + ", ".join(f"{k}:{v}" for k, v in SOURCE_KINDS.items())
            )
        # BLE addresses hold colons; only the part after '?' holds options.
        target, _, query = rest.partition("?")
        return cls(kind=kind, target=target, options=dict(parse_qsl(query)))


SOURCE_KINDS = {
    "serial": "PORT?baud=921600&leads=II,..",
    "ble": "ADDRESS?leads=I",
    "record": "PATH?speed=realtime|max&leads=II,V1",
    "synth": "CONDITION?seconds=N&seed=N",
    "edf": "PATH?speed=realtime|max&channels=LABEL,..&leads=II,..",
    "brainflow": "BOARD?serial_port=..&channels=ROW,..&leads=II,..",
    "lsl": "NAME_OR_TYPE?timeout=S&leads=II,..",
}


__all__ = ["SOURCE_KINDS", "Source", "SourceSpec"]
