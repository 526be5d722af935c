"""Streaming == offline, and windows withheld exactly where the signal is unusable."""

import numpy as np
import pytest

from edge_ecg.data.synth import synthesize_schedule
from edge_ecg.data.windows import condition_signal
from edge_ecg.runtime.backends import open_backend
from edge_ecg.runtime.offline import run_offline
from edge_ecg.runtime.quality import REASONS, STRICT
from edge_ecg.runtime.replay import SYNTH_GAIN, quantise
from edge_ecg.runtime.stream_processor import StreamProcessor
from edge_ecg.signal.chunk import Chunk
from edge_ecg.signal.qrs import detect_beats

FS = 500.0


@pytest.fixture(scope="module")
def patient():
    rec = synthesize_schedule([("sinus_rhythm", 20.0), ("atrial_fibrillation", 20.0)], seed=3)
    return rec, quantise(rec.signal)


@pytest.fixture(scope="module")
def backend(fixture_bundle):
    be = open_backend(fixture_bundle)
    yield be
    be.close()


def _chunk(adc, pos, n, leads, samples=None):
    s = adc[pos:pos + n] if samples is None else samples
    return Chunk(index=pos, seq=0, device_time_us=0, samples=s,
                 gain=np.full(len(leads), SYNTH_GAIN, np.float32),
                 baseline=np.zeros(len(leads), np.float32), leads=leads, fs_hz=FS)


def _stream(backend, adc, leads, rng, skip=None, edit=None, quality=None):
    """Feed `adc` in random chunks; `skip=(a, b)` drops samples a..b (a gap)."""
    proc = StreamProcessor(backend, keep_outputs=True, quality=quality)
    events, pos = [], 0
    while pos < len(adc):
        n = int(rng.integers(1, 900))
        if skip and pos < skip[1] and pos + n > skip[0]:
            if pos < skip[0]:
                events += proc.feed(_chunk(adc, pos, skip[0] - pos, leads))
            pos = skip[1]
            continue
        samples = edit(pos, adc[pos:pos + n]) if edit else None
        events += proc.feed(_chunk(adc, pos, n, leads, samples))
        pos += n
    events += proc.finish()
    return proc, events


def _by_type(events, kind):
    return [e for e in events if e.to_json()["type"] == kind]


def test_random_chunks_match_offline_beats_and_predictions(patient, backend):
    rec, adc = patient
    mv = adc.astype(np.float32) / SYNTH_GAIN
    starts, offline = run_offline(mv, FS, rec.leads, backend)
    ref_beats = detect_beats(condition_signal(mv, FS, backend_contract(backend)), FS)
    for seed in (0, 1):
        proc, events = _stream(backend, adc, rec.leads, np.random.default_rng(seed))
        assert np.array_equal(np.asarray(proc.beats_model), ref_beats)
        assert [e.index for e in _by_type(events, "beat")] == ref_beats.tolist()  # fs equal
        assert not _by_type(events, "withheld") and not _by_type(events, "gap")
        got = np.array([s for s, _ in proc.outputs])
        np.testing.assert_array_equal(got, starts)
        for name, ref in offline.items():
            stream = np.stack([row[name] for _, row in proc.outputs])
            np.testing.assert_allclose(stream, ref, rtol=1e-5, atol=1e-5, err_msg=name)
    # the fixture's rr_interval is the mean of the window's RR series: check the number
    for (s, row), pred in zip(proc.outputs, _by_type(events, "prediction")):
        b = ref_beats[(ref_beats >= s) & (ref_beats < s + 5000)]
        assert row["rr_interval"] == pytest.approx(np.diff(b).mean() * 2.0, rel=1e-5)
        assert pred.outputs["rr_interval"]["unit"] == "ms"


def backend_contract(backend):
    from edge_ecg.signal.contract import SignalContract

    return SignalContract.from_dict(backend.manifest.signal)


def _windows(events):
    pred = {e.start: e for e in _by_type(events, "prediction")}
    held = {e.start: e for e in _by_type(events, "withheld")}
    assert not set(pred) & set(held)
    return pred, held


def test_gap_withholds_exactly_the_windows_that_hold_it(patient, backend):
    rec, adc = patient
    a, b = 12_300, 12_800                      # 1 s of samples never arrive
    _, events = _stream(backend, adc, rec.leads, np.random.default_rng(5), skip=(a, b))
    gaps = _by_type(events, "gap")
    assert [(g.index, g.length) for g in gaps] == [(a, b - a)]
    pred, held = _windows(events)
    all_starts = np.arange(0, len(adc) - 5000 + 1, 500)
    holds_gap = {int(s) for s in all_starts if s < b and s + 5000 > a}
    assert set(held) == holds_gap
    assert set(pred) == set(all_starts.tolist()) - holds_gap
    assert all("gap" in held[s].reasons for s in held)


