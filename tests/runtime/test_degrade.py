"""Issue 17: predictions through packet loss and lead-off, degraded within stated limits and
never silently: exact filled counts, the missing-signal limit, a lead off masked, no beat on a
gap's fill, and streaming == offline with the same gaps."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.data.synth import synthesize
from edge_ecg.runtime.backends import open_backend
from edge_ecg.runtime.quality import QualityConfig
from edge_ecg.runtime.replay import SYNTH_GAIN, quantise
from edge_ecg.runtime.ring_buffer import FLAG_GAP, RingBuffer
from edge_ecg.runtime.stream_processor import BEAT_GAP_S, StreamProcessor
from edge_ecg.signal.chunk import Chunk

FS = 500.0
WIN = 5000                  # 10 s at 500 Hz (the fixture bundle's contract)
FRAME = 10                  # 20-ms frames, as firmware_bridge sends them
SECONDS = 24.0


@pytest.fixture(scope="module")
def rec():
    r = synthesize("sinus_rhythm", seconds=SECONDS, fs_hz=FS, seed=4)
    return r, quantise(r.signal)


@pytest.fixture(scope="module")
def backend(fixture_bundle):
    be = open_backend(fixture_bundle)
    yield be
    be.close()


class Capture:
    """A backend wrapper that keeps every input batch it is given."""

    def __init__(self, backend):
        self.inner, self.manifest, self.batches = backend, backend.manifest, []

    def run(self, inputs):
        self.batches.append({k: np.array(v) for k, v in inputs.items()})
        return self.inner.run(inputs)


def _chunk(adc, pos, n, leads, samples=None):
    return Chunk(index=pos, seq=0, device_time_us=0,
                 samples=adc[pos:pos + n] if samples is None else samples,
                 gain=np.full(len(leads), SYNTH_GAIN, np.float32),
                 baseline=np.zeros(len(leads), np.float32), leads=leads, fs_hz=FS)


def _stream(backend, adc, leads, lost, chunk_sizes, quality=None):
    """Feed `adc` in chunks of `chunk_sizes(rng)` samples; samples where `lost` is True never
    arrive. Returns (processor, events)."""
    proc = StreamProcessor(backend, keep_outputs=True, quality=quality)
    events, pos, n = [], 0, len(adc)
    while pos < n:
        k = min(chunk_sizes(), n - pos)
        seg = np.flatnonzero(~lost[pos:pos + k])
        if seg.size:   # the arrived samples of this chunk, one chunk per contiguous run
            runs = np.split(seg, np.flatnonzero(np.diff(seg) > 1) + 1)
            for r in runs:
                events += proc.feed(_chunk(adc, pos + int(r[0]), len(r), leads))
        pos += k
    events += proc.finish()
    return proc, events


def _frames_lost(n, rate, seed, first=FRAME):
    """Per-sample mask of whole 20-ms frames lost at random (the first frame always arrives)."""
    rng = np.random.default_rng(seed)
    per_frame = rng.random(n // FRAME + 1) < rate
    per_frame[0] = False
    lost = np.repeat(per_frame, FRAME)[:n]
    lost[:first] = False
    return lost


def _of(events, kind):
    return [e for e in events if e.to_json()["type"] == kind]


def test_linear_fill_is_exact_and_marked():
    rb = RingBuffer(64, 2, fill="linear")
    rb.write(0, np.array([[0.0, 10.0], [1.0, 10.0]], np.float32))
    gap_start, gap_len = rb.write(5, np.array([[5.0, 4.0]], np.float32))
    assert (gap_start, gap_len) == (2, 3) and rb.gap_samples == 3
    x, flags = rb.read(0, 6)
    np.testing.assert_allclose(x[:, 0], [0, 1, 2, 3, 4, 5])           # the straight line
    np.testing.assert_allclose(x[:, 1], [10, 10, 8.5, 7, 5.5, 4])
    np.testing.assert_array_equal(flags, [0, 0, FLAG_GAP, FLAG_GAP, FLAG_GAP, 0])


def test_exact_missing_and_filled_counts_per_prediction(rec, backend):
    r, adc = rec
    n = len(adc)
    lost = _frames_lost(n, 0.02, seed=1)
    lost[9000:9003] = True                                          # a short odd gap too
    proc, events = _stream(backend, adc, r.leads, lost, lambda: FRAME)
    gaps = _of(events, "gap")
    assert sum(g.length for g in gaps) == int(lost.sum()) == proc.close_summary().gap_samples
    for g in gaps:                                                  # each gap where it was
        assert lost[g.index:g.index + g.length].all() and not lost[g.index - 1]
    preds = _of(events, "prediction")
    assert preds and not _of(events, "withheld")                    # 2 % loss: all predicted
    for p in preds:
        q = p.quality
        assert p.index - p.start == WIN
        assert q["missing_samples"] == int(lost[p.start:p.index].sum())
        assert q["filled_samples"] == q["missing_samples"] and q["invalid_samples"] == 0
        assert q["filled_frac"] == pytest.approx(q["missing_samples"] / WIN, abs=1e-4)
        assert q["leads"] == list(r.leads) and q["leads_off"] == {}
    s = proc.close_summary()
    assert s.degraded_predictions == sum(p.quality["filled_samples"] > 0 for p in preds)
    assert s.degraded_kinds == {"filled": s.degraded_predictions}
    assert s.predictions == len(preds) == (n - WIN) // 500 + 1


def test_the_model_is_told_exactly_which_segments_were_filled(rec, backend):
    """Each predicted window's `valid` input: 0 on every segment holding a lost sample (all
    leads), 1 elsewhere; the RR intervals fed are the detector's, fills or not."""
    r, adc = rec
    n = len(adc)
    lost = _frames_lost(n, 0.01, seed=6)
    lost[9_013:9_017] = True                                  # 4 samples inside one segment
    lost[:5_600] = False                                      # the first two windows clean
    cap = Capture(backend)
    proc, events = _stream(cap, adc, r.leads, lost, lambda: FRAME)
    c = proc.contract
    assert c.fs_hz == FS and "valid" in cap.manifest.inputs
    seg = c.valid_seg
    rows = [p.start for p in _of(events, "prediction")]
    valid = np.concatenate([b["valid"] for b in cap.batches])
    rr_ms = np.concatenate([b["rr_ms"] for b in cap.batches])
    rr_mask = np.concatenate([b["rr_mask"] for b in cap.batches])
    assert valid.shape == (len(rows), c.n_leads, c.n_valid_seg)
    beats = np.asarray(proc.beats_model)
    degraded = 0
    for i, start in enumerate(rows):
        want = lost[start:start + WIN].reshape(-1, seg).any(1)        # segments with a loss
        np.testing.assert_array_equal(valid[i] == 0, np.broadcast_to(want, valid[i].shape))
        degraded += bool(want.any())
        b = beats[(beats >= start) & (beats < start + WIN)] - start
        expect = (np.diff(b) * 1000.0 / FS)[:c.max_beats]
        got = rr_ms[i][rr_mask[i] > 0]
        np.testing.assert_allclose(got, expect, rtol=1e-6)
    assert degraded == len(rows) - 2 and not _of(events, "withheld")


