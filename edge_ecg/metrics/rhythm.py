"""Run and episode figures as ANSI/AAMI EC57 scores arrhythmia monitors (numpy only).

Runs (EC57 4.2.3, from beat labels): a run is a maximal sequence of consecutive ventricular
beats; two is a couplet, three or more a VT run (EC57 calls them short and long runs at 3-5
and >= 6; both are "VT runs" here). A reference run is detected when a run of the same kind
in the algorithm's beat labels overlaps it in time (run Se); an algorithm run is true when it
overlaps a reference run of the same kind (run +P).

Episodes (EC57 4.2.4, AF and VF): reference episodes from the rhythm annotations, the
algorithm's from its alarms (onset to end). Episode Se: reference episodes overlapped by a
detected one; episode +P: detected episodes overlapping a reference one; duration Se / +P:
the overlap's length over the reference's / the detections' total length.

False alarms per hour: alarm onsets whose episode overlaps no reference episode of the kind,
over the hours scored; false ectopic beats: reference N beats the algorithm called V or S.

Runs are also counted as EC57's run comparator WFDB `rxr` counts them (keys `ec57_couplet_*`,
`ec57_vt_run_*`, with `record_counts(..., ec57_from_s=)`): runs starting in the learning period
(the first 5 min) are not scored; fusion beats continue a ventricular run on both sides
(`rxr`: "V" and "F" extend it); a reference ventricular flutter/fibrillation episode is a
reference run of maximal length, and so is an algorithm's VF alarm: an algorithm VT run inside
a reference episode is true, the episode counts as a reference VT run (found when an algorithm
VT run or VF alarm overlaps it), and a VF alarm is an algorithm VT run; couplets inside either
are not scored. The plain keys stay the strict reading, every run of V beats.
"""

from __future__ import annotations

import numpy as np

VENTRICULAR = frozenset("VE")           # EC57 V class: V and E (ventricular escape)
# the reference runs a red VT alarm must be raised for (`vt_alarm_se`): the monitors' V-Tach
# (Philips IntelliVue's default: a run of >= 5 ventricular beats at >= 100 /min), whatever the
# engine's own `vt_run`
VT_ALARM_BEATS = 5
VT_ALARM_BPM = 100.0
# rhythm notes that start each kind of episode in MIT-BIH / SVDB / CUDB .atr aux_note;
# CUDB marks ventricular flutter / fibrillation with '[' and ']' beat-position symbols
EPISODE_NOTES = {"af": ("(AFIB",), "vf": ("(VF", "(VFL"), "vt": ("(VT",)}


def runs(times: np.ndarray, is_v: np.ndarray) -> list[tuple[float, float, int]]:
    """Maximal runs of consecutive ventricular beats: `(first time, last time, length)`,
    length >= 2."""
    times, is_v = np.asarray(times, dtype=np.float64), np.asarray(is_v, dtype=bool)
    out = []
    k, n = 0, is_v.size
    while k < n:
        if not is_v[k]:
            k += 1
            continue
        j = k
        while j + 1 < n and is_v[j + 1]:
            j += 1
        if j > k:
            out.append((float(times[k]), float(times[j]), j - k + 1))
        k = j + 1
    return out


def _overlaps(a: tuple[float, float], b: tuple[float, float], tol: float) -> bool:
    return a[0] <= b[1] + tol and b[0] <= a[1] + tol


