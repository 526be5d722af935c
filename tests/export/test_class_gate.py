"""The export's metric gate reads each beat class's F1, not only the macro: a trade between V
and S that leaves the macro F1 level is a drop the gate must see."""

import numpy as np

from edge_ecg.data.tasks import TaskSet, TaskSpec
from edge_ecg.metrics.tasks import task_metrics
from export.acceptance import CLASS_GATE_MIN_BEATS, metric_drops

BEAT = TaskSpec(name="beat", kind="beat", metric="macro_f1", label_field="beat",
                labels=("N", "S", "V", "F", "Q"))
TASKS = TaskSet((BEAT,))
N, S, V = 0, 1, 2


def one_hot(classes: np.ndarray) -> np.ndarray:
    out = np.zeros(classes.shape + (5,), dtype=np.float32)
    np.put_along_axis(out, classes[..., None], 1.0, axis=-1)
    return out


def labels_and_ref(n_v: int = 100, n_s: int = 100, n_n: int = 800):
    y = np.array([N] * n_n + [S] * n_s + [V] * n_v, dtype=np.float64).reshape(-1, 10)
    return y, one_hot(y.astype(int))


def test_a_v_for_s_trade_the_macro_hides_is_a_class_drop():
    y, ref = labels_and_ref()
    got = ref.copy()
    flat = got.reshape(-1, 5)
    # 30 normal beats called V: N's F1 hardly moves, V's falls, the macro by a fifth of it
    normals = np.flatnonzero(y.reshape(-1) == N)
    flat[normals[:30]] = one_hot(np.array([V]))[0]
    ref_m = task_metrics(TASKS, {"beat": ref}, {"beat": y})
    got_m = task_metrics(TASKS, {"beat": got}, {"beat": y})
    drops = metric_drops(ref_m, got_m, TASKS)
    assert ref_m["beat"]["V_n"] == 100 and ref_m["beat"]["S_n"] == 100
    # V: Se 1, +P 100/130 -> F1 0.870 (from 1.0)
    assert abs(drops["beat.V_f1"] - (1.0 - 2 * (100 / 130) / (1 + 100 / 130))) < 1e-9
    assert abs(drops["beat.S_f1"]) < 1e-12
    assert drops["beat.V_f1"] > drops["beat"] > 0     # the class drop is the larger one
    assert max(drops.values()) == drops["beat.V_f1"]   # what gate_metrics compares


def test_classes_with_few_reference_beats_are_not_gated():
    y, ref = labels_and_ref(n_v=CLASS_GATE_MIN_BEATS - 10, n_s=100,
                            n_n=1000 - 100 - (CLASS_GATE_MIN_BEATS - 10))
    got = ref.copy()
    m = task_metrics(TASKS, {"beat": ref}, {"beat": y})
    drops = metric_drops(m, task_metrics(TASKS, {"beat": got}, {"beat": y}), TASKS)
    assert "beat.V_f1" not in drops and "beat.F_f1" not in drops
    assert drops["beat.S_f1"] == 0.0 and drops["beat.N_f1"] == 0.0


def test_a_class_never_called_any_more_drops_its_whole_f1():
    y, ref = labels_and_ref()
    got = ref.copy().reshape(-1, 5)
    got[y.reshape(-1) == V] = one_hot(np.array([N]))[0]
    got = got.reshape(ref.shape)
    drops = metric_drops(task_metrics(TASKS, {"beat": ref}, {"beat": y}),
                         task_metrics(TASKS, {"beat": got}, {"beat": y}), TASKS)
    assert drops["beat.V_f1"] == 1.0


def test_a_beat_class_over_the_tolerance_in_int8_names_the_fp32_experts_lever():
    """The refusal names `--no-beat-experts-int8` where a per-beat task is over in an int8
    variant with its experts quantized (the bundled model's case), and not otherwise."""
    from pathlib import Path
    from types import SimpleNamespace

    import pytest

    from export.acceptance import gate_metrics
    from export.errors import MetricDropError
    from export.request import ExportRequest

    y, ref = labels_and_ref()
    got = ref.copy()
    flat = got.reshape(-1, 5)
    flat[np.flatnonzero(y.reshape(-1) == N)[:30]] = one_hot(np.array([V]))[0]
    ref_m = task_metrics(TASKS, {"beat": ref}, {"beat": y})
    got_m = task_metrics(TASKS, {"beat": got}, {"beat": y})
    routed = SimpleNamespace(drop={}, ref_metrics=ref_m)
    req = ExportRequest(checkpoint=Path("x"), out=Path("y"))
    int8 = SimpleNamespace(name="onnx-int8-routed", metrics=got_m)
    with pytest.raises(MetricDropError, match="--no-beat-experts-int8"):
        gate_metrics(req, routed, [int8], TASKS)
    for r, variant in ((ExportRequest(checkpoint=Path("x"), out=Path("y"),
                                      beat_experts_int8=False), int8),
                       (req, SimpleNamespace(name="onnx-fp32", metrics=got_m))):
        with pytest.raises(MetricDropError) as err:
            gate_metrics(r, routed, [variant], TASKS)
        assert "--no-beat-experts-int8" not in str(err.value)
    drops, over = gate_metrics(ExportRequest(checkpoint=Path("x"), out=Path("y"),
                                             allow_metric_drop=True), routed, [int8], TASKS)
    assert "beat.V_f1" in over["onnx-int8-routed"]
