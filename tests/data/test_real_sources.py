"""The real-data sources (CinC 2017, LUDB, PTB-XL, MIT-BIH), folds, mixtures and recipes.

Each loader runs on a small folder of the database's layout that the test writes, and on the
shared records where they are present (skipped with a reason otherwise)."""

from __future__ import annotations

import numpy as np
import pytest
import wfdb

from edge_ecg.data.cinc2017 import read_reference
from edge_ecg.data.dataset import load_dataset
from edge_ecg.data.folds import subject_fold
from edge_ecg.data.ludb import read_entries
from edge_ecg.data.rhythms import ludb_class, parse_table, rhythm_table
from edge_ecg.data.specs import read_recipe
from edge_ecg.data.synth import synthesize
from edge_ecg.data.tasks import DEFAULT_TASKS
from edge_ecg.errors import RecordError
from edge_ecg.signal.contract import SignalContract

C = SignalContract(fs_hz=250.0)
CLASSES = DEFAULT_TASKS["arrhythmia"].labels


def _names(ds):
    return [None if np.isnan(v) else CLASSES[int(v)] for v in ds.labels["arrhythmia"]]


def _write_cinc(folder, rows, seconds=21.0):
    folder.mkdir(parents=True, exist_ok=True)
    for k, (name, letter) in enumerate(rows):
        rec = synthesize("sinus_rhythm", seconds=seconds, fs_hz=300.0, seed=k)
        lead_i = rec.signal[:, rec.leads.index("I")].astype(np.float64)[:, None]
        wfdb.wrsamp(name, fs=300, units=["mV"], sig_name=["ECG"], p_signal=lead_i, fmt=["16"],
                    adc_gain=[1000.0], baseline=[0], write_dir=str(folder))
    (folder / "REFERENCE.csv").write_text("".join(f"{n},{c}\n" for n, c in rows))
    return folder


def test_rhythm_table_matches_the_task_and_is_complete():
    table = rhythm_table()
    assert table.classes == CLASSES
    assert set(table.cinc2017) == {"N", "A", "O", "~"}
    from edge_ecg.data.synth import CONDITIONS
    assert set(CONDITIONS) <= set(table.synth)
    assert len(table.enecg_report_labels) == 15
    with pytest.raises(RecordError, match="not in classes"):
        parse_table({"classes": ["a"], "cinc2017": {"N": "b"}, "ptbxl": [], "ludb": [],
                     "mitdb": {}, "synth": {}})


def test_ludb_rhythm_mapping():
    assert ludb_class("Sinus bradycardia.", "x") == "normal_sinus"
    assert ludb_class("Atrial fibrillation\nAberrant conduction", "x") == "af_or_flutter"
    assert ludb_class("Sinus rhythm\nWandering atrial pacemaker", "x") == "other_rhythm"
    assert ludb_class("", "x") is None
    with pytest.raises(RecordError, match="unknown LUDB rhythm 'torsades'"):
        ludb_class("Torsades", "ludb.csv (ID 7)")


def test_cinc_folder_loads_with_per_recording_labels(tmp_path):
    folder = _write_cinc(tmp_path / "cinc", [("A1", "N"), ("A2", "A"), ("A3", "~")])
    ds = load_dataset(f"cinc2017:{folder}", C, DEFAULT_TASKS, progress=False)
    assert len(ds) == 6 and sorted(set(ds.subjects)) == ["cinc-A1", "cinc-A2", "cinc-A3"]
    assert _names(ds) == ["normal_sinus"] * 2 + ["af_or_flutter"] * 2 + ["too_noisy"] * 2
    # one lead, named I (AliveCor: the hands), the other eleven masked
    assert ds.inputs["lead_mask"][0].tolist() == [True] + [False] * 11
    for task in ("rr_interval", "age", "sex", "potassium"):
        assert np.isnan(ds.labels[task]).all()


@pytest.mark.parametrize("content, match", [
    (None, "REFERENCE.csv"), ("A1,N\nA2,X\n", "unknown CinC 2017 label 'X'"),
    ("A1\n", "expected 'record,label'")])
