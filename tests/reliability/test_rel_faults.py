"""Fault injection through the whole runtime: virtual monitor -> real pseudo-terminal ->
SerialSource -> Pipeline (reader thread, ring buffer, beat tracker, quality, ONNX backend).

For every fault: the counters equal what was injected, received + lost == sent, every lost
sample is reported in exactly one gap event, every window on the hop grid is either predicted
or withheld, and no prediction's window [start, index) holds a sample that was lost, corrupt,
NaN, infinite, clipped or from an electrode that was off. The oracle for "lost" is what the
processor was actually fed (recorded), never the runtime's own report.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from reliability_harness import (
    LEADS8,
    FiniteSerial,
    Recorder,
    bad_mask,
    ecg_mv,
    record_feeds,
    window_overlaps,
)

from edge_ecg.errors import SourceError
from edge_ecg.runtime.pipeline import Pipeline
from edge_ecg.runtime.quality import STRICT
from edge_ecg.runtime.replay import ReplaySource
from edge_ecg.runtime.stream_processor import StreamProcessor
from edge_ecg.signal.chunk import Chunk
from edge_ecg.signal.contract import SignalContract
from firmware_bridge.emulator import VirtualMonitor
from firmware_bridge.scripted_device import ScriptedDevice
from firmware_bridge.serial_source import SerialSource

FS = 500.0
SECONDS = 24.0
N = int(SECONDS * FS)
SPF = 10            # budget.samples_per_frame(500): 20-ms frames
GAIN = 1000.0       # the monitor's int24 default: 1 uV per count
SPEED = 12.0


@pytest.fixture(scope="module")
def ecg():
    return ecg_mv(SECONDS, seed=21)


def _contract(backend) -> SignalContract:
    return SignalContract.from_dict(backend.manifest.signal)


class Run:
    def __init__(self, vm, src, summary, rec, fed):
        self.inj = dict(vm.injected)
        self.clipped = vm.clipped_samples
        self.stats = src.stats()
        self.chunks = list(src.chunks)
        self.summary = summary
        self.rec = rec
        self.fed = fed


def run_monitor(backend, x, faults, speed=SPEED, **vm_kw) -> Run:
    vm = VirtualMonitor(x, FS, LEADS8, speed=speed, faults=faults, seconds=x.shape[0] / FS,
                        **vm_kw)
    with vm:
        src = FiniteSerial(SerialSource(vm.path, baud=921600), vm)
        rec = Recorder()
        pipe = Pipeline(src, backend, [rec], quality=STRICT)
        fed = record_feeds(pipe)
        summary = pipe.run(handle_signals=False)
    assert rec.closed
    return Run(vm, src, summary, rec, fed)


def _src_len(backend, seconds: float) -> int:
    """A span of the model's contract in SOURCE samples (the runtime's clock): the model may
    run at another rate than the monitor (the bundled model: 250 Hz; this monitor: 500 Hz)."""
    return int(round(seconds * FS))


def grid_starts(backend, n_total):
    c = _contract(backend)
    return list(range(0, n_total - _src_len(backend, c.window_s) + 1,
                      _src_len(backend, c.hop_s)))


def check_accounting(run: Run, n_total: int = N) -> np.ndarray:
    """Counters == injected; received + lost == sent; gaps == lost spans. Returns bad mask."""
    inj, st, s = run.inj, run.stats, run.summary
    assert st["frames"] == inj["frames_sent"]
    assert st["crc_errors"] == inj["bitflip"] + inj["truncate"]
    assert st["lost_frames"] == (inj["drop"] + inj["bitflip"] + inj["truncate"]
                                 + inj["disconnect_frames"])
    assert st["clock_jumps"] == inj["clockjump"]
    assert st["reconnects"] == inj["disconnect"]
    assert st["discarded_bytes"] == inj["garbage_bytes"] + inj["corrupt_bytes"]
    assert st["duplicate_frames"] == 0 and st["seq_resets"] == 0
    received = sum(c.n_samples for c in run.chunks)
    assert received + SPF * st["lost_frames"] == n_total            # received + lost == sent
    fed = sum(len(smp) for _, smp in run.fed)
    assert fed == received - s.dropped_samples
    # The runtime's own report: every missing sample in exactly one gap, nothing else.
    gaps = run.rec.of("gap")
    assert s.gaps == len(gaps)
    assert s.gap_samples == sum(g.length for g in gaps) == n_total - fed
    bad = bad_mask(n_total, run.fed)
    spans = _runs(bad)
    assert [(g.index, g.length) for g in gaps] == spans
    assert s.samples == fed and s.crc_errors == st["crc_errors"]
    return bad


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return [(int(a), int(b - a)) for a, b in zip(starts, ends)]


def check_windows(run: Run, backend, bad: np.ndarray, n_total: int = N,
                  reason: str = "gap") -> tuple[dict, dict]:
    """Every grid window predicted or withheld; none predicted over a bad sample; the
    `reason` is given exactly for the windows that hold a bad sample."""
    pred = {e.start: e for e in run.rec.of("prediction")}
    held = {e.start: e for e in run.rec.of("withheld")}
    assert not set(pred) & set(held)
    assert sorted(set(pred) | set(held)) == grid_starts(backend, n_total)
    for e in pred.values():
        assert not window_overlaps(bad, e.start, e.index), (e.start, e.index)
    with_reason = {s for s, e in held.items() if reason in e.reasons}
    overlapping = {s for s in grid_starts(backend, n_total)
                   if window_overlaps(bad, s, s + _src_len(backend, _contract(backend).window_s))}
    assert with_reason == overlapping
    return pred, held


@pytest.fixture(scope="module")
def clean_reference(ecg, rel_backend) -> dict:
    return reference_predictions(rel_backend, ecg)


def reference_predictions(backend, x: np.ndarray) -> dict:
    """The clean stream: the monitor's counts fed straight to a StreamProcessor."""
    counts = np.rint(x * GAIN).astype(np.int32)
    proc = StreamProcessor(backend, quality=STRICT)
    events = []
    for pos in range(0, counts.shape[0], SPF):
        events += proc.feed(Chunk(index=pos, seq=pos // SPF, device_time_us=0,
                                  samples=counts[pos:pos + SPF], gain=np.full(8, GAIN),
                                  baseline=np.zeros(8, np.int64), leads=LEADS8, fs_hz=FS))
    events += proc.finish()
    return {e.start: e for e in events if e.to_json()["type"] == "prediction"}