def test_lead_off_saturation_and_nan_are_withheld(patient, backend):
    """Under the strict limits (before issue 17) each fault withholds exactly the windows
    holding it; under the default ones the same windows are predicted with the lead masked
    (off, saturated) or the sample filled (NaN), and say so."""
    rec, adc = patient
    leads = rec.leads
    v3, ii = leads.index("V3"), leads.index("II")
    rail = int(adc[:, ii].max()) + 3000               # 3 mV above any sample of the lead

    def edit(pos, s):
        s = s.astype(np.float64)
        t = np.arange(pos, pos + len(s))
        off = (t >= 3000) & (t < 5000)                 # V3 electrode off for 4 s: flat
        s[off, v3] = 17.0
        sat = (t >= 9000) & (t < 10_000)               # lead II: a 4-mV baseline jump runs
        s[sat, ii] = np.minimum(s[sat, ii] + 4000, rail)   # the amplifier into its rail
        s[t == 13_000, 4] = np.nan                     # one non-finite sample
        return s

    _, events = _stream(backend, adc, leads, np.random.default_rng(7), edit=edit, quality=STRICT)
    pred, held = _windows(events)
    starts = range(0, len(adc) - 5000 + 1, 500)
    for e in held.values():
        assert set(e.reasons) <= set(REASONS)

    def having(reason):
        return {s for s, e in held.items() if reason in e.reasons}

    # lead off: every window holding a whole flat 1-s block (blocks on the window's grid)
    assert having("lead_off") == set(range(0, 4501, 500))
    # saturation: every window holding >= 20 ms of the plateau at the rail
    assert having("saturation") == set(range(4500, 9501, 500))
    # NaN: every window holding the sample
    assert having("nan") == set(range(8500, 13_001, 500))
    assert not having("gap")
    # windows clear of every fault are predicted
    assert set(pred) == {s for s in starts if s >= 13_500}

    # default limits: every window predicted; the faulty lead masked, the NaN filled
    _, events = _stream(backend, adc, leads, np.random.default_rng(7), edit=edit)
    pred, held = _windows(events)
    assert not held and set(pred) == set(starts)
    q = {s: e.quality for s, e in pred.items()}
    assert {s for s in q if q[s]["leads_off"].get("V3") == "lead_off"} == set(range(0, 4501, 500))
    assert {s for s in q if q[s]["leads_off"].get("II") == "saturation"} == set(
        range(4500, 9501, 500))
    assert all(set(q[s]["leads_off"]) <= {"V3", "II"} for s in q)
    assert all(len(q[s]["leads"]) == 12 - len(q[s]["leads_off"]) for s in q)
    assert {s for s in q if q[s]["invalid_samples"]} == set(range(8500, 13_001, 500))
    assert all(q[s]["filled_samples"] == q[s]["invalid_samples"] <= 1 for s in q)


def test_resampled_record_streams_like_offline(shared_data, backend):
    """MIT-BIH at 360 Hz: streaming resampler + filter + detector == the offline chain."""
    from edge_ecg.data.records import read_record

    rec = read_record(shared_data / "mitdb" / "100")
    n = 40 * 360
    adc, fs = rec.adc[:n], rec.fs_hz
    mv = ((adc - rec.baseline) / rec.gain).astype(np.float32)
    starts, offline = run_offline(mv, fs, rec.leads, backend)
    ref_beats = detect_beats(condition_signal(mv, fs, backend_contract(backend)), 500.0)
    proc = StreamProcessor(backend, keep_outputs=True)
    rng, pos, events = np.random.default_rng(11), 0, []
    while pos < n:
        k = int(rng.integers(1, 700))
        events += proc.feed(Chunk(index=pos, seq=0, device_time_us=0, samples=adc[pos:pos + k],
                                  gain=rec.gain, baseline=rec.baseline, leads=rec.leads,
                                  fs_hz=fs))
        pos += k
    events += proc.finish()
    assert np.array_equal(np.asarray(proc.beats_model), ref_beats)
    beat_idx = [e.index for e in _by_type(events, "beat")]    # on the 360-Hz source clock
    np.testing.assert_array_equal(beat_idx, np.round(ref_beats * fs / 500.0).astype(int))
    np.testing.assert_array_equal([s for s, _ in proc.outputs], starts)
    for name, ref in offline.items():
        stream = np.stack([row[name] for _, row in proc.outputs])
        np.testing.assert_allclose(stream, ref, rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("fs_in", [360.0, 500.0, 250.0])
def test_tracker_conditions_like_offline(fs_in):
    """Resampled (delay dropped, end flushed) and filtered stream == `condition_signal`."""
    from edge_ecg.runtime.beat_tracker import BeatTracker
    from edge_ecg.signal.contract import SignalContract

    c = SignalContract()
    rng = np.random.default_rng(0)
    n = int(7.3 * fs_in)
    x = (np.cumsum(rng.normal(0, 0.05, (n, 3)), axis=0) + 0.4).astype(np.float32)
    ref = condition_signal(x, fs_in, c)
    tr = BeatTracker(c, fs_in, 3)
    parts, pos = [], 0
    while pos < n:
        k = int(rng.integers(1, 400))
        parts.append(tr.push(x[pos:pos + k]).y)
        pos += k
    parts.append(tr.flush().y)
    y = np.concatenate(parts)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