def test_bad_cinc_folder_is_named(tmp_path, content, match):
    folder = _write_cinc(tmp_path / "cinc", [("A1", "N")])
    if content is None:
        (folder / "REFERENCE.csv").unlink()
    else:
        (folder / "REFERENCE.csv").write_text(content)
    with pytest.raises(RecordError, match=match):
        load_dataset(f"cinc2017:{folder}", C, DEFAULT_TASKS, progress=False)


def test_unreadable_cinc_record_is_skipped_and_named(tmp_path):
    folder = _write_cinc(tmp_path / "cinc", [("A1", "N"), ("A2", "O")])
    (folder / "A2.dat").write_bytes(b"\x00\x01")
    with pytest.warns(UserWarning, match="A2"):
        ds = load_dataset(f"cinc2017:{folder}", C, DEFAULT_TASKS, progress=False)
    assert set(ds.subjects) == {"cinc-A1"}


def test_folds_split_by_patient_and_are_stable(tmp_path):
    rows = [(f"B{i:02d}", "N") for i in range(12)]
    folder = _write_cinc(tmp_path / "cinc", rows, seconds=10.0)
    folds = {f"cinc-{n}": subject_fold(f"cinc-{n}") for n, _ in rows}
    assert subject_fold("cinc-B00") == subject_fold("cinc-B00") and set(folds.values()) <= set(
        range(5))
    test = load_dataset(f"cinc2017:{folder}?folds=0,1", C, DEFAULT_TASKS, progress=False)
    train = load_dataset(f"cinc2017:{folder}?folds=2,3,4", C, DEFAULT_TASKS, progress=False)
    assert set(test.subjects).isdisjoint(train.subjects)
    assert set(test.subjects) | set(train.subjects) == set(folds)
    assert all(folds[s] in (0, 1) for s in test.subjects)
    with pytest.raises(RecordError, match="folds must lie in 0..4"):
        load_dataset(f"cinc2017:{folder}?folds=7", C, DEFAULT_TASKS, progress=False)


def test_mixture_weights_and_task_masks(tmp_path):
    folder = _write_cinc(tmp_path / "cinc", [("A1", "N"), ("A2", "A")])
    spec = f"cinc2017:{folder}?weight=3;synth:2?seed=5&tasks=potassium&weight=1"
    ds = load_dataset(spec, C, DEFAULT_TASKS, progress=False)
    src = np.array([m["record"].startswith("cinc") for m in ds.meta])
    assert src.sum() == 4 and (~src).sum() == 2
    p = ds.sampling_p()
    assert p[src].sum() == pytest.approx(0.75) and p[~src].sum() == pytest.approx(0.25)
    # the synthetic windows keep only their potassium label
    assert np.isfinite(ds.labels["potassium"][~src]).all()
    for task in ("arrhythmia", "rr_interval", "age", "sex"):
        assert np.isnan(ds.labels[task][~src]).all()


def test_recipe_file_and_packaged_recipes(tmp_path):
    folder = _write_cinc(tmp_path / "cinc", [("A1", "N")])
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'data = "{tmp_path}"\n[[source]]\nspec = "cinc2017:{{data}}/cinc"\n'
                      'weight = 2\ntasks = ["arrhythmia"]\n')
    parts = read_recipe(str(recipe))
    assert parts == [(f"cinc2017:{folder}", {"weight": 2.0, "tasks": "arrhythmia"})]
    ds = load_dataset(f"recipe:{recipe}", C, DEFAULT_TASKS, progress=False)
    assert len(ds) == 2
    bundled = read_recipe("bundled?data=/d")
    specs = [s for s, _ in bundled]
    assert any(s.startswith("cinc2017:/d/cinc2017?folds=1,2,3,4") for s in specs)
    held = [s for s, _ in read_recipe("heldout?data=/d")]
    assert all("folds=0" in s for s in held if not s.startswith("synth"))
    recipe.write_text('[[source]]\nspec = "x"\nwieght = 2\n')
    with pytest.raises(RecordError, match="unknown key"):
        read_recipe(str(recipe))
    with pytest.raises(RecordError, match="no such file"):
        read_recipe("nonexistent_recipe")


