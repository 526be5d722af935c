"""LUDB wave boundaries: the cardiologists' per-lead P, QRS and T marks as typed arrays.

LUDB (Kalyakulina AI et al., IEEE Access 8:186181, 2020) stores one annotation file per lead
(`.i .ii .iii .avr .avl .avf .v1 ... .v6`). Each wave is a triplet: onset `(`, peak (`p` for P,
`N` for QRS, `t` for T), offset `)`. This module turns a file into a `LeadWaves` of int64 sample
arrays per boundary, so scoring never handles annotation symbols. The cardiologists left the
first and last cycle of most records unmarked: `LeadWaves.span` says which samples were marked,
and scoring counts detections only inside it.

This is the delineation reference only; record-level labels (age, sex, rhythm) for training live
in `edge_ecg.data.ludb`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_ecg.errors import RecordError

LEADS = ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6")
BOUNDARIES = ("p_on", "p_peak", "p_off", "qrs_on", "qrs_peak", "qrs_off", "t_on", "t_peak",
              "t_off")
_WAVE_OF_PEAK = {"p": "p", "N": "qrs", "t": "t"}


@dataclass(frozen=True)
class LeadWaves:
    """One lead's reference boundaries (sample indices, int64, ascending) and marked span."""

    record: str
    lead: str
    fs_hz: float
    points: dict          # boundary name (BOUNDARIES) -> int64 array
    span: tuple[int, int]  # first and last marked sample (inclusive)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.points[name]


def _triplets(samples: np.ndarray, symbols: list[str], where: str) -> dict:
    """Group `( peak )` triplets by wave; a peak without both brackets keeps only its peak."""
    out = {b: [] for b in BOUNDARIES}
    n = len(symbols)
    for k, sym in enumerate(symbols):
        wave = _WAVE_OF_PEAK.get(sym)
        if wave is None:
            if sym not in ("(", ")"):
                raise RecordError(f"{where}: unexpected annotation symbol {sym!r} at sample "
                                  f"{int(samples[k])}; LUDB uses ( p N t )")
            continue
        out[f"{wave}_peak"].append(int(samples[k]))
        if k > 0 and symbols[k - 1] == "(":
            out[f"{wave}_on"].append(int(samples[k - 1]))
        if k + 1 < n and symbols[k + 1] == ")":
            out[f"{wave}_off"].append(int(samples[k + 1]))
    return {b: np.asarray(sorted(v), dtype=np.int64) for b, v in out.items()}


def read_lead_waves(record: str | Path, lead: str) -> LeadWaves:
    """The boundaries of one lead of a LUDB record (`record` = path without extension)."""
    import wfdb

    record = str(record)
    record = record.removesuffix(".hea")
    lead = lead.lower()
    path = Path(f"{record}.{lead}")
    if not path.is_file():
        raise RecordError(f"{path}: LUDB annotation file not found (one per lead: "
                          f"{', '.join('.' + x for x in LEADS)})")
    try:
        ann = wfdb.rdann(record, lead)
    except Exception as exc:  # wfdb raises many kinds for a bad file
        raise RecordError(f"{path}: unreadable as a WFDB annotation file ({exc!r}); "
                          f"re-download it from LUDB") from exc
    samples = np.asarray(ann.sample, dtype=np.int64)
    if samples.size == 0:
        raise RecordError(f"{path}: annotation file holds no marks")
    pts = _triplets(samples, list(ann.symbol), str(path))
    fs = float(ann.fs) if ann.fs else 500.0
    return LeadWaves(record=record, lead=lead, fs_hz=fs, points=pts,
                     span=(int(samples.min()), int(samples.max())))


def read_record_waves(record: str | Path, leads=LEADS) -> dict[str, LeadWaves]:
    """Every requested lead's boundaries: lead name -> LeadWaves."""
    return {ld: read_lead_waves(record, ld) for ld in leads}


def consensus_waves(waves: dict[str, LeadWaves], min_leads: int = 6,
                    gap_s: float = 0.100) -> LeadWaves:
    """One reference for the whole record: for each boundary, the marks of all leads grouped
    (a new group after a gap of more than `gap_s`), and each group with marks in at least
    `min_leads` leads replaced by their median. This is what a multi-lead delineator
    estimates; scoring it against every lead's own marks instead adds the spread between the
    cardiologists' leads (bench/delineate.py prints that floor)."""
    first = next(iter(waves.values()))
    pts = {}
    for b in BOUNDARIES:
        allm = np.sort(np.concatenate([w[b] for w in waves.values()]))
        groups = np.split(allm, np.flatnonzero(np.diff(allm) > gap_s * first.fs_hz) + 1) \
            if allm.size else []
        pts[b] = np.asarray([int(np.median(g)) for g in groups if g.size >= min_leads],
                            dtype=np.int64)
    span = (min(w.span[0] for w in waves.values()), max(w.span[1] for w in waves.values()))
    return LeadWaves(record=first.record, lead="consensus", fs_hz=first.fs_hz, points=pts,
                     span=span)