def test_no_prediction_over_more_missing_signal_than_the_limit(rec, backend):
    r, adc = rec
    n = len(adc)
    lost = _frames_lost(n, 0.07, seed=2)                    # ~7 % lost, unevenly
    lost[14_000:14_050] = True                               # 100 ms: kept (< 120 ms)
    lost[3000:3100] = False
    lost[3000:3070] = True                                   # 140 ms: withholds its windows
    cfg = QualityConfig(max_missing_frac=0.08)
    _, events = _stream(backend, adc, r.leads, lost, lambda: FRAME, quality=cfg)
    preds, held = _of(events, "prediction"), _of(events, "withheld")
    assert preds and held
    limit = cfg.max_missing_frac * WIN
    for p in preds:
        assert p.quality["filled_samples"] <= limit
        assert p.quality["longest_gap_samples"] <= cfg.max_gap_s * FS
    for w in held:
        too_much = lost[w.start:w.index].sum() > limit
        holds_long = w.start < 3070 and w.index > 3000
        assert "gap" in w.reasons and (too_much or holds_long)
        assert w.quality["missing_samples"] == int(lost[w.start:w.index].sum())
    starts = {p.start for p in preds} | {w.start for w in held}
    assert starts == set(range(0, n - WIN + 1, 500))
    for s in starts:                                         # and every window over it is held
        if lost[s:s + WIN].sum() > limit or (s < 3070 and s + WIN > 3000):
            assert s in {w.start for w in held}