def test_ludb_folder_layout_written(tmp_path):
    data = tmp_path / "ludb" / "data"
    data.mkdir(parents=True)
    rec = synthesize("sinus_rhythm", seconds=10, fs_hz=500.0, seed=4)
    names = ["i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6"]
    order = [rec.leads.index(n) for n in ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2",
                                          "V3", "V4", "V5", "V6")]
    wfdb.wrsamp("1", fs=500, units=["mV"] * 12, sig_name=names,
                p_signal=rec.signal[:, order].astype(np.float64), fmt=["16"] * 12,
                adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(data),
                comments=["<age>: 63", "<sex>: F", "<diagnoses>:", "Rhythm: Sinus rhythm."])
    peaks = rec.r_peaks[(rec.r_peaks > 500) & (rec.r_peaks < 4500)]
    wfdb.wrann("1", "ii", peaks, symbol=["N"] * len(peaks), write_dir=str(data))
    (entry,) = read_entries(tmp_path / "ludb")
    assert (entry.age, entry.sex, entry.label) == (63.0, 1, "normal_sinus")
    ds = load_dataset(f"ludb:{tmp_path / 'ludb'}", C, DEFAULT_TASKS, progress=False)
    assert ds.labels["age"].tolist() == [63] and ds.labels["sex"].tolist() == [1]
    assert ds.labels["rr_interval"][0] == pytest.approx(np.diff(peaks).mean() * 2.0)
    assert ds.inputs["lead_mask"].all()


# -- the shared records -------------------------------------------------------------------------
@pytest.mark.needs_data("cinc2017")
def test_shared_cinc2017(shared_data):
    entries = read_reference(shared_data / "cinc2017")
    counts = {c: sum(e.label == c for e in entries) for c in CLASSES}
    assert len(entries) == 6822 and counts == {"normal_sinus": 4040, "af_or_flutter": 590,
                                               "other_rhythm": 1965, "too_noisy": 227}
    ds = load_dataset(f"cinc2017:{shared_data}/cinc2017?limit=20", C, DEFAULT_TASKS,
                      progress=False)
    assert len(set(ds.subjects)) == 20 and np.isfinite(ds.labels["arrhythmia"]).all()


@pytest.mark.needs_data("ludb", "ptbxl")
def test_shared_ludb_and_ptbxl(shared_data):
    entries = read_entries(shared_data / "ludb")
    assert len(entries) == 160
    assert sum(e.label == "af_or_flutter" for e in entries) == 15
    assert all(e.age is not None and e.sex in (0, 1) for e in entries)
    ds = load_dataset(f"ludb:{shared_data}/ludb?limit=4;ptbxl:{shared_data}/ptbxl?limit=4",
                      C, DEFAULT_TASKS, progress=False)
    assert len(ds) == 8 and np.isfinite(ds.labels["age"]).all()
    assert np.isfinite(ds.labels["rr_interval"][:4]).all()     # LUDB: cardiologists' QRS
    assert np.isnan(ds.labels["rr_interval"][4:]).all()        # PTB-XL: no reference beats


def test_label_provenance_and_kind(tmp_path):
    from edge_ecg.data.provenance import label_provenance, provenance_kind

    folder = _write_cinc(tmp_path / "cinc", [("A1", "N")])
    ds = load_dataset(f"cinc2017:{folder};synth:2?seed=5&tasks=potassium,rr_interval", C,
                      DEFAULT_TASKS, progress=False)
    prov = label_provenance(ds)
    assert prov["arrhythmia"] == {"cinc2017": 2} and prov["potassium"] == {"synth": 2}
    assert prov["age"] == {}
    assert [provenance_kind(prov[t]) for t in ("arrhythmia", "potassium", "age")] == [
        "real", "synthetic", None]
    assert provenance_kind({"mitdb": 3, "synth": 1}) == "real+synthetic"


def test_recipes_find_the_data_folder(tmp_path, monkeypatch):
    from edge_ecg.data.data_root import default_data_root

    monkeypatch.setenv("EDGE_ECG_DATA", str(tmp_path))
    assert default_data_root() == str(tmp_path)
    assert read_recipe("heldout")[0][0] == f"cinc2017:{tmp_path}/cinc2017?folds=0"
    assert read_recipe("heldout?data=/x")[0][0] == "cinc2017:/x/cinc2017?folds=0"
    monkeypatch.delenv("EDGE_ECG_DATA")
    monkeypatch.chdir(tmp_path)          # no ../shared/data here: beside the repo, or as written
    from pathlib import Path

    beside = Path(__file__).resolve().parents[3] / "shared" / "data"
    assert default_data_root() == (str(beside) if beside.is_dir() else "../shared/data")


