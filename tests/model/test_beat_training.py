"""On real beats: per-beat labels sit on the detected beats, and a short training run of the
per-beat head separates ventricular from normal beats of a patient it never saw."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_ecg.data.dataset import load_dataset
from edge_ecg.data.tasks import DEFAULT_TASKS
from edge_ecg.metrics.field import auc
from edge_ecg.model.config import ECGMoEConfig
from edge_ecg.model.evaluation import predict
from edge_ecg.model.training import TrainSettings, train
from edge_ecg.signal.contract import SignalContract

SMALL = SignalContract(fs_hz=100.0)
TASKS = DEFAULT_TASKS.select(["beat", "rr_interval"])
V = DEFAULT_TASKS["beat"].labels.index("V")
N = DEFAULT_TASKS["beat"].labels.index("N")


def _mitdb(shared_data, records, seconds, hop=10):
    d = shared_data / "mitdb"
    spec = "mitdb:" + ",".join(str(d / r) for r in records) + f"?seconds={seconds}&hop={hop}"
    return load_dataset(spec, SMALL, TASKS, progress=False)


def test_beat_labels_follow_the_reference_classes(shared_data):
    """Record 119 (bigeminy): the labelled slots are the reference's N and V, one per detected
    beat slot, none on an empty slot; paced record 107 gets no class at all."""
    ds = _mitdb(shared_data, ["119"], 120)
    y, mask = ds.labels["beat"], ds.inputs["beat_mask"] > 0
    assert y.shape == mask.shape
    assert np.isnan(y[~mask]).all()
    lab = y[mask]
    assert np.isfinite(lab).mean() > 0.98
    counts = np.bincount(lab[np.isfinite(lab)].astype(int), minlength=5)
    assert counts[N] > 50 and counts[V] > 15 and counts[[1, 3, 4]].sum() == 0
    paced = _mitdb(shared_data, ["107"], 60)
    assert np.isnan(paced.labels["beat"]).all()


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_short_training_separates_v_from_n_on_an_unseen_patient(shared_data):
    torch.set_num_threads(2)
    train_ds = _mitdb(shared_data, ["119", "208", "203"], 300)
    test_ds = _mitdb(shared_data, ["106"], 300)
    cfg = ECGMoEConfig.preset("tiny", TASKS, contract=SMALL)
    res = train(cfg, train_ds, test_ds.subset(np.arange(0)),
                TrainSettings(epochs=5, pretrain_epochs=0, batch_size=8, lr=1e-2,
                              progress=False), log=lambda s: None)
    assert res.history.train_loss[-1] < res.history.first_loss
    out = predict(res.model, test_ds.inputs)["beat"]                  # (N, M, 5)
    y = test_ds.labels["beat"]
    ok = np.isfinite(y) & np.isin(y, [N, V])
    assert (y[ok] == V).sum() > 50
    # chance is 0.5: a PVC is early, wide and unlike the window's other beats
    assert auc(y[ok] == V, out[ok][:, V]) > 0.85