@pytest.mark.parametrize("n_off", [1, 6, 11])
def test_lead_off_is_masked_and_the_rest_predicts(rec, backend, n_off):
    r, adc = rec
    leads = r.leads
    off = list(leads[1::2])[:n_off] if n_off <= 6 else list(leads[:n_off])
    cols = [leads.index(name) for name in off]
    flat = adc.copy()
    flat[:, cols] = 0                                        # electrodes off: flat lines
    cap = Capture(backend)
    proc, events = _stream(cap, flat, leads, np.zeros(len(adc), bool), lambda: 37)
    assert not _of(events, "withheld")
    preds = _of(events, "prediction")
    assert len(preds) == (len(adc) - WIN) // 500 + 1
    for p in preds:
        assert sorted(p.quality["leads_off"]) == sorted(off)
        assert set(p.quality["leads_off"].values()) == {"lead_off"}
        assert p.quality["leads"] == [ld for ld in leads if ld not in off]
    mask = np.concatenate([b["lead_mask"] for b in cap.batches])
    x = np.concatenate([b["x"] for b in cap.batches])
    want = np.array([ld not in off for ld in leads], np.float32)
    np.testing.assert_array_equal(mask, np.broadcast_to(want, mask.shape))
    assert not x[:, ~want.astype(bool)].any()                # masked leads are zero
    assert proc.close_summary().degraded_kinds == {"leads_masked": len(preds)}
    # fewer measured leads left than the profile asks: withheld, with the reason
    need = 12 - n_off + 1
    _, events = _stream(backend, flat, leads, np.zeros(len(adc), bool), lambda: 37,
                        quality=QualityConfig(min_leads=need))
    held = _of(events, "withheld")
    assert not _of(events, "prediction") and len(held) == len(preds)
    assert all("lead_off" in w.reasons for w in held)


def test_an_eight_lead_monitor_with_lead_i_off_masks_the_limb_leads_derived_from_it(backend):
    r = synthesize("sinus_rhythm", seconds=12.0, fs_hz=FS, seed=6,
                   leads=("I", "II", "V1", "V2", "V3", "V4", "V5", "V6"))
    adc = quantise(r.signal)
    adc[:, 0] = 0
    cap = Capture(backend)
    _, events = _stream(cap, adc, r.leads, np.zeros(len(adc), bool), lambda: 100)
    preds = _of(events, "prediction")
    assert preds and all(p.quality["leads_off"] == {"I": "lead_off"} for p in preds)
    contract_leads = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    want = [0.0 if ld in ("I", "III", "aVR", "aVL", "aVF") else 1.0 for ld in contract_leads]
    assert cap.batches[0]["lead_mask"][0].tolist() == want