def list_records(folder: str | Path) -> list[Path]:
    """LUDB records in `folder` or its `data/` subfolder: those with a header and lead II's
    annotation file, sorted numerically where names are numbers."""
    folder = Path(folder)
    if (folder / "data").is_dir():
        folder = folder / "data"
    if not folder.is_dir():
        raise RecordError(f"{folder}: no such LUDB folder (expected records like 1.hea, 1.ii)")
    names = [p.stem for p in folder.glob("*.hea") if (folder / f"{p.stem}.ii").is_file()]
    if not names:
        raise RecordError(f"{folder}: no LUDB records found (a header NAME.hea with its "
                          f"per-lead annotations NAME.i ... NAME.v6)")
    names.sort(key=lambda s: (0, int(s), s) if s.isdigit() else (1, 0, s))
    return [folder / n for n in names]


# --- scoring (CSE convention: per boundary Se, +P, mean and SD of the error) ---------------
MATCH_S = 0.150
# CSE Working Party 2-sigma tolerances (ms) for the boundaries that have one
CSE_2SD_MS = {"p_on": 10.2, "p_off": 12.7, "qrs_on": 6.5, "qrs_off": 11.6, "t_off": 30.6}


@dataclass(frozen=True)
class BoundaryScore:
    """One boundary pooled over leads/records: counts and the errors (detected - reference)."""

    name: str
    tp: int
    fp: int
    fn: int
    errors_ms: np.ndarray

    @property
    def sensitivity(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def ppv(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def mean_ms(self) -> float:
        return float(np.mean(self.errors_ms)) if self.errors_ms.size else float("nan")

    @property
    def sd_ms(self) -> float:
        return float(np.std(self.errors_ms, ddof=1)) if self.errors_ms.size > 1 else float("nan")

    def to_dict(self) -> dict:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "sensitivity": self.sensitivity,
                "ppv": self.ppv, "mean_ms": self.mean_ms, "sd_ms": self.sd_ms,
                "cse_2sd_ms": CSE_2SD_MS.get(self.name)}


def score_boundary(name: str, det: np.ndarray, ref: LeadWaves) -> BoundaryScore:
    """Match detections of one boundary to the lead's reference within +/-150 ms (one to
    one, closest first). An unmatched detection counts as false only inside the marked span:
    the cardiologists did not mark the first and last cycles."""
    from edge_ecg.signal.scoring import match_beats

    r = np.asarray(ref[name], dtype=np.int64)
    d = np.sort(np.asarray(det, dtype=np.int64))
    mr, md = match_beats(r, d, round(MATCH_S * ref.fs_hz))
    un = np.ones(d.size, bool)
    un[md] = False
    fp = int(np.count_nonzero(un & (d >= ref.span[0]) & (d <= ref.span[1])))
    err = (d[md] - np.sort(r)[mr]).astype(np.float64) * (1000.0 / ref.fs_hz)
    return BoundaryScore(name, int(mr.size), fp, int(r.size - mr.size), err)


def pool(scores: list[dict]) -> dict[str, BoundaryScore]:
    """Sum counts and concatenate errors per boundary over several {name: BoundaryScore}."""
    out = {}
    for name in BOUNDARIES:
        s = [x[name] for x in scores if name in x]
        if s:
            out[name] = BoundaryScore(name, sum(x.tp for x in s), sum(x.fp for x in s),
                                      sum(x.fn for x in s),
                                      np.concatenate([x.errors_ms for x in s]))
    return out


def score_points(points: dict, ref: LeadWaves) -> dict[str, BoundaryScore]:
    """Score detected boundaries {name: sample array} of one lead against its reference."""
    return {name: score_boundary(name, points.get(name, np.zeros(0, np.int64)), ref)
            for name in BOUNDARIES}


def delineate_ludb_record(record: str | Path, lead: str | None = None) -> dict[str, dict]:
    """Delineate one LUDB record and return, per scored lead, {boundary: detected samples}.

    `lead=None`: all 12 leads delineated together, the combined boundaries scored against the
    consensus of the 12 leads' marks (`consensus_waves`); `lead='every'`: the same combined
    boundaries scored against every lead's own marks. `lead='all'`: each lead delineated alone (its own R peaks too),
    scored against its own reference. `lead=NAME`: that lead alone."""
    from edge_ecg.data.records import read_record
    from edge_ecg.signal.delineate import BOUNDARIES as DB
    from edge_ecg.signal.delineate import delineate_record

    rec = read_record(record)
    names = [x.lower() for x in rec.leads]
    out = {}
    if lead is None or lead == "every":
        waves = delineate_record(rec.signal, rec.fs_hz)
        pts = {b: np.array([w.points[b] for w in waves if w.valid and w.points[b] is not None],
                           dtype=np.int64) for b in DB}
        return {"consensus": pts} if lead is None else {ld: pts for ld in names}
    wanted = names if lead == "all" else [lead.lower()]
    for ld in wanted:
        if ld not in names:
            raise RecordError(f"{rec.path}: no lead {ld!r}; the record has {', '.join(names)}")
        k = names.index(ld)
        waves = delineate_record(rec.signal[:, [k]], rec.fs_hz)
        out[ld] = {b: np.array([w.points[b] for w in waves if w.valid and w.points[b] is not None],
                               dtype=np.int64) for b in DB}
    return out


def score_ludb_record(record: str | Path, lead: str | None = None) -> dict[str, BoundaryScore]:
    """Delineate and score one record (see `delineate_ludb_record` for `lead`)."""
    det = delineate_ludb_record(record, lead)
    if "consensus" in det:
        return score_points(det["consensus"], consensus_waves(read_record_waves(record)))
    return pool([score_points(pts, read_lead_waves(record, ld)) for ld, pts in det.items()])