def run_scores(ref_times, ref_is_v, det_times, det_is_v, tol_s: float = 0.15,
               vf: list[tuple[float, float]] | None = None,
               det_vf: list[tuple[float, float]] | None = None, from_s: float = 0.0,
               prefix: str = "") -> dict:
    """Couplet and VT-run Se / +P (counts too) of one record or pooled lists (seconds).
    `tol_s`: EC57's 150-ms beat match window, applied to the runs' ends. With `vf` / `det_vf`
    (the reference's VF/flutter episodes and the algorithm's VF alarms, seconds) and `from_s`
    (the end of the learning period): the `rxr` reading of the module docstring, keys
    prefixed `prefix`."""
    ref, det = runs(ref_times, ref_is_v), runs(det_times, det_is_v)
    ref = [x for x in ref if x[0] >= from_s]
    det = [x for x in det if x[0] >= from_s]
    ref_vf = [(max(a, from_s), b) for a, b in (vf or []) if b > from_s]
    alg_vf = [(max(a, from_s), b) for a, b in (det_vf or []) if b > from_s]
    out = {}
    for kind, sel in (("couplet", lambda r: r[2] == 2), ("vt_run", lambda r: r[2] >= 3)):
        r = [x[:2] for x in ref if sel(x)]
        d = [x[:2] for x in det if sel(x)]
        if kind == "vt_run":                     # VF: a run of maximal length, either side
            r += ref_vf
            d += alg_vf
        else:                                    # couplets inside VF are not compared
            r = [a for a in r if not any(_overlaps(a, e, tol_s) for e in ref_vf + alg_vf)]
            d = [a for a in d if not any(_overlaps(a, e, tol_s) for e in ref_vf + alg_vf)]
        tp_r = sum(any(_overlaps(a, b, tol_s) for b in d) for a in r)
        tp_d = sum(any(_overlaps(a, b, tol_s) for b in r) for a in d)
        out[f"{prefix}{kind}_ref"], out[f"{prefix}{kind}_det"] = len(r), len(d)
        out[f"{prefix}{kind}_tp_ref"], out[f"{prefix}{kind}_tp_det"] = tp_r, tp_d
    return finish_runs(out, prefix)


def finish_runs(c: dict, prefix: str = "") -> dict:
    """Se / +P from the counts (after pooling records by summing them)."""
    nan = float("nan")
    out = dict(c)
    for kind in (f"{prefix}couplet", f"{prefix}vt_run"):
        out[f"{kind}_se"] = c[f"{kind}_tp_ref"] / c[f"{kind}_ref"] if c[f"{kind}_ref"] else nan
        out[f"{kind}_ppv"] = c[f"{kind}_tp_det"] / c[f"{kind}_det"] if c[f"{kind}_det"] else nan
    return out


def merge(intervals) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted((float(a), float(b)) for a, b in intervals):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _overlap_len(a: tuple[float, float], bs) -> float:
    return sum(max(0.0, min(a[1], b[1]) - max(a[0], b[0])) for b in bs)


def episode_counts(ref, det, span: tuple[float, float] | None = None) -> dict:
    """Counts behind episode and duration Se / +P of one record: `ref`, `det` lists of
    `(start, end)` seconds; `span` clips both to what was scored."""
    ref, det = merge(ref), merge(det)
    if span is not None:
        clip = [(max(a, span[0]), min(b, span[1])) for a, b in ref]
        ref = [(a, b) for a, b in clip if b > a]
        clip = [(max(a, span[0]), min(b, span[1])) for a, b in det]
        det = [(a, b) for a, b in clip if b >= a]
    # an instant alarm (onset == end) still counts as overlapping what it lies in
    hit = [(a, max(b, a + 1e-9)) for a, b in det]
    return {"ref": len(ref), "det": len(det),
            "tp_ref": sum(1 for r in ref if _overlap_len(r, hit) > 0),
            "tp_det": sum(1 for d in hit if _overlap_len(d, ref) > 0),
            "ref_s": sum(b - a for a, b in ref), "det_s": sum(b - a for a, b in det),
            "both_s": sum(_overlap_len(r, det) for r in ref)}


def finish_episodes(c: dict, prefix: str) -> dict:
    nan = float("nan")
    return {f"{prefix}_episodes": c["ref"], f"{prefix}_detected": c["det"],
            f"{prefix}_episode_se": c["tp_ref"] / c["ref"] if c["ref"] else nan,
            f"{prefix}_episode_ppv": c["tp_det"] / c["det"] if c["det"] else nan,
            f"{prefix}_duration_se": c["both_s"] / c["ref_s"] if c["ref_s"] else nan,
            f"{prefix}_duration_ppv": c["both_s"] / c["det_s"] if c["det_s"] else nan,
            f"{prefix}_minutes": c["ref_s"] / 60.0}


def pool(counts: list[dict]) -> dict:
    """Sum the count dicts of several records."""
    out: dict = {}
    for c in counts:
        for k, v in c.items():
            out[k] = out.get(k, 0) + v
    return out


