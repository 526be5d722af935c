"""On real records: a short training run learns AF from CinC 2017 recordings of patients it
never saw, and `evaluate --json` reports the field's metrics per database."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edge_ecg.data.dataset import load_dataset
from edge_ecg.data.tasks import DEFAULT_TASKS
from edge_ecg.metrics.field import auc, field_metrics
from edge_ecg.model.checkpoint import save_checkpoint
from edge_ecg.model.config import ECGMoEConfig
from edge_ecg.model.evaluation import predict
from edge_ecg.model.training import TrainSettings, train
from edge_ecg.signal.contract import SignalContract

SMALL = SignalContract(fs_hz=100.0)
TASKS = DEFAULT_TASKS.select(["rr_interval", "arrhythmia"])


@pytest.fixture(scope="module")
def cinc_af(shared_data, tmp_path_factory):
    """The first 70 normal and 70 AF recordings of CinC 2017 (a folder of links with its own
    REFERENCE.csv); patients in fold 0 are the test set, the rest train."""
    from edge_ecg.data.cinc2017 import read_reference
    from edge_ecg.data.folds import subject_fold

    rows = read_reference(shared_data / "cinc2017")
    keep = [r for r in rows if r.letter == "N"][:70] + [r for r in rows if r.letter == "A"][:70]
    folder = tmp_path_factory.mktemp("cinc")
    for r in keep:
        for f in (shared_data / "cinc2017").glob(f"{r.record}*"):
            (folder / f.name).symlink_to(f)
    (folder / "REFERENCE.csv").write_text("".join(f"{r.record},{r.letter}\n" for r in keep))
    ds = load_dataset(f"cinc2017:{folder}", SMALL, TASKS, progress=False, compact=True)
    test = np.array([subject_fold(s) == 0 for s in ds.subjects])
    return ds.subset(~test), ds.subset(test)


@pytest.mark.needs_data("cinc2017")
def test_short_training_on_real_records_learns_af(cinc_af, tmp_path):
    torch.set_num_threads(2)
    train_ds, test_ds = cinc_af
    assert set(train_ds.subjects).isdisjoint(test_ds.subjects)
    cfg = ECGMoEConfig.preset("tiny", TASKS, contract=SMALL)
    res = train(cfg, train_ds, test_ds.subset(np.arange(0)),
                TrainSettings(epochs=3, pretrain_epochs=1, batch_size=16, lr=1e-2,
                              progress=False), log=lambda s: None)
    h = res.history
    assert h.train_loss[-1] < h.first_loss, (h.first_loss, h.train_loss)
    out = predict(res.model, test_ds.inputs)
    af = DEFAULT_TASKS["arrhythmia"].labels.index("af_or_flutter")
    y = test_ds.labels["arrhythmia"] == af
    # chance is 0.5; AF's irregular RR is easy to see even for the tiny model at 100 Hz
    assert auc(y, out["arrhythmia"][:, af]) > 0.85
    m = field_metrics(cfg.task_set, out, test_ds, cfg.contract.window_s)["cinc2017"]
    assert m["recordings"] == len(set(test_ds.subjects)) and m["f1_A"] > 0.6


@pytest.mark.needs_data("cinc2017", "ludb", "ptbxl", "mitdb/201")
def test_evaluate_json_reports_the_fields_metrics_per_database(shared_data, tmp_path, capsys):
    from edge_ecg.cli import main
    from edge_ecg.model.moe import ECGMoE

    torch.manual_seed(0)
    save_checkpoint(ECGMoE(ECGMoEConfig.preset("tiny", contract=SMALL)), tmp_path)
    spec = (f"cinc2017:{shared_data}/cinc2017?limit=6;ludb:{shared_data}/ludb?limit=4;"
            f"ptbxl:{shared_data}/ptbxl?limit=3;mitdb:{shared_data}/mitdb/201?seconds=420")
    assert main(["evaluate", "--checkpoint", str(tmp_path), "--data", spec, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["windows"]) == set(DEFAULT_TASKS.names)
    c = doc["cinc2017"]
    assert c["recordings"] == 6 and {"f1_N", "f1_A", "f1_O", "challenge_f1"} <= set(c)
    assert np.array(c["confusion"]).sum() == 6
    for db, n in (("ludb", 4), ("ptbxl", 3)):
        assert doc[db]["records"] == n
        assert {"age_mae", "sex_auc", "sex_f1", "rhythm_macro_f1"} <= set(doc[db])
    m = doc["mitdb"]
    assert m["af_episodes"] == 1 and {"rr_mae_ms", "af_episode_se", "af_episode_ppv",
                                     "af_duration_se"} <= set(m)
    assert doc["n_windows"] == sum(doc[k]["windows"] for k in ("cinc2017", "ludb", "ptbxl",
                                                                "mitdb"))