def test_streaming_equals_offline_with_the_same_gaps_and_no_beat_in_a_gap(rec, backend):
    r, adc = rec
    n = len(adc)
    lost = _frames_lost(n, 0.01, seed=3)
    lost[6_000:6_900] = True                      # 1.8 s outage: holds beats of the record
    # offline: each contiguous run in one chunk; streaming: frames, and random chunkings
    ref_proc, ref = _stream(backend, adc, r.leads, lost, lambda: n)
    rngs = [np.random.default_rng(s) for s in (0, 1)]
    for sizes in (lambda: FRAME, lambda: int(rngs[0].integers(1, 700)),
                  lambda: int(rngs[1].integers(1, 60))):
        proc, events = _stream(backend, adc, r.leads, lost, sizes)
        for kind in ("beat", "gap", "withheld"):   # each kind in order (interleaving differs)
            assert [e.to_json() for e in _of(events, kind)] == [e.to_json() for e in _of(ref, kind)]
        got = [(p.start, p.quality, p.n_beats) for p in _of(events, "prediction")]
        assert got == [(p.start, p.quality, p.n_beats) for p in _of(ref, "prediction")]
        assert [s for s, _ in proc.outputs] == [s for s, _ in ref_proc.outputs]
        for (_, a), (_, b) in zip(proc.outputs, ref_proc.outputs):
            for k in a:
                np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-5, err_msg=k)
        assert proc.beats_model == ref_proc.beats_model
    # no beat on the outage's fill; the detector carries on after it
    reach = int(BEAT_GAP_S * FS)
    beats = np.asarray(ref_proc.beats_model)
    assert not np.any((beats > 6_000 + reach) & (beats < 6_900 - reach))
    clean_proc, _ = _stream(backend, adc, r.leads, np.zeros(n, bool), lambda: n)
    clean = np.asarray(clean_proc.beats_model)
    after = clean[clean > 6_900 + 250]                      # from 0.5 s after the outage on
    assert np.isin(after, beats).all() and after.size >= 8
    before = clean[clean < 6_000 - 250]
    assert np.isin(before, beats).all()
    hidden = clean[(clean > 6_000) & (clean < 6_900)]
    assert hidden.size >= 1                                   # the outage did hide beats
    # the windows touching the outage are withheld for it, the rest predicted
    for w in _of(ref, "withheld"):
        assert w.start < 6_900 and w.index > 6_000 and "gap" in w.reasons


def test_a_lossy_live_source_stops_after_max_seconds_of_its_clock(rec, backend):
    """The issue's serial run: with frames lost, `max_seconds` of received samples would never
    come; the limit counts the stream's clock, gaps included, and the summary counts them."""
    import threading

    from edge_ecg.runtime.pipeline import Pipeline
    from edge_ecg.signal.source import Source

    r, adc = rec
    lost = _frames_lost(len(adc), 0.02, seed=8)

    class Lossy(Source):
        live = False   # a replay: the consumer sees every chunk

        def __init__(self):
            self.pos = 0

        def open(self):
            pass

        def read(self, timeout_s=0.1):
            while self.pos < len(adc):
                p, self.pos = self.pos, self.pos + FRAME
                if not lost[p]:
                    return _chunk(adc, p, FRAME, r.leads)
            threading.Event().wait(timeout_s)   # a device that goes quiet, never EOF
            return None

        def close(self):
            pass

        def stats(self):
            return {}

    class Keep:
        def __init__(self):
            self.events = []

        def emit(self, ev):
            self.events.append(ev)

        def close(self):
            pass

    sink = Keep()
    pipe = Pipeline(Lossy(), backend, [sink])
    done = {}
    t = threading.Thread(target=lambda: done.setdefault("s", pipe.run(max_seconds=16.0,
                                                                     handle_signals=False)))
    t.start()
    t.join(20.0)
    if t.is_alive():
        pipe.stop()
        t.join(5.0)
        pytest.fail("the run did not stop after 16 s of a lossy stream")
    s = done["s"]
    n = int(16 * FS)
    assert s.samples == int((~lost[:n]).sum()) and s.gap_samples == int(lost[:n].sum())
    assert s.predictions == 7 and s.degraded_predictions == 7 and s.withheld == 0


def test_a_beat_deep_in_a_gap_is_judged_invented_and_one_at_its_edge_is_not(rec, backend):
    r, adc = rec
    lost = np.zeros(len(adc), bool)
    lost[4000:4500] = True                                   # 1 s never arrives
    proc = StreamProcessor(backend)
    for a, b in ((0, 4000), (4500, 6000)):
        proc.feed(_chunk(adc, a, b - a, r.leads))
    reach = int(BEAT_GAP_S * FS)
    assert proc._in_gap(4250) and proc._in_gap(4000 + reach) and proc._in_gap(4499 - reach)
    assert not proc._in_gap(4000 + reach - 1) and not proc._in_gap(4499 - reach + 1)
    assert not proc._in_gap(3999) and not proc._in_gap(4600)