def reference_episodes(samples, symbols, aux_notes, kind: str, fs_hz: float,
                       n_samples: int) -> list[tuple[float, float]]:
    """Reference episodes of `kind` ('af', 'vf', 'vt') in seconds from an annotation's
    rhythm notes (an episode lasts until the next rhythm note, or the record's end); for 'vf'
    also CUDB's '[' ... ']' marks."""
    starts = EPISODE_NOTES[kind]
    out, on = [], None
    for s, sym, note in zip(np.asarray(samples), symbols, aux_notes):
        note = (note or "").strip().rstrip("\x00")
        if sym == "+" or note.startswith("("):
            if not note.startswith("("):
                continue
            if on is not None:
                out.append((on, float(s)))
                on = None
            if note in starts:
                on = float(s)
    if on is not None:
        out.append((on, float(n_samples)))
    if kind == "vf":
        on = None
        for s, sym in zip(np.asarray(samples), symbols):
            if sym == "[":
                on = float(s)
            elif sym == "]" and on is not None:
                out.append((on, float(s)))
                on = None
        if on is not None:
            out.append((on, float(n_samples)))
    return merge([(a / fs_hz, b / fs_hz) for a, b in out])


def false_alarms(alarm_spans, ref_spans) -> int:
    """Alarm episodes `(onset, end)` overlapping no reference episode."""
    ref = merge(ref_spans)
    return sum(1 for a, b in alarm_spans if _overlap_len((a, max(b, a + 1e-9)), ref) <= 0)


def false_ectopic(ref_symbols, ref_times, det_times, det_classes, tol_s: float = 0.15) -> int:
    """Reference N-class beats (EC57: N L R e j) the algorithm matched and called V or S."""
    n_cls = frozenset("NLRej")
    rt = np.asarray(ref_times, dtype=np.float64)
    dt = np.asarray(det_times, dtype=np.float64)
    if rt.size == 0 or dt.size == 0:
        return 0
    j = np.clip(np.searchsorted(dt, rt), 1, dt.size - 1) if dt.size > 1 else np.zeros(
        rt.size, np.int64)
    if dt.size > 1:
        j = np.where(np.abs(dt[j - 1] - rt) <= np.abs(dt[j] - rt), j - 1, j)
    near = np.abs(dt[j] - rt) <= tol_s
    cls = np.asarray(det_classes, dtype=object)[j]
    return int(sum(1 for s, ok, c in zip(ref_symbols, near, cls)
                   if ok and s in n_cls and c in ("V", "S")))


BEAT_SYMBOLS = frozenset("NLRejAaJSVEFf/Q")       # EC57 beat labels (the rest are notes)


def alarm_spans(alarms, code: str, fs_hz: float, n_samples: int) -> list[tuple[float, float]]:
    """`(onset, end)` seconds of the alarm episodes of `code` from a stream's alarm events
    (JSON dicts, onset and end); one still on at the end lasts to the record's end."""
    out, open_on = [], None
    for a in alarms:
        if a.get("code") != code:
            continue
        if a.get("state") == "onset":
            open_on = a["onset_index"]
        elif a.get("state") == "end":
            out.append((a["onset_index"] / fs_hz, a.get("end_index", a["index"]) / fs_hz))
            open_on = None
    if open_on is not None:
        out.append((open_on / fs_hz, n_samples / fs_hz))
    return out