@pytest.mark.needs_data("mitdb/201")
def test_write_excerpt_keeps_samples_and_shifts_annotations(shared_data, tmp_path):
    from edge_ecg.data.mitbih import rhythm_intervals, write_excerpt
    from edge_ecg.data.records import beat_annotations, read_record

    src = shared_data / "mitdb" / "201"
    out = write_excerpt(src, 370, 390, tmp_path, name="ex")
    a, b = read_record(src), read_record(out)
    np.testing.assert_array_equal(b.adc, a.adc[370 * 360:390 * 360])
    ref, got = beat_annotations(src), beat_annotations(out)
    inside = (ref.sample >= 370 * 360) & (ref.sample < 390 * 360)
    np.testing.assert_array_equal(got.sample, ref.sample[inside] - 370 * 360)
    # 201's AF ends at 378.4 s: the excerpt opens in the AF in force at its start
    rh = rhythm_intervals(out, b.n_samples)
    assert rh[0][0] == 0 and rh[0][2] == "(AFIB" and rh[1][2] != "(AFIB"


def test_subjects_option_keeps_a_checkpoints_validation_patients(tmp_path):
    rows = [(f"V{i:02d}", "N") for i in range(6)]
    folder = _write_cinc(tmp_path / "cinc", rows, seconds=10.0)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "metrics.json").write_text('{"val_subjects": ["cinc-V01", "cinc-V04", "ptbxl-9"]}')
    ds = load_dataset(f"cinc2017:{folder}?subjects={ckpt}", C, DEFAULT_TASKS, progress=False)
    assert sorted(set(ds.subjects)) == ["cinc-V01", "cinc-V04"]
    # with folds=, both must hold: the validation patients of the listed fold only
    fold = subject_fold("cinc-V01")
    both = load_dataset(f"cinc2017:{folder}?subjects={ckpt}&folds={fold}", C, DEFAULT_TASKS,
                        progress=False)
    assert set(both.subjects) == {s for s in ("cinc-V01", "cinc-V04")
                                  if subject_fold(s) == fold}
    listing = tmp_path / "ids.txt"
    listing.write_text("# two patients\ncinc-V02\n\ncinc-V03  # a comment\n")
    ds = load_dataset(f"cinc2017:{folder}?subjects={listing}", C, DEFAULT_TASKS, progress=False)
    assert sorted(set(ds.subjects)) == ["cinc-V02", "cinc-V03"]
    (ckpt / "metrics.json").write_text('{"val_loss": 1.0}')
    with pytest.raises(RecordError, match="no list of val_subjects"):
        load_dataset(f"cinc2017:{folder}?subjects={ckpt}", C, DEFAULT_TASKS, progress=False)
    with pytest.raises(RecordError, match="no such file"):
        load_dataset(f"cinc2017:{folder}?subjects={tmp_path / 'nope'}", C, DEFAULT_TASKS,
                     progress=False)
    table = tmp_path / "t.jsonl"
    table.write_text("")
    with pytest.raises(RecordError, match="not rows of a .jsonl table"):
        load_dataset(f"{table}?subjects={listing}", C, DEFAULT_TASKS, progress=False)


def test_validation_recipe_needs_its_checkpoint_and_leaves_fold_0_out(tmp_path):
    with pytest.raises(RecordError, match=r"needs option\(s\) \['subjects'\]"):
        read_recipe("validation?data=/d")
    parts = read_recipe(f"validation?data=/d&subjects={tmp_path}")
    assert parts and all(over["subjects"] == str(tmp_path) for _, over in parts)
    # the validation patients come from the training folds; fold 0 is the test
    assert all("folds=1,2,3,4" in s for s, _ in parts if not s.startswith("synth"))
    # the same sources and tasks as the training recipe, CUDB aside (no validation patient)
    bundled = {s.partition("?")[0]: o.get("tasks") for s, o in read_recipe("bundled?data=/d")}
    for spec, over in parts:
        assert over.get("tasks") == bundled[spec.partition("?")[0]]
