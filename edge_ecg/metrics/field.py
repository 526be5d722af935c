"""The field's standard metrics per database, numpy only (evaluate --bundle runs without torch).

Windows are grouped by the database their record comes from (the record id's prefix):
- cinc2017: one call per RECORDING, the mean of its windows' class probabilities, scored as the
  challenge does: the F1 of N, A and O and their mean `challenge_f1` (Clifford et al. 2017). A
  recording too short for one window still counts, as a miss of its class.
- ptbxl, ludb: age MAE (y), sex AUC and F1, rhythm macro F1 (classes present), per record.
- mitdb: RR MAE (ms) per window, and AF episodes as EC57 scores them: episode sensitivity
  (reference AF episodes overlapped by a detected one) and positive predictivity (detected
  episodes overlapping a reference one), plus duration sensitivity and positive predictivity.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from edge_ecg.data.provenance import source_of
from edge_ecg.metrics.tasks import f1_binary, macro_f1, task_metrics

# CinC classes scored by the challenge (the noisy class is predicted but not in the mean).
CHALLENGE = (("N", "normal_sinus"), ("A", "af_or_flutter"), ("O", "other_rhythm"))


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the rank statistic (ties averaged); NaN with one class only."""
    from scipy.stats import rankdata

    y = np.asarray(y).astype(bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _per_record(idx: list[int], meta: list[dict]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i in idx:
        groups[meta[i]["record"]].append(i)
    return groups


def cinc_scores(classes, outputs, labels, meta, idx, records: dict) -> dict:
    prob = np.asarray(outputs["arrhythmia"], dtype=np.float64)
    y = np.asarray(labels["arrhythmia"], dtype=np.float64)
    calls, truth = [], []
    for rec, rows in _per_record(idx, meta).items():
        ok = [i for i in rows if np.isfinite(y[i])]
        if not ok:
            continue
        truth.append(int(y[ok[0]]))
        calls.append(int(np.argmax(prob[ok].mean(0))))
    # Recordings listed by the source but too short for a window: a miss of their class.
    missed = [info["labels"]["arrhythmia"] for rec, info in records.items()
              if rec.startswith("cinc-") and info.get("unscored")
              and np.isfinite(info["labels"].get("arrhythmia", np.nan))]
    truth += [int(t) for t in missed]
    calls += [-1] * len(missed)
    truth_a, calls_a = np.asarray(truth), np.asarray(calls)
    out: dict = {"recordings": len(truth)}
    f1s = []
    for short, name in CHALLENGE:
        if name not in classes:
            continue
        c = classes.index(name)
        f = f1_binary((truth_a == c).astype(int), (calls_a == c).astype(int))
        out[f"f1_{short}"] = f
        f1s.append(f)
    out["challenge_f1"] = float(np.mean(f1s)) if f1s else float("nan")
    out["confusion"] = confusion(truth_a, calls_a, len(classes))
    return out


def confusion(truth: np.ndarray, calls: np.ndarray, n: int) -> list[list[int]]:
    """Rows: reference class, columns: call (a last column counts records with no call)."""
    m = np.zeros((n, n + 1), dtype=int)
    for t, c in zip(truth, calls):
        m[t, c if c >= 0 else n] += 1
    return m.tolist()


def _record_pairs(values, labels, groups) -> tuple[np.ndarray, np.ndarray]:
    """(mean output over a record's windows, the record's label) for every labelled record."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64)
    pairs = [(v[r].mean(), y[r[0]]) for r in groups.values() if np.isfinite(y[r[0]])]
    p, t = np.asarray(pairs, dtype=np.float64).reshape(-1, 2).T
    return p, t


def record_scores(tasks, outputs, labels, meta, idx) -> dict:
    """ptbxl / ludb: one value per record (its windows averaged)."""
    out: dict = {"records": 0}
    groups = _per_record(idx, meta)
    out["records"] = len(groups)
    names = {t.name: t for t in tasks}
    if "age" in names and "age" in outputs:
        p, t = _record_pairs(outputs["age"], labels["age"], groups)
        if t.size:
            out.update(age_mae=float(np.mean(np.abs(p - t))), age_n=int(t.size))
    if "sex" in names and "sex" in outputs:
        p, t = _record_pairs(outputs["sex"], labels["sex"], groups)
        if t.size:
            out.update(sex_auc=auc(t, p), sex_f1=f1_binary(t.astype(int), (p >= 0.5).astype(int)),
                       sex_n=int(t.size))
    if "arrhythmia" in names and "arrhythmia" in outputs:
        prob = np.asarray(outputs["arrhythmia"], dtype=np.float64)
        y = np.asarray(labels["arrhythmia"], dtype=np.float64)
        pairs = [(int(np.argmax(prob[r].mean(0))), int(y[r[0]])) for r in groups.values()
                 if np.isfinite(y[r[0]])]
        if pairs:
            p, t = np.asarray(pairs).T
            out["rhythm_macro_f1"] = macro_f1(t, p)
            out["rhythm_n"] = len(pairs)
    return out


def _merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1] + 1e-9:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _overlap(a: tuple[float, float], bs: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(a[1], b[1]) - max(a[0], b[0])) for b in bs)


def af_episode_scores(classes, outputs, meta, idx, records: dict, window_s: float) -> dict:
    """EC57-style AF episode and duration Se / +P over records with rhythm annotations."""
    if "af_or_flutter" not in classes:
        return {}
    c = classes.index("af_or_flutter")
    prob = np.asarray(outputs["arrhythmia"], dtype=np.float64)
    ep_tp_ref = ep_ref = ep_tp_det = ep_det = 0
    dur_ref = dur_det = dur_both = 0.0
    for rec, rows in _per_record(idx, meta).items():
        info = records.get(rec, {})
        if "af_episodes_s" not in info:
            continue
        ref = _merge([tuple(e) for e in info["af_episodes_s"]])
        det = _merge([(meta[i]["start_s"], meta[i]["start_s"] + window_s) for i in rows
                      if int(np.argmax(prob[i])) == c])
        # Score only the span the windows cover (the tail shorter than a window is unseen).
        span = (min(meta[i]["start_s"] for i in rows),
                max(meta[i]["start_s"] for i in rows) + window_s)
        ref = [(max(a, span[0]), min(b, span[1])) for a, b in ref if min(b, span[1]) > max(a, span[0])]
        ep_ref += len(ref)
        ep_tp_ref += sum(1 for r in ref if _overlap(r, det) > 0)
        ep_det += len(det)
        ep_tp_det += sum(1 for d in det if _overlap(d, ref) > 0)
        dur_ref += sum(b - a for a, b in ref)
        dur_det += sum(b - a for a, b in det)
        dur_both += sum(_overlap(r, det) for r in ref)
    nan = float("nan")
    return {"af_episodes": ep_ref, "af_detected_episodes": ep_det,
            "af_episode_se": ep_tp_ref / ep_ref if ep_ref else nan,
            "af_episode_ppv": ep_tp_det / ep_det if ep_det else nan,
            "af_duration_se": dur_both / dur_ref if dur_ref else nan,
            "af_duration_ppv": dur_both / dur_det if dur_det else nan,
            "af_minutes": dur_ref / 60.0}


def field_metrics(tasks, outputs: dict, dataset, window_s: float) -> dict:
    """`{source: {metric: value}}` for every database present in the data set, plus the
    per-task window metrics of the whole set under "windows"."""
    labels, meta = dataset.labels, dataset.meta
    by_source: dict[str, list[int]] = defaultdict(list)
    for i, m in enumerate(meta):
        by_source[source_of(m["record"])].append(i)
    classes = tasks["arrhythmia"].labels if "arrhythmia" in tasks.names else ()
    result: dict = {"windows": task_metrics(tasks, outputs, labels)}
    for src, idx in by_source.items():
        sel = np.asarray(idx)
        sub_out = {k: np.asarray(v)[sel] for k, v in outputs.items()}
        sub_lab = {k: np.asarray(v)[sel] for k, v in labels.items()}
        res: dict = {"windows": len(idx), "tasks": task_metrics(tasks, sub_out, sub_lab)}
        if src == "cinc2017" and "arrhythmia" in outputs:
            res.update(cinc_scores(classes, outputs, labels, meta, idx, dataset.records))
        if src in ("ptbxl", "ludb"):
            res.update(record_scores(tasks, outputs, labels, meta, idx))
        if src == "mitdb":
            rr = res["tasks"].get("rr_interval", {})
            if "mae" in rr:
                res["rr_mae_ms"] = rr["mae"]
            if "arrhythmia" in outputs:
                res.update(af_episode_scores(classes, outputs, meta, idx, dataset.records,
                                             window_s))
        result[src] = res
    return result
