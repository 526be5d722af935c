"""`open_source(spec)`: a `Source` for every spec kind (serial, ble, record, synth, edf,
brainflow, lsl).

Devices are firmware_bridge's (`SerialSource`, `BleSource`, `BrainFlowSource`, `LslSource`,
imported only when their kind is asked for); an EDF+/BDF file replays through
`edge_ecg.runtime.edf_source`; a WFDB record and the synthetic monitor through
`edge_ecg.runtime.replay`. The interface itself is `edge_ecg.signal.source`.
"""

from __future__ import annotations

from typing import Any

from edge_ecg.errors import SignalError, SourceError
from edge_ecg.signal.source import Source, SourceSpec

# Each kind's module is imported only when that kind is opened (the record replay, the lead
# names, the device drivers): a serial monitor never loads the WFDB replay, nor a replay the
# drivers.


def _leads_option(s: SourceSpec) -> tuple[str, ...] | None:
    """The `?leads=II,V1` of a device spec: the standard lead of each channel, in order."""
    from edge_ecg.signal.leads import parse_lead_assignment

    try:
        return parse_lead_assignment(s.options.get("leads"), f"{s.kind}:{s.target}")
    except SignalError as exc:
        raise SourceError(str(exc)) from None


def open_source(spec: str | SourceSpec) -> Source:
    """The `Source` a spec names (not opened yet: use it as a context manager)."""
    s = spec if isinstance(spec, SourceSpec) else SourceSpec.parse(spec)
    if s.kind == "serial":
        from firmware_bridge.serial_source import SerialSource

        kwargs: dict[str, Any] = {}
        if "baud" in s.options:
            try:
                kwargs["baud"] = int(s.options["baud"])
            except ValueError:
                raise SourceError(f"serial:{s.target}: baud must be an integer") from None
        return SerialSource(s.target, leads=_leads_option(s), **kwargs)
    if s.kind == "ble":
        from firmware_bridge.ble_source import BleSource

        leads = _leads_option(s)
        if leads is None:
            return BleSource(s.target)
        if len(leads) != 1:
            raise SourceError(f"ble:{s.target}: the Polar H10 streams one lead; give one "
                              f"lead name (?leads=I), got {list(leads)}")
        return BleSource(s.target, lead=leads[0])
    if s.kind == "record":
        from edge_ecg.runtime.replay import record_source

        return record_source(s.target, s.options)
    if s.kind == "synth":
        from edge_ecg.runtime.replay import synth_source

        return synth_source(s.target, s.options)
    if s.kind == "edf":
        from edge_ecg.runtime.edf_source import EdfSource

        return EdfSource(s.target, s.options)
    if s.kind == "brainflow":
        from firmware_bridge.brainflow_source import BrainFlowSource

        return BrainFlowSource(s.target, s.options)
    if s.kind == "lsl":
        from firmware_bridge.lsl_source import LslSource

        return LslSource(s.target, s.options)
    raise SourceError(f"source kind {s.kind!r} not supported")  # SourceSpec.parse prevents this


__all__ = ["open_source"]