def assert_same_predictions(got: dict, ref: dict) -> None:
    assert sorted(got) == sorted(ref) and got
    for s, e in got.items():
        r = ref[s]
        assert (e.index, e.n_beats) == (r.index, r.n_beats)
        a, b = e.to_json()["outputs"], r.to_json()["outputs"]
        assert a.keys() == b.keys()
        for task in a:
            for k in a[task]:
                va, vb = a[task][k], b[task][k]
                if isinstance(va, float):
                    assert va == pytest.approx(vb, rel=1e-5, abs=1e-6), (s, task, k)
                else:
                    assert va == vb, (s, task, k)


LOSSY = {
    "drop": "drop=0.003,seed=11",
    "bitflip": "bitflip=0.003,seed=12",
    "truncate": "truncate=0.003,seed=13",
    "disconnect": "disconnect=2@12s,seed=16",
}


@pytest.mark.parametrize("fault", sorted(LOSSY))
def test_lossy_link_fault_is_counted_gapped_and_withheld(fault, ecg, rel_backend):
    run = run_monitor(rel_backend, ecg, LOSSY[fault])
    assert run.inj[fault] > 0                                   # the fault really happened
    bad = check_accounting(run)
    assert bad.sum() == SPF * run.stats["lost_frames"] + run.summary.dropped_samples > 0
    check_windows(run, rel_backend, bad)


LOSSLESS = {
    "garbage": "garbage=0.03,seed=14",
    "stall": "stall=3@8s,seed=15",
    "clockjump": "clockjump=0.01,seed=17",
    "wrap": "wrap,seed=18",
}


@pytest.mark.parametrize("fault", sorted(LOSSLESS))
def test_lossless_link_fault_changes_no_prediction(fault, ecg, rel_backend, clean_reference):
    """Garbage bursts, stalls, device clock jumps and seq wraparound lose no sample: the
    predictions equal those of the clean stream, window for window."""
    run = run_monitor(rel_backend, ecg, LOSSLESS[fault])
    assert run.inj[fault] > 0
    bad = check_accounting(run)
    assert run.summary.dropped_chunks == 0, "consumer fell behind; rerun on a quieter machine"
    assert not bad.any() and not run.rec.of("gap")
    pred, held = check_windows(run, rel_backend, bad)
    assert not held
    assert_same_predictions(pred, clean_reference)
    if fault == "wrap":
        seqs = [c.seq for c in run.chunks]
        assert seqs[0] == 65536 - 100 and seqs[-1] > 65536          # unwrapped past 65535
        assert run.chunks[0].index == 0 and run.chunks[-1].end == N


