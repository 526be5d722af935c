"""A whole WFDB record through the on-device runtime, for scoring its beat classes.

`edge-ecg evaluate` scores a bundle's beat classes the way a monitor would produce them: the
record's ADC counts replayed as chunks into a `StreamProcessor` (the runtime's own detector,
quality checks, windows and per-beat classes; edge_ecg.runtime.beat_classes), at full speed.
A beat the runtime found but left unclassified keeps class -1; a reference beat it missed is
scored as missed by the caller.
"""

from __future__ import annotations

import numpy as np

from edge_ecg.runtime.alarms import StreamAlarms
from edge_ecg.runtime.replay import ReplaySource, replay_events
from edge_ecg.runtime.stream_processor import StreamProcessor

CHUNK_S = 0.5


def stream_beat_classes(backend, path: str, seconds: float | None = None,
                        chunk_s: float = CHUNK_S, alarms_out: list | None = None,
                        leads: list[str] | None = None, alarm_limits=None,
                        ) -> tuple[np.ndarray, list[str | None], dict]:
    """`(samples, classes, summary)` of the beats the runtime emits for the record at `path`
    (source-clock sample indices from the record's start, the class label or None per beat,
    the run's summary dict); the first `seconds` only when given. `alarms_out` receives the
    run's alarm events as JSON dicts (edge_ecg.runtime.alarms). `leads`: the lead name of each
    channel (a database's assignment, e.g. SVDB's ECG1 as II; "-" leaves a channel unused);
    invalid samples (CUDB's) are replayed as gaps, as a live source's lost frames.
    `alarm_limits`: the alarm engine's `AlarmLimits` (None: its defaults)."""
    from edge_ecg.data.records import read_record

    rec = read_record(path, invalid="keep")
    n = rec.adc.shape[0] if seconds is None else min(rec.adc.shape[0],
                                                     int(round(seconds * rec.fs_hz)))
    names = tuple(leads) if leads is not None else rec.leads
    keep = [j for j, name in enumerate(names) if name != "-"]     # "-": a channel left unused
    inv = None if rec.invalid is None else rec.invalid[:n]
    src = ReplaySource(rec.adc[:n, keep], np.asarray(rec.gain)[keep],
                       np.asarray(rec.baseline)[keep], rec.fs_hz, tuple(names[j] for j in keep),
                       speed=None, chunk_s=chunk_s, name=f"record:{path}", invalid=inv)
    proc = StreamProcessor(backend)
    if alarm_limits is not None:
        proc.alarms = StreamAlarms(alarm_limits)
    events = [e for part in replay_events(src, proc) for e in part]
    beats = [e for e in events if type(e).__name__ == "BeatEvent"]
    if alarms_out is not None:
        alarms_out.extend(e.to_json() for e in events if type(e).__name__ == "AlarmEvent")
    samples = np.array([e.index for e in beats], dtype=np.int64)
    return samples, [e.beat_class for e in beats], proc.close_summary().to_dict()


def offline_beat_classes(signal: np.ndarray, fs_hz: float, leads, backend,
                         hop_s: float | None = None) -> tuple[np.ndarray, list[str | None]]:
    """The same beat classes computed on a whole signal at once (`(T, L)` mV): the training
    chain's windows (`make_windows`: resample, filter, detect on the whole record) every hop,
    each beat classified by the window `BeatClasses` picks, as the stream does. For a clean
    signal it equals the stream's classes in any chunking (tests/runtime/test_beat_classes.py).
    Returns `(samples, classes)`: source-clock sample indices of the detected beats."""
    from edge_ecg.data.windows import condition_signal, window_starts
    from edge_ecg.runtime.beat_classes import BeatClasses
    from edge_ecg.signal.contract import InputBatch, SignalContract
    from edge_ecg.signal.patient_context import context_rows
    from edge_ecg.signal.qrs import detect_beats

    c = SignalContract.from_dict(backend.manifest.signal)
    task = next((t for t in backend.manifest.tasks if t["kind"] == "beat"), None)
    if task is None:
        raise ValueError("the bundle has no per-beat task")
    leads = tuple(leads)
    y = condition_signal(np.asarray(signal), fs_hz, c)
    r = detect_beats(y, c.fs_hz)
    starts = window_starts(y.shape[0], c, hop_s)
    # the patient's context, beat by beat over the record, as the stream and training build it
    ctx = (context_rows(y, r, c.fs_hz, c.beat_pre, c.beat_len - c.beat_pre)
           if "beat_ctx" in backend.manifest.inputs else None)
    bc = BeatClasses(task.get("labels", []), c.beat_pre, c.beat_len - c.beat_pre, c.fs_hz,
                     c.max_beats, c.window_len)
    w = c.window_len
    batch = InputBatch(c, capacity=16)
    lo, hi = np.searchsorted(r, starts), np.searchsorted(r, starts + w)  # each window's beats
    for i in range(0, len(starts), 16):
        part = range(i, min(i + 16, len(starts)))
        batch.clear()
        for k in part:
            batch.add(y[starts[k]:starts[k] + w], leads, r[lo[k]:hi[k]] - starts[k],
                      ctx_rows=None if ctx is None else ctx[lo[k]:hi[k]])
        probs = np.asarray(backend.run(batch.arrays())[task["output"]])
        for j, k in enumerate(part):
            s, beats = int(starts[k]), r[lo[k]:hi[k]]
            bc.assign(bc.claim(beats, s, s + w), beats, s, s + w, probs[j])
    samples = np.round(r * (fs_hz / c.fs_hz)).astype(np.int64)
    classes = []
    for b in r.tolist():
        got = bc.take(b)
        classes.append(None if got is None else got.get("label"))
    return samples, classes


__all__ = ["offline_beat_classes", "stream_beat_classes"]
