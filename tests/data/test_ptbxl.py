"""PTB-XL: the database table, SCP statements -> arrhythmia classes, records (fixtures here)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import wfdb

from edge_ecg.data.dataset import load_dataset
from edge_ecg.data.ptbxl import parse_scp_codes, read_database, scp_to_class
from edge_ecg.data.synth import synthesize
from edge_ecg.data.tasks import DEFAULT_TASKS
from edge_ecg.errors import RecordError
from edge_ecg.signal.contract import SignalContract

CLASSES = DEFAULT_TASKS["arrhythmia"].labels
COLUMNS = ["ecg_id", "patient_id", "age", "sex", "height", "weight", "scp_codes",
           "filename_lr", "filename_hr"]


def _write_folder(tmp_path, rows):
    with open(tmp_path / "ptbxl_database.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow(r)
    return tmp_path


def _row(i, patient, age, sex, codes):
    return [i, patient, age, sex, "", "", codes, f"records100/00000/{i:05d}_lr",
            f"records500/00000/{i:05d}_hr"]


@pytest.mark.parametrize("codes, cls", [
    ({"NORM": 100.0, "SR": 0.0}, "normal_sinus"),
    ({"IMI": 80.0, "SR": 0.0}, "normal_sinus"),
    ({"SBRAD": 0.0}, "normal_sinus"),
    ({"STACH": 0.0, "NORM": 100.0}, "normal_sinus"),
    ({"SARRH": 0.0}, "normal_sinus"),
    ({"AFIB": 0.0, "CLBBB": 100.0}, "af_or_flutter"),
    ({"AFLT": 0.0}, "af_or_flutter"),
    ({"SVARR": 0.0}, "other_rhythm"),
    ({"BIGU": 0.0, "SR": 0.0}, "other_rhythm"),
    ({"PACE": 100.0, "AFIB": 0.0}, "af_or_flutter"),      # AF decides before pacing
    ({"PACE": 100.0}, "other_rhythm"),
    ({"IRBBB": 100.0, "SR": 0.0}, "normal_sinus"),        # a conduction statement is no rhythm
    ({"PSVT": 0.0}, "other_rhythm"),
    ({"LVH": 50.0}, None),                                 # no rhythm statement: unlabelled
    ({"PVC": 100.0}, None),
])
def test_scp_codes_map_to_classes(codes, cls):
    assert scp_to_class(codes) == cls


@pytest.mark.parametrize("text", ["__import__('os').system('echo pwned')", "{'NORM': x}",
                                  "['NORM']", "{1: 2}", "{'NORM': 'high'}"])
def test_scp_codes_are_data_never_code(text):
    with pytest.raises(RecordError, match="scp_codes"):
        parse_scp_codes(text, "ptbxl_database.csv:2")


def test_folder_loads_with_labels_and_patients(tmp_path):
    rows = [_row(1, 15709.0, 56.0, 1, "{'NORM': 100.0, 'SR': 0.0}"),
            _row(2, 13243.0, 300.0, 0, "{'AFIB': 0.0, 'LVH': 50.0}"),
            _row(3, 15709.0, 57.0, 1, "{'CRBBB': 100.0}")]    # no rhythm statement
    folder = _write_folder(tmp_path, rows)
    for (i, cond) in ((1, "sinus_rhythm"), (2, "atrial_fibrillation"),
                      (3, "right_bundle_branch_block")):
        rec = synthesize(cond, seconds=10, seed=i)
        out = folder / "records500" / "00000"
        out.mkdir(parents=True, exist_ok=True)
        wfdb.wrsamp(f"{i:05d}_hr", fs=500, units=["mV"] * 12, sig_name=list(rec.leads),
                    p_signal=rec.signal.astype(np.float64), fmt=["16"] * 12,
                    adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(out))
    entries = read_database(folder)
    assert entries[1].age == 90.0                           # PTB-XL's 300 = "90 or older"
    ds = load_dataset(str(folder), SignalContract(), DEFAULT_TASKS, progress=False)
    assert len(ds) == 3
    assert ds.subjects.tolist() == ["ptbxl-15709", "ptbxl-13243", "ptbxl-15709"]
    y = ds.labels["arrhythmia"]
    assert [CLASSES[int(i)] for i in y[:2]] == ["normal_sinus", "af_or_flutter"]
    assert np.isnan(y[2])                               # CRBBB alone names no rhythm
    assert ds.labels["sex"].tolist() == [1, 0, 1]
    assert ds.labels["age"].tolist() == [56, 90, 57]
    assert np.isnan(ds.labels["rr_interval"]).all() and np.isnan(ds.labels["potassium"]).all()
    train, val = ds.split(0.5, seed=3)
    assert set(train.subjects).isdisjoint(val.subjects)
    # the low-rate files are named but absent: every record skipped, then an error
    with pytest.raises(RecordError, match="records100"), pytest.warns(UserWarning):
        load_dataset(f"{folder}?rate=lr", SignalContract(), DEFAULT_TASKS, progress=False)


def test_table_errors_name_the_row(tmp_path):
    folder = _write_folder(tmp_path, [_row(1, 1.0, 50, 2, "{'NORM': 100.0}")])
    with pytest.raises(RecordError, match=r"ptbxl_database.csv:2: sex"):
        read_database(folder)
    (tmp_path / "ptbxl_database.csv").write_text("ecg_id,age\n1,50\n")
    with pytest.raises(RecordError, match="missing column"):
        read_database(folder)
    with pytest.raises(RecordError, match="rate"):
        read_database(folder, rate="mid")