def test_all_link_faults_at_once(ecg, rel_backend):
    faults = ("drop=0.003,bitflip=0.003,truncate=0.003,garbage=0.02,clockjump=0.005,"
              "stall=2@5s,disconnect=2@15s,wrap,seed=7")
    run = run_monitor(rel_backend, ecg, faults)
    for k in ("drop", "bitflip", "truncate", "garbage", "clockjump", "stall", "disconnect"):
        assert run.inj[k] > 0, k
    bad = check_accounting(run)
    check_windows(run, rel_backend, bad)
    stop = run.rec.of("status")[-1]
    assert stop.state == "stop" and stop.info["gap_samples"] == int(bad.sum())


def test_lead_off_flat_line_is_withheld(ecg, rel_backend):
    """Electrode V3 off from 10 s to 13 s (flat line): every window holding it is withheld
    with lead_off, none is predicted over it."""
    x = ecg.copy()
    v3 = LEADS8.index("V3")
    x[5000:6500, v3] = 0.0
    run = run_monitor(rel_backend, x, None)
    lost = check_accounting(run)
    assert not lost.any()
    flat = np.zeros(N, bool)
    flat[5000:6500] = True
    check_windows(run, rel_backend, flat, reason="lead_off")


def test_unaligned_lead_off_is_withheld(ecg, rel_backend):
    x = ecg.copy()
    x[5250:5950, LEADS8.index("V3")] = 0.0
    run = run_monitor(rel_backend, x, None)
    check_accounting(run)
    flat = np.zeros(N, bool)
    flat[5250:5950] = True
    check_windows(run, rel_backend, flat, reason="lead_off")


def test_clipped_samples_at_the_adc_rail_are_withheld(ecg, rel_backend):
    """int16 at 8000 counts/mV: the rails are +/-4.1 mV. Lead II is driven into its rail for
    1.5 s (a 6-mV baseline jump): every window holding a clipped sample is withheld."""
    x = ecg.copy()
    ii = LEADS8.index("II")
    x[7000:7750, ii] += 6.0
    run = run_monitor(rel_backend, x, None, fmt="int16", gain=8000.0)
    check_accounting(run)
    counts = np.rint(x * 8000.0)
    clipped = ((counts >= 32767) | (counts <= -32768)).any(axis=1)
    assert clipped.sum() == run.clipped > 0
    check_windows(run, rel_backend, clipped, reason="saturation")


def test_briefly_clipped_r_peaks_are_withheld(ecg, rel_backend):
    """int16 at 30000 counts/mV: rails +/-1.09 mV, so lead II's R peaks (~1.3 mV here) clip
    for a few ms each. A clipped sample is corrupt: no prediction may hold one."""
    x = ecg.copy()
    ii = LEADS8.index("II")
    x[:, ii] *= 1.3 / np.max(np.abs(x[:, ii]))
    run = run_monitor(rel_backend, x, None, fmt="int16", gain=30000.0)
    check_accounting(run)
    counts = np.rint(x * 30000.0)
    clipped = ((counts >= 32767) | (counts <= -32768)).any(axis=1)
    assert clipped.sum() == run.clipped > 0
    check_windows(run, rel_backend, clipped, reason="saturation")


# --- non-finite samples (a replay source: a device's integer counts cannot be NaN) --------
def test_nan_and_inf_samples_are_counted_and_withheld(ecg, rel_backend, tmp_path):
    from edge_ecg.runtime.events import JsonlSink

    adc = np.rint(ecg * GAIN)
    bad_rows = {3210: np.nan, 3211: np.inf, 9000: -np.inf, 11_345: np.nan}
    for i, v in bad_rows.items():
        adc[i, i % 8] = v
    adc[9001:9005, :] = np.nan                               # a whole-row run
    n_bad = len(bad_rows) + 4
    src = ReplaySource(adc, np.full(8, GAIN), np.zeros(8), FS, LEADS8, speed=None,
                       chunk_s=0.3)
    rec = Recorder()
    out = tmp_path / "events.jsonl"
    pipe = Pipeline(src, rel_backend, [rec, JsonlSink(str(out))], quality=STRICT)
    fed = record_feeds(pipe)
    s = pipe.run(handle_signals=False)
    assert s.invalid_samples == n_bad and s.gap_samples == 0 and s.samples == N
    bad = bad_mask(N, fed)
    assert bad.sum() == n_bad
    check_windows(_RunView(rec), rel_backend, bad, reason="nan")

    def no_constants(name):
        raise AssertionError(f"non-finite {name} written to JSON")

    for line in out.read_text().splitlines():       # strict JSON: no NaN/Infinity tokens
        json.loads(line, parse_constant=no_constants)


