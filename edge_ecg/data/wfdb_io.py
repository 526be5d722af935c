"""Writing synthetic records as WFDB (signals, R-peak annotations) and EnECG label lines.

Samples are stored as integers with one gain for all leads: format 16 at 1000 counts/mV (1 uV
resolution, +-32.7 mV range), format 212 at 400 counts/mV (2.5 uV, +-5.1 mV); the gain drops
only when a record would not fit. Beat annotations use MIT-BIH symbols ('N', 'A', 'V', and
'/' for paced), so `edge-ecg beats` and the MIT-BIH loader read them back.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edge_ecg.data.synth import SynthRecord
from edge_ecg.errors import SignalError

FORMATS = {"16": (1000.0, 32767), "212": (400.0, 2047)}   # fmt -> (preferred gain, max count)
ANNOTATION_SYMBOL = {"N": "N", "A": "A", "V": "V", "P": "/"}


def write_record(rec: SynthRecord, out_dir: str | Path, name: str, fmt: str = "16",
                 annotations: bool = True) -> Path:
    """Write `<out_dir>/<name>.hea/.dat` (and `.atr` beats); returns the record path."""
    import wfdb

    if fmt not in FORMATS:
        raise SignalError(f"WFDB format must be one of {sorted(FORMATS)}, got {fmt!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gain, limit = FORMATS[fmt]
    peak = float(np.max(np.abs(rec.signal))) if rec.signal.size else 0.0
    if peak * gain > limit:
        gain = float(np.floor(limit / peak))
        if gain < 1:
            raise SignalError(f"record {name}: {peak:.1f} mV does not fit format {fmt}")
    d = np.round(rec.signal.astype(np.float64) * gain).astype(np.int32)
    n_leads = d.shape[1]
    lab = rec.labels
    comments = [
        "synthetic ECG (edge-ecg dipole model), not a patient recording",
        f"age: {lab['age']}", f"sex: {'F' if lab['gender'] == 1 else 'M'}",
        f"condition: {lab['condition']}", f"potassium: {lab['potassium']}",
        f"seed: {lab.get('seed')}", f"snr_db: {lab.get('snr_db')}",
    ]
    wfdb.wrsamp(name, fs=float(rec.fs_hz), units=["mV"] * n_leads, sig_name=list(rec.leads),
                d_signal=d, fmt=[fmt] * n_leads, adc_gain=[gain] * n_leads,
                baseline=[0] * n_leads, comments=comments, write_dir=str(out_dir))
    if annotations and rec.r_peaks.size:
        wfdb.wrann(name, "atr", sample=np.asarray(rec.r_peaks, dtype=np.int64),
                   symbol=[ANNOTATION_SYMBOL[t] for t in rec.beat_types],
                   write_dir=str(out_dir), fs=float(rec.fs_hz))
    return out_dir / name


def _report_index(condition: str) -> int:
    from edge_ecg.data.rhythms import rhythm_table

    return rhythm_table().enecg_report_labels.index(condition)


def label_line(rec: SynthRecord, ecg_path: str, study_id: int) -> dict:
    """An EnECG-style label line for a written record (plus condition/potassium for people)."""
    lab = rec.labels
    return {
        "ecg_path": ecg_path, "subject_id": lab["subject_id"], "study_id": study_id,
        "rr_interval": round(float(lab["rr_interval"]), 3), "age": lab["age"],
        "gender": int(lab["gender"]), "flag": int(lab["flag"]),
        # EnECG's report_label: the index of the machine-report label (the generator's
        # condition names are those labels; rhythms.toml maps them to rhythm classes).
        "report_label": _report_index(lab["condition"]), "condition": lab["condition"],
        "potassium": lab["potassium"],
    }


def write_label_table(lines: list[dict], path: str | Path) -> Path:
    path = Path(path)
    path.write_text("".join(json.dumps(obj) + "\n" for obj in lines), encoding="utf-8")
    return path