def test_profile_quality_keys_default_to_the_runtime_limits_and_reach_the_stream():
    from dataclasses import fields

    from edge_ecg.cli.stream import resolve_profile
    from edge_ecg.errors import ProfileError
    from profiles.profile import SCHEMA_BY_PATH, load_profile, parse_profile

    q = QualityConfig()
    for f in ("max_missing_frac", "max_gap_s", "min_leads", "mask_off_leads"):
        assert SCHEMA_BY_PATH[f"quality.{f}"].default == getattr(q, f)
    assert QualityConfig(**load_profile("rpi4").quality()) == q          # absent: defaults
    prof = resolve_profile("bedside_x86", [])
    assert QualityConfig(**prof["quality"]) == q
    from edge_ecg.runtime.toml_input import read_toml
    from profiles.profile import PROFILE_DIR

    doc = read_toml(PROFILE_DIR / "rpi4.toml", ProfileError, "a profile")
    doc["quality"] = {"max_missing_frac": 0.05, "min_leads": 3, "mask_off_leads": False}
    p = parse_profile(doc, "inline")
    assert (p.quality_max_missing_frac, p.quality_min_leads, p.quality_mask_off_leads,
            p.quality_max_gap_s) == (0.05, 3, False, 0.12)
    assert {f.name for f in fields(QualityConfig)} >= set(p.quality())
    for bad in ({"max_missing_frac": 0.9}, {"min_leads": 0}, {"max_gap": 1.0},
                {"mask_off_leads": 1}):
        doc["quality"] = bad
        with pytest.raises(ProfileError, match="quality"):
            parse_profile(doc, "inline")


def test_a_reboot_gap_of_unknown_length_is_never_bridged(rec, backend):
    """A device reboot restarts its sequence: the source books the minimum gap (a frame) and
    marks the chunk after it; no window across it is predicted on, however short it looks."""
    from dataclasses import replace

    r, adc = rec
    proc = StreamProcessor(backend)
    events = []
    for pos in range(0, len(adc), FRAME):
        if 6000 <= pos < 6010:                           # one frame booked across the reboot
            continue
        c = _chunk(adc, pos, FRAME, r.leads)
        events += proc.feed(replace(c, discontinuity=True) if pos == 6010 else c)
    events += proc.finish()
    assert [(g.index, g.length, g.cause) for g in _of(events, "gap")] == [(6000, 10, "reset")]
    held = _of(events, "withheld")
    assert {w.start for w in held} == {s for s in range(0, len(adc) - WIN + 1, 500)
                                       if s < 6010 and s + WIN > 6000}
    assert all("gap" in w.reasons for w in held)
    assert all(not p.start < 6000 < p.index for p in _of(events, "prediction"))


def test_a_run_longer_than_the_buffer_after_a_gap_loses_nothing(rec, backend):
    """A replay's first run sizes the raw buffer; a later run many times longer (after a lost
    frame) goes in as parts: the same beats and predictions as 20-ms frames, no overflow."""
    r, adc = rec
    n = len(adc)
    lost = np.zeros(n, bool)
    lost[200:210] = True                                   # the first run is 0.4 s
    ref_proc, ref = _stream(backend, adc, r.leads, lost, lambda: FRAME)
    proc, events = _stream(backend, adc, r.leads, lost, lambda: n)   # then 23.6 s at once
    assert proc.raw.capacity < n - 210
    assert proc.close_summary().overflow_samples == 0
    assert proc.beats_model == ref_proc.beats_model
    for kind in ("beat", "gap", "withheld"):
        assert [e.to_json() for e in _of(events, kind)] == [e.to_json() for e in _of(ref, kind)]
    assert [p.start for p in _of(events, "prediction")] == [p.start for p in _of(ref, "prediction")]