class _RunView:
    def __init__(self, rec):
        self.rec = rec


# --- DEVICE_INFO faults: a scripted device on a raw pseudo-terminal ------------------------
def _info(fs_hz, leads=("I", "II"), gain=1000.0):
    from firmware_bridge.protocol import DeviceInfo, SampleFormat, encode_device_info

    return encode_device_info(DeviceInfo(fs_hz=fs_hz, leads=leads, gain=(gain,) * len(leads),
                                         baseline=(0,) * len(leads), fmt=SampleFormat.INT24,
                                         samples_per_frame=SPF, firmware=(1, 0, 0)))


def _frames(x_counts, seq0=0, fs=FS, ts0=0):
    from firmware_bridge.protocol import SampleFormat, encode_data

    out = []
    for k in range(x_counts.shape[0] // SPF):
        out.append(encode_data(seq0 + k, ts0 + round(k * SPF * 1e6 / fs),
                               x_counts[k * SPF:(k + 1) * SPF], SampleFormat.INT24))
    return out


def _pipeline_over(device, backend, timeout_s=2.0):
    """Run the whole pipeline on the scripted device until `timeout_s` of quiet."""
    src = SerialSource(device.path, info_timeout_s=1.0, reconnect=False)
    done = type("Done", (), {"finished": threading.Event()})()
    done.finished.set()                          # the script is sent at once: end on quiet
    fs = FiniteSerial(src, done, quiet_s=timeout_s)
    rec = Recorder()
    pipe = Pipeline(fs, backend, [rec], quality=STRICT)
    fed = record_feeds(pipe)
    return pipe, rec, fed


@pytest.mark.parametrize("fs_hz", [20_000.0, 10.0])
def test_device_info_with_impossible_rate_stops_with_source_error(fs_hz, rel_backend):
    counts = np.zeros((200, 2), np.int32)
    dev = ScriptedDevice(pace_s=0.001, script=lambda: [_info(fs_hz)] + _frames(counts))
    try:
        pipe, rec, _ = _pipeline_over(dev, rel_backend)
        with pytest.raises(SourceError, match="fs_hz"):
            pipe.run(handle_signals=False)
        assert not rec.of("prediction")
    finally:
        dev.close()


@pytest.mark.parametrize("gain,match", [(float("nan"), "gain"), (0.0, "gain"),
                                        (-5.0, "gain"), (float("inf"), "gain")])
def test_device_info_with_unusable_gain_stops_with_source_error(gain, match, rel_backend):
    counts = np.zeros((200, 2), np.int32)
    dev = ScriptedDevice(pace_s=0.001, script=lambda: [_info(FS, gain=gain)] + _frames(counts))
    try:
        pipe, rec, _ = _pipeline_over(dev, rel_backend)
        with pytest.raises(SourceError, match=match):
            pipe.run(handle_signals=False)
        assert not rec.of("prediction")
    finally:
        dev.close()


def test_device_info_rate_contradicted_by_device_clock_is_not_trusted(ecg, rel_backend):
    counts = np.rint(ecg[:, :2] * GAIN).astype(np.int32)
    frames = _frames(counts, fs=250.0)                # timestamps: 40 ms per 10-sample frame
    dev = ScriptedDevice(pace_s=0.001, script=lambda: [_info(FS)] + frames)
    try:
        pipe, rec, _ = _pipeline_over(dev, rel_backend, timeout_s=1.0)
        try:
            s = pipe.run(handle_signals=False)
        except SourceError:
            return                                    # stopping with a clear error is fine
        assert s.source["clock_jumps"] >= len(frames) - 2
        assert not rec.of("prediction"), "predicted on a rate the device clock contradicts"
    finally:
        dev.close()


class SlowBackend:
    """The real backend, slowed down: the consumer falls behind a live device."""

    def __init__(self, inner, delay_s: float) -> None:
        self.inner, self.delay_s = inner, delay_s
        self.manifest = inner.manifest

    def run(self, inputs):
        time.sleep(self.delay_s)
        return self.inner.run(inputs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def behind(ecg, rel_backend):
    """A slow model on a live device (20x real time): the bounded queue drops chunks. STRICT
    quality, as the other tests here that check no prediction covers a lost sample: by default
    a window may hold a short filled gap (quality.QualityConfig, max_gap_s), so a chunk dropped
    inside the first window, as happens on a loaded machine, is predicted over by design."""
    x = ecg[:10_000]
    vm = VirtualMonitor(x, FS, LEADS8, speed=20, seconds=x.shape[0] / FS)
    with vm:
        src = FiniteSerial(SerialSource(vm.path), vm)
        rec = Recorder()
        pipe = Pipeline(src, SlowBackend(rel_backend, 0.25), [rec], queue_chunks=8,
                        quality=STRICT)
        fed = record_feeds(pipe)
        s = pipe.run(handle_signals=False)
    return x.shape[0], src, rec, fed, s


def test_consumer_falling_behind_drops_are_counted_and_never_predicted_over(behind,
                                                                            rel_backend):
    n, src, rec, fed, s = behind
    assert s.dropped_chunks > 0 and s.dropped_samples > 0
    lost_link = SPF * src.stats()["lost_frames"]
    received = sum(c.n_samples for c in src.chunks)
    assert received + lost_link == n                                  # the link lost nothing
    bad = bad_mask(n, fed)
    assert int(bad.sum()) == s.dropped_samples + lost_link           # every drop counted
    for e in rec.of("prediction"):
        assert not window_overlaps(bad, e.start, e.index), (e.start, e.index)


def test_consumer_falling_behind_every_drop_is_a_dropped_gap(behind):
    _, _, rec, _, s = behind
    gaps = rec.of("gap")
    assert sum(g.length for g in gaps) == s.dropped_samples
    assert gaps and all(g.cause == "dropped" for g in gaps)


def test_device_info_with_zero_rate_stops_with_source_error(rel_backend):
    counts = np.zeros((200, 2), np.int32)
    dev = ScriptedDevice(pace_s=0.001, script=lambda: [_info(0.0) + b"".join(_frames(counts))])
    try:
        pipe, _, _ = _pipeline_over(dev, rel_backend)
        with pytest.raises(SourceError):
            pipe.run(handle_signals=False)
    finally:
        dev.close()


def test_device_info_changing_rate_mid_stream_stops_the_run(ecg, rel_backend):
    """A second DEVICE_INFO announcing another rate mid-stream: the run stops with a
    SourceError naming the change; no prediction is made on the wrong clock."""
    counts = np.rint(ecg[:, :2] * GAIN).astype(np.int32)
    first = _frames(counts[:9_000])
    later = _frames(counts[9_000:], seq0=len(first), ts0=18_000_000)
    dev = ScriptedDevice(pace_s=0.001, script=lambda: [_info(FS)] + first + [_info(250.0)] + later)
    try:
        pipe, rec, _ = _pipeline_over(dev, rel_backend, timeout_s=1.0)
        with pytest.raises(SourceError, match="rate"):
            pipe.run(handle_signals=False)
        for e in rec.of("prediction"):
            assert e.index <= 9_000
    finally:
        dev.close()


def test_device_reboot_is_not_joined_silently(ecg, rel_backend):
    counts = np.rint(ecg[:, :2] * GAIN).astype(np.int32)
    before = _frames(counts[:7_000], seq0=1000)
    after = _frames(counts[8_000:], seq0=0)            # 2 s of signal never sent, seq reset
    dev = ScriptedDevice(pace_s=0.001, script=lambda: [_info(FS)] + before + after)
    try:
        pipe, rec, _ = _pipeline_over(dev, rel_backend, timeout_s=1.0)
        s = pipe.run(handle_signals=False)
        assert s.source["seq_resets"] == 1
        assert rec.of("gap"), "the outage across the reboot must be reported as a gap"
        for e in rec.of("prediction"):                 # no window joins the two sides
            assert not e.start < 7_000 < e.index, (e.start, e.index)
    finally:
        dev.close()
