"""The predictor's readable outputs: batched description == the original per-row one, and a
stream that smooths or keeps outputs gives the events an unsmoothed one does where it must."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np

from edge_ecg.data.synth import synthesize
from edge_ecg.runtime.backends import open_backend
from edge_ecg.runtime.events import PredictionEvent
from edge_ecg.runtime.predictor import (
    EXPERT_WEIGHT_MIN,
    GATE_PREFIX,
    Predictor,
    expert_names,
    split_rows,
)
from edge_ecg.runtime.replay import SYNTH_GAIN, quantise
from edge_ecg.runtime.stream_processor import StreamProcessor
from edge_ecg.signal.chunk import Chunk
from edge_ecg.signal.contract import SignalContract

TASKS = [
    {"name": "rr_interval", "output": "rr_interval", "kind": "regression", "unit": "ms"},
    {"name": "sex", "output": "sex", "kind": "binary", "labels": ["male", "female"]},
    {"name": "flag", "output": "flag", "kind": "binary"},                 # no labels: 0/1
    {"name": "rhythm", "output": "rhythm", "kind": "multiclass",
     "labels": ["sinus", "af", "pvc"]},                                   # fewer labels than outputs
]
ROUTING = {"paths": {"morphology": {"names": ["m0", "m1", "m2", "m3"], "kept": [0, 2, 3]}}}


def _old_describe(tasks, routing, row):
    """The original `Predictor.describe`, verbatim."""
    outputs = {}
    for t in tasks:
        v = np.asarray(row[t["output"]], dtype=np.float64)
        labels = list(t.get("labels", ()))
        if t["kind"] == "regression":
            outputs[t["name"]] = {"value": round(float(v.reshape(-1)[0]), 3),
                                  "unit": t.get("unit", "")}
        elif t["kind"] == "binary":
            p = float(v.reshape(-1)[0])
            name = labels[int(p >= 0.5)] if len(labels) == 2 else int(p >= 0.5)
            outputs[t["name"]] = {"label": name, "prob": round(p, 4)}
        else:
            probs = v.reshape(-1)
            k = int(np.argmax(probs))
            outputs[t["name"]] = {
                "label": labels[k] if k < len(labels) else k,
                "prob": round(float(probs[k]), 4),
                "probs": {str(labels[i]) if i < len(labels) else str(i): round(float(p), 4)
                          for i, p in enumerate(probs)},
            }
    experts = {}
    for name, g in row.items():
        if not name.startswith(GATE_PREFIX):
            continue
        g = np.asarray(g)
        if g.ndim < 1:
            continue
        used = np.flatnonzero(g.reshape(-1, g.shape[-1]).max(axis=0) > EXPERT_WEIGHT_MIN)
        path = name[len(GATE_PREFIX):]
        names = expert_names(routing, path, g.shape[-1])
        experts[path] = [names[i] for i in used]
    return outputs, experts


def _predictor():
    backend = SimpleNamespace(manifest=SimpleNamespace(tasks=TASKS, routing=ROUTING))
    return Predictor(backend, SignalContract(), ("I", "II"))


def _outputs(rng, n):
    probs = rng.dirichlet(np.ones(5), n).astype(np.float32)
    probs[0, 1] = probs[0, 3] = probs[0].max() + 0.1                    # a tie: first wins
    gates = np.zeros((n, 5, 3), np.float32)
    gates[:, :, 1] = rng.uniform(0, 1, (n, 5))
    gates[1, 2, 0] = EXPERT_WEIGHT_MIN / 2                              # a residue: not used
    gates[2, 0, 2] = 0.3
    gates[3, 4, 2] = np.nan
    return {
        "rr_interval": rng.normal(800, 100, n).astype(np.float32),
        "sex": np.concatenate([[0.5, np.nan], rng.uniform(0, 1, n - 2)]).astype(np.float32),
        "flag": rng.integers(0, 2, (n, 1)),                             # integer, (n, 1)
        "rhythm": probs,
        "gate_morphology": gates,
        "gate_rhythm": rng.uniform(0, 1, (n, 2)).astype(np.float32),    # names from the path
        "gate_scalar": np.ones(n, np.float32),                          # 0-d per row: skipped
    }


def test_batch_description_matches_original_per_row():
    rng = np.random.default_rng(2)
    pred = _predictor()
    for n in (1, 4, 9):
        out = _outputs(rng, max(n, 4))
        out = {k: v[:n] for k, v in out.items()}
        want = [_old_describe(TASKS, ROUTING, row) for row in split_rows(out, n)]
        assert _same(pred.describe_batch(out, n), want)
        for row, w in zip(split_rows(out, n), want):
            assert _same([pred.describe(row)], [w])


def _same(a, b) -> bool:
    """Equal, NaN equal to NaN (a NaN probability must come out as NaN in both)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_stream_events_with_kept_or_smoothed_outputs(fixture_bundle):
    """Keeping raw outputs changes no event; smoothing describes the mean of the last rows."""
    rec = synthesize("sinus_rhythm", seconds=16.0, seed=4)
    adc = quantise(rec.signal)
    backend = open_backend(fixture_bundle)

    def stream(**kw):
        proc = StreamProcessor(backend, **kw)
        ev = []
        for pos in range(0, adc.shape[0], 700):
            ev += proc.feed(Chunk(index=pos, seq=0, device_time_us=0, samples=adc[pos:pos + 700],
                                  gain=np.full(12, SYNTH_GAIN, np.float32),
                                  baseline=np.zeros(12, np.float32), leads=rec.leads,
                                  fs_hz=rec.fs_hz))
        ev += proc.finish()
        return proc, [e for e in ev if isinstance(e, PredictionEvent)]

    _, plain = stream()
    kept, with_rows = stream(keep_outputs=True)
    _, smooth = stream(smooth=3, keep_outputs=True)
    untimed = [{**e.to_json(), "latency_ms": None} for e in plain]
    assert len(plain) >= 6
    assert _same(untimed, [{**e.to_json(), "latency_ms": None} for e in with_rows])
    tasks, routing = backend.manifest.tasks, backend.manifest.routing or {}
    rows = [row for _, row in kept.outputs]
    for i, ev in enumerate(smooth):
        hist = rows[max(0, i - 2):i + 1]
        mean = {k: np.mean([h[k] for h in hist], axis=0) for k in rows[0]}
        # the per-beat task's window summary comes from the stream (its beats), not describe
        want = _old_describe([t for t in tasks if t["kind"] != "beat"], routing, mean)
        outs = {k: v for k, v in ev.outputs.items() if k != "beat"}
        assert _same([outs, ev.experts], list(want))
    backend.close()


def test_outputs_of_synthetic_only_tasks_say_so():
    tasks = [dict(t, trained_on="synthetic") if t["name"] == "flag" else
             dict(t, trained_on="real") for t in TASKS]
    backend = SimpleNamespace(manifest=SimpleNamespace(tasks=tasks, routing=ROUTING))
    pred = Predictor(backend, SignalContract(), ("I", "II"))
    out = _outputs(np.random.default_rng(3), 4)
    for row in split_rows(out, 4):
        outputs, _ = pred.describe(row)
        assert outputs["flag"]["trained_on"] == "synthetic"
        assert all("trained_on" not in outputs[k] for k in ("rr_interval", "sex", "rhythm"))


def test_the_runtime_delineates_three_preferred_leads():
    from edge_ecg.runtime.beat_tracker import delineation_columns

    twelve = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    assert delineation_columns(twelve) == (1, 7, 10)                 # II, V2, V5
    assert delineation_columns(("II", "V1")) == (0, 1)
    assert delineation_columns(("ECG", "X", "Y", "Z")) == (0, 1, 2)  # unknown names: in order
    assert delineation_columns(twelve, limit=12) == tuple(range(12))