def record_counts(ref_samples, ref_symbols, ref_aux, det_samples, det_classes, alarms,
                  fs_hz: float, n_samples: int, classified: bool = True,
                  ec57_from_s: float | None = None) -> dict:
    """Everything one record adds to the figures (counts, pooled over records by `pool`):
    runs (when the reference beats carry classes; also the `rxr` reading, `ec57_*`, from
    `ec57_from_s` on when given), AF and VF episodes, false VT / VF / AF alarms, and, on a
    record whose rhythm is sinus throughout, its hours, false ectopic beats and every
    high-priority alarm. AF needs the rhythm annotated: a record with no rhythm note adds no
    AF episode, no false AF alarm and no sinus hours, only its AF alarms as unscored. False VT
    needs classified beats: a record without (`classified=False`, CUDB) adds no VT hours, and
    its VT alarms outside its annotated VT and VF as unscored."""
    ref_samples = np.asarray(ref_samples)
    sym = list(ref_symbols)
    aux = list(ref_aux)
    keep = ref_samples < n_samples
    ref_samples, sym, aux = ref_samples[keep], [s for s, k in zip(sym, keep) if k], \
        [a for a, k in zip(aux, keep) if k]
    beat = np.array([s in BEAT_SYMBOLS for s in sym], bool)
    rt = ref_samples[beat] / fs_hz
    rsym = [s for s, b in zip(sym, beat) if b]
    dt = np.asarray(det_samples, dtype=np.float64) / fs_hz
    dcls = list(det_classes)
    hours = n_samples / fs_hz / 3600.0
    span = (0.0, n_samples / fs_hz)
    out: dict = {"records": 1, "hours": hours}
    if classified:
        rv = np.array([s in VENTRICULAR for s in rsym], bool)
        dv = np.array([c == "V" for c in dcls], bool)
        rs = run_scores(rt, rv, dt, dv)
        out.update({k: v for k, v in rs.items() if not k.endswith(("_se", "_ppv"))})
    ref_ep = {k: reference_episodes(ref_samples, sym, aux, k, fs_hz, n_samples)
              for k in ("af", "vf", "vt")}
    if classified and ec57_from_s is not None:
        rv = np.array([s in VENTRICULAR or s == "F" for s in rsym], bool)
        dv = np.array([c in ("V", "F") for c in dcls], bool)
        rs = run_scores(rt, rv, dt, dv, vf=ref_ep["vf"], from_s=ec57_from_s, prefix="ec57_",
                        det_vf=alarm_spans(alarms, "vf", fs_hz, n_samples))
        out.update({k: v for k, v in rs.items() if not k.endswith(("_se", "_ppv"))})
    notes = {a.strip().rstrip("\x00") for a in aux if a and a.startswith("(")}
    # AF is a rhythm, annotated only by rhythm notes: a record whose annotation has none (the
    # SVDB files here) says nothing of AF, so its AF alarms are neither true nor false, and
    # it is not "sinus throughout" either
    rhythm_known = bool(notes)
    for kind, code in (("af", "new_af"), ("vf", "vf")):
        if kind == "af" and not rhythm_known:
            continue
        c = episode_counts(ref_ep[kind], alarm_spans(alarms, code, fs_hz, n_samples), span)
        out.update({f"{kind}_{k}": v for k, v in c.items()})
    # a VT alarm is true where the reference has a ventricular run of >= 3 or a (VT / VF
    # episode (CUDB's VT before fibrillation is annotated as rhythm, its beats all 'N')
    vt_ref = list(ref_ep["vt"]) + list(ref_ep["vf"])
    v_runs = runs(rt, np.array([s in VENTRICULAR for s in rsym], bool)) if classified else []
    vt_ref += [(a - 0.15, b + 0.15) for a, b, n in v_runs if n >= 3]
    vt_spans = alarm_spans(alarms, "vt", fs_hz, n_samples)
    nsvt_spans = alarm_spans(alarms, "nsvt", fs_hz, n_samples)
    if classified:
        out["vt_hours"] = hours
        out["false_vt_alarms"] = false_alarms(vt_spans, vt_ref)
        # non-sustained VT (a fast run of 3-4 V beats, a medium alarm) is scored as VT is
        out["false_nsvt_alarms"] = false_alarms(nsvt_spans, vt_ref)
    else:
        # beats without classes (CUDB labels every beat N, and annotates its VT only now and
        # then as rhythm): a VT alarm outside the known VT and VF is neither true nor false
        out["vt_alarms_unscored"] = (false_alarms(vt_spans, vt_ref)
                                     + false_alarms(nsvt_spans, vt_ref))
    if classified:
        # the red alarm's own sensitivity: reference runs of >= VT_ALARM_BEATS ventricular
        # beats at >= VT_ALARM_BPM that a VT alarm overlaps, or (`_any`) a VT or non-sustained
        # VT alarm (where the classifier broke the run into pieces)
        long_fast = [(a - 0.15, b + 0.15) for a, b, n in v_runs
                     if n >= VT_ALARM_BEATS and b > a
                     and 60.0 * (n - 1) / (b - a) >= VT_ALARM_BPM]
        red, either = merge(vt_spans), merge(vt_spans + nsvt_spans)
        out["vt_alarm_ref"] = len(long_fast)
        out["vt_alarm_tp"] = sum(1 for sp in long_fast if _overlap_len(sp, red) > 0)
        out["vt_alarm_tp_any"] = sum(1 for sp in long_fast if _overlap_len(sp, either) > 0)
    out["false_vf_alarms"] = false_alarms(alarm_spans(alarms, "vf", fs_hz, n_samples),
                                          ref_ep["vf"])
    if rhythm_known:
        out["rhythm_hours"] = hours
        out["false_af_alarms"] = false_alarms(alarm_spans(alarms, "new_af", fs_hz, n_samples),
                                              ref_ep["af"])
    else:
        out["af_alarms_unscored"] = sum(1 for a in alarms if a.get("code") == "new_af"
                                        and a.get("state") == "onset")
    if classified and rhythm_known and notes <= {"(N"}:
        out["sinus_hours"] = hours
        out["sinus_ref_n"] = sum(s in "NLRej" for s in rsym)
        out["sinus_false_ectopic"] = false_ectopic(rsym, rt, dt, dcls)
        out["sinus_high_alarms"] = sum(1 for a in alarms if a.get("state") == "onset"
                                       and a.get("priority") == "high")
    return out


def summarize(counts: dict) -> dict:
    """Se / +P and per-hour rates from pooled `record_counts`."""
    nan = float("nan")
    c = counts
    out: dict = {"records": c.get("records", 0), "hours": round(c.get("hours", 0.0), 3)}
    if "couplet_ref" in c:
        out.update(finish_runs({k: c[k] for k in c if k.startswith(("couplet_", "vt_run_"))}))
    if "ec57_couplet_ref" in c:
        out.update(finish_runs({k: c[k] for k in c if k.startswith(("ec57_couplet_",
                                                                     "ec57_vt_run_"))}, "ec57_"))
    for kind in ("af", "vf"):
        ep = {k[len(kind) + 1:]: v for k, v in c.items() if k.startswith(kind + "_")
              and k[len(kind) + 1:] in ("ref", "det", "tp_ref", "tp_det", "ref_s", "det_s",
                                        "both_s")}
        if ep:
            out.update(finish_episodes(ep, kind))
    h = c.get("hours", 0.0)
    # false VT over the hours whose beats carry classes only (`vt_hours`; the rest counted
    # apart as `vt_alarms_unscored`), false VF over every hour (VF is annotated as rhythm)
    hv = c.get("vt_hours", 0.0)
    out["vt_hours"] = round(hv, 3)
    out["vt_alarms_unscored"] = c.get("vt_alarms_unscored", 0)
    for k, hk in (("false_vt_alarms", hv), ("false_nsvt_alarms", hv), ("false_vf_alarms", h)):
        out[k] = c.get(k, 0)
        out[k.replace("alarms", "per_hour")] = c.get(k, 0) / hk if hk else nan
    if "vt_alarm_ref" in c:
        out["vt_alarm_ref"], out["vt_alarm_tp"] = c["vt_alarm_ref"], c.get("vt_alarm_tp", 0)
        out["vt_alarm_tp_any"] = c.get("vt_alarm_tp_any", 0)
        out["vt_alarm_se"] = (c.get("vt_alarm_tp", 0) / c["vt_alarm_ref"]
                              if c["vt_alarm_ref"] else nan)
        out["vt_or_nsvt_alarm_se"] = (c.get("vt_alarm_tp_any", 0) / c["vt_alarm_ref"]
                                      if c["vt_alarm_ref"] else nan)
    # false AF over the hours whose rhythm is annotated only (records without rhythm notes:
    # their AF alarms counted apart, unscored)
    hr = c.get("rhythm_hours", 0.0)
    out["rhythm_hours"] = round(hr, 3)
    out["false_af_alarms"] = c.get("false_af_alarms", 0)
    out["false_af_per_hour"] = c.get("false_af_alarms", 0) / hr if hr else nan
    out["af_alarms_unscored"] = c.get("af_alarms_unscored", 0)
    sh = c.get("sinus_hours", 0.0)
    if sh:
        out["sinus_hours"] = round(sh, 3)
        out["sinus_false_ectopic"] = c["sinus_false_ectopic"]
        out["sinus_false_ectopic_per_hour"] = c["sinus_false_ectopic"] / sh
        out["sinus_false_ectopic_share"] = (c["sinus_false_ectopic"] / c["sinus_ref_n"]
                                            if c["sinus_ref_n"] else nan)
        out["sinus_high_alarms_per_hour"] = c["sinus_high_alarms"] / sh
    return out
