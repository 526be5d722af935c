"""Synthetic 12-lead ECGs with labelled rhythms, potassium states, age and sex effects.

The model is a cardiac dipole in the spirit of ECGSYN (McSharry et al., IEEE TBME 50:289-294,
2003): each beat is a sum of Gaussian waves (P, Q, R, S, T, U and a few extra components), but
each wave carries a 3-D dipole vector (Frank X left, Y foot, Z back) instead of a scalar, and
the eight independent leads (I, II, V1-V6) are projections through the Dower matrix (Dower et
al., Clin Cardiol 3:87-95, 1980). III, aVR, aVL and aVF are then derived from I and II with the
project's own `derive_limb_leads`, so Einthoven's and Goldberger's identities hold exactly,
noise included. The beat times are known, and the reported R peak is the sample of the largest
QRS deflection of the clean lead II: ground truth to the sample.

Rendering is vectorised: every beat's waves are evaluated on a fixed support around its R time
as one (beats, waves, samples) array and scattered into the record with `np.bincount`; beat
scheduling loops over segments only, never over samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge_ecg.errors import SignalError
from edge_ecg.signal.leads import STANDARD_12, derive_limb_leads

# The conditions the generator makes (each maps to a rhythm class of tasks.toml in rhythms.toml).
CONDITIONS: tuple[str, ...] = (
    "sinus_rhythm",
    "sinus_bradycardia",
    "sinus_tachycardia",
    "sinus_arrhythmia",
    "atrial_fibrillation",
    "af_rapid_ventricular_response",
    "atrial_flutter",
    "premature_atrial_contractions",
    "premature_ventricular_contractions",
    "first_degree_av_block",
    "ventricular_paced",
    "left_bundle_branch_block",
    "right_bundle_branch_block",
    "supraventricular_tachycardia",
)
POTASSIUM: tuple[str, ...] = ("normal", "hyper", "hypo")
NOISE_KINDS: tuple[str, ...] = ("baseline", "emg", "powerline", "motion")
# Default share of the noise power per kind (a typical ambulatory mix; motion is bursty).
DEFAULT_NOISE_MIX = {"baseline": 0.4, "emg": 0.3, "powerline": 0.1, "motion": 0.2}

# Dower matrix: rows I, II, V1..V6; columns Frank X, Y, Z (Dower et al. 1980, as tabulated
# by Edenbrandt & Pahlm, J Electrocardiol 21:361-367, 1988).
_DOWER = np.array([
    [0.632, -0.235, 0.059],
    [0.235, 1.066, -0.132],
    [-0.515, 0.157, -0.917],
    [0.044, 0.164, -1.387],
    [0.882, 0.098, -1.277],
    [1.213, 0.127, -0.601],
    [1.125, 0.127, -0.086],
    [0.831, 0.076, 0.230],
])
_INDEPENDENT = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")

# Waves of one beat, in order. P1/P2: right and left atrial halves of the P wave (gives the
# biphasic P of V1); R2: a late QRS component (RBBB R', LBBB notch, ectopic second lobe);
# ST: a broad ST-segment deviation (hypokalaemic depression, discordant ST of wide QRS).
_WAVES = ("P1", "P2", "Q", "R", "S", "R2", "ST", "T", "U")
_W = {name: i for i, name in enumerate(_WAVES)}

# Ventricular activation types and the beat symbols they carry.
_VT_NORMAL, _VT_LBBB, _VT_RBBB, _VT_PVC, _VT_PACED = range(5)
# Atrial activity before a beat.
_P_NONE, _P_SINUS, _P_ECTOPIC, _P_RETRO = range(4)

_SUPPORT_S = (-0.6, 0.85)   # beat support around R: a 350 ms PR plus P, and a U wave after T


@dataclass(frozen=True)
class SynthRecord:
    """One synthetic record with its ground truth.

    `signal` is time-major `(T, L)` float32 millivolts; `r_peaks` the sample of each beat's
    largest lead-II QRS deflection (clean signal), `beat_types` 'N', 'A' (premature atrial),
    'V' (premature ventricular) or 'P' (paced) per beat; `segments` the (start, end, condition)
    sample ranges of the rhythm schedule.
    """

    signal: np.ndarray
    fs_hz: float
    leads: tuple[str, ...]
    r_peaks: np.ndarray
    beat_types: tuple[str, ...]
    labels: dict
    segments: list = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.signal.shape[0] / self.fs_hz

    def condition_at(self, start: int, end: int) -> str:
        """The condition covering most of the samples `[start, end)`."""
        best, best_n = self.labels["condition"], -1
        for s0, s1, cond in self.segments:
            n = min(end, s1) - max(start, s0)
            if n > best_n:
                best, best_n = cond, n
        return best


@dataclass(frozen=True)
class Patient:
    """Age, sex and the per-person ECG parameters drawn from published norms."""

    age: float
    sex: int                 # 0 male, 1 female (EnECG convention)
    hr_bpm: float            # resting sinus rate
    pr_s: float
    qrs_s: float
    qtc_s: float             # Framingham-corrected QT (Sagie et al., Am J Cardiol 70:797, 1992)
    p_s: float               # P-wave duration
    qrs_scale: float         # QRS voltage factor
    t_scale: float           # T amplitude factor
    axis_deg: float          # frontal QRS axis
    rsa: float               # respiratory sinus arrhythmia, fraction of RR
    resp_hz: float


def _patient(age: float | None, sex, rng: np.random.Generator) -> Patient:
    """Draw a patient's ECG parameters from age- and sex-specific norms.

    Numbers are approximate central values and spreads from:
    - Rijnbeek PR et al., "Normal values of the electrocardiogram for ages 16-90 years",
      J Electrocardiol 47:914-921, 2014 (PR lengthens with age, ~150 ms at 20-29 to ~165 ms at
      70+; QRS ~8 ms longer in men; QTc ~10-15 ms longer in women and rising with age; QRS
      voltages higher in men and falling with age; frontal axis moves left with age).
    - Mason JW et al., "Electrocardiographic reference ranges derived from 79,743 ambulatory
      subjects", J Electrocardiol 40:228-234, 2007 (women have a higher resting rate and lower
      T amplitudes; QTc increases with age).
    - Umetani K et al., JACC 31:593-601, 1998 (heart-rate variability falls with age).
    """
    if age is None:
        age = float(rng.uniform(18, 90))
    age = float(age)
    if not 0 < age < 120:
        raise SignalError(f"age must be in years (0-120), got {age}")
    sex = _sex_code(sex, rng)
    female = sex == 1
    decades = (age - 20.0) / 10.0
    hr = (68.0 + 4.0 * female - 0.5 * decades) + rng.normal(0, 6)
    pr = (0.152 - 0.005 * female + 0.0035 * decades) + rng.normal(0, 0.014)
    qrs = (0.097 - 0.008 * female + 0.0006 * decades) + rng.normal(0, 0.006)
    qtc = (0.405 + 0.013 * female + 0.0028 * decades) + rng.normal(0, 0.012)
    p_dur = (0.102 - 0.004 * female + 0.001 * decades) + rng.normal(0, 0.008)
    volt = (1.0 - 0.15 * female) * (1.0 - 0.035 * max(decades - 1.0, 0.0)) * rng.lognormal(0, 0.12)
    t_amp = (1.0 - 0.2 * female) * (1.0 - 0.02 * max(decades, 0.0)) * rng.lognormal(0, 0.15)
    axis = (60.0 - 3.5 * decades) + rng.normal(0, 15)
    rsa = max(0.045 * (1.0 - 0.11 * decades), 0.006) * rng.lognormal(0, 0.25)
    return Patient(
        age=round(age, 1), sex=sex, hr_bpm=float(hr),
        pr_s=float(np.clip(pr, 0.12, 0.195)), qrs_s=float(np.clip(qrs, 0.078, 0.112)),
        qtc_s=float(np.clip(qtc, 0.37, 0.455)), p_s=float(np.clip(p_dur, 0.08, 0.12)),
        qrs_scale=float(np.clip(volt, 0.55, 1.35)), t_scale=float(np.clip(t_amp, 0.5, 1.5)),
        axis_deg=float(np.clip(axis, -25, 95)), rsa=float(rsa),
        resp_hz=float(rng.uniform(0.2, 0.33)),
    )


def _sex_code(sex, rng: np.random.Generator) -> int:
    if sex is None:
        return int(rng.integers(0, 2))
    if isinstance(sex, str):
        key = sex.strip().lower()
        if key in ("m", "male", "0"):
            return 0
        if key in ("f", "female", "1"):
            return 1
    elif sex in (0, 1):
        return int(sex)
    raise SignalError(f"sex must be 0/'M' (male) or 1/'F' (female), got {sex!r}")


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _rot_frontal(v: np.ndarray, deg: float) -> np.ndarray:
    """Rotate a dipole vector in the frontal (X, Y) plane by `deg` (positive = clockwise
    towards the feet, as the hexaxial axis is measured)."""
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1], v[2]])


@dataclass
class _Morph:
    """Per-record dipole vectors (mV) of each template."""

    vec: dict
    pvc_vec: np.ndarray       # (3 waves: R, R2, T) x 3 for the record's (unifocal) PVC focus
    spike_vec: np.ndarray
    pvc_qrs_s: float
    paced_qrs_s: float
    bbb_qrs_s: float


def _morphology(p: Patient, rng: np.random.Generator) -> _Morph:
    """Dipole vectors for this patient, with a little individual scatter."""
    def jit(v, s=0.12):
        return np.asarray(v, dtype=np.float64) + rng.normal(0, s, 3) * np.linalg.norm(v)

    axis_rot = p.axis_deg - 50.0           # the templates below have a +50 degree QRS axis
    q = p.qrs_scale
    vec = {
        "P1": _unit(jit([0.2, 0.8, -0.5])) * 0.10,
        "P2": _unit(jit([0.7, 0.4, 0.5])) * 0.09,
        "Q": _rot_frontal(_unit(jit([-0.4, 0.1, -0.9])), axis_rot) * 0.15 * q,
        "R": _rot_frontal(_unit(jit([0.64, 0.77, 0.3], 0.08)), axis_rot) * 1.6 * q,
        "S": _rot_frontal(_unit(jit([-0.25, -0.15, 0.95])), axis_rot) * 0.7 * q,
        "T": _rot_frontal(_unit(jit([0.55, 0.55, -0.35])), 0.5 * axis_rot) * 0.36 * p.t_scale,
        "U": _unit([0.45, 0.35, -0.8]),
        "PA": _unit(jit([0.3, -0.8, -0.1])) * 0.12,     # ectopic (low) atrial P: inverted in II
        "PR": _unit([-0.2, -0.8, -0.3]) * 0.07,              # retrograde P (SVT)
    }
    # Unifocal PVC: a random main vector, a rotated second lobe and a discordant T.
    main = _unit(rng.normal(0, 1, 3) + np.array([0.0, 0.6, 0.0])) * rng.uniform(1.6, 2.4) * q
    second = _unit(main + rng.normal(0, 0.8, 3)) * 0.6 * np.linalg.norm(main)
    pvc = np.stack([main, second, -_unit(main + second) * rng.uniform(0.35, 0.55)])
    spike = _unit(jit([0.2, -0.6, -0.7], 0.3)) * rng.uniform(2.0, 5.0)
    return _Morph(vec=vec, pvc_vec=pvc, spike_vec=spike,
                  pvc_qrs_s=float(rng.uniform(0.14, 0.18)),
                  paced_qrs_s=float(rng.uniform(0.15, 0.18)),
                  bbb_qrs_s=float(rng.uniform(0.13, 0.16)))


@dataclass
class _Beats:
    """The beat schedule of a record (arrays of one entry per beat, times in seconds)."""

    t: list = field(default_factory=list)      # R times
    vt: list = field(default_factory=list)     # ventricular type
    pk: list = field(default_factory=list)     # atrial activity kind
    pr: list = field(default_factory=list)     # PR interval (s)
    sym: list = field(default_factory=list)    # beat symbol

    def add(self, t, vt, pk, pr, sym) -> None:
        n = len(t)
        self.t.append(np.asarray(t, dtype=np.float64))
        self.vt.append(np.broadcast_to(np.asarray(vt, dtype=np.int64), (n,)))
        self.pk.append(np.broadcast_to(np.asarray(pk, dtype=np.int64), (n,)))
        self.pr.append(np.broadcast_to(np.asarray(pr, dtype=np.float64), (n,)))
        self.sym.append(np.broadcast_to(np.asarray(sym, dtype="<U1"), (n,)))

    def arrays(self):
        def cat(xs, dt):
            return np.concatenate(xs) if xs else np.zeros(0, dtype=dt)

        return (cat(self.t, np.float64), cat(self.vt, np.int64), cat(self.pk, np.int64),
                cat(self.pr, np.float64), cat(self.sym, "<U1"))


def _sinus_rr(rr0: float, n: int, t0: float, p: Patient, rsa: float,
              rng: np.random.Generator) -> np.ndarray:
    """Sinus RR series: respiratory (HF) and Mayer-wave (LF, ~0.1 Hz) modulation plus jitter,
    the bimodal RR spectrum of ECGSYN (McSharry 2003)."""
    tk = t0 + rr0 * np.arange(n)
    lf = 0.4 * rsa
    rr = rr0 * (1.0 + rsa * np.sin(2 * np.pi * p.resp_hz * tk + rng.uniform(0, 2 * np.pi))
                + lf * np.sin(2 * np.pi * 0.1 * tk + rng.uniform(0, 2 * np.pi)))
    return np.maximum(rr + rng.normal(0, 0.006 * rr0, n), 0.25)


def _times(t_start: float, rr: np.ndarray) -> np.ndarray:
    return t_start + np.cumsum(rr)


def _schedule_segment(cond: str, t0: float, t1: float, last_r: float, p: Patient,
                      rng: np.random.Generator, beats: _Beats, atrial: list) -> float:
    """Append the beats of one rhythm segment `[t0, t1)` (seconds); returns the last R time.

    `last_r` is the previous beat's R time (before t0); beats continue from it so a schedule
    has no gap or overlap at segment boundaries.
    """
    span = t1 - last_r
    pr = p.pr_s
    if cond in ("sinus_rhythm", "sinus_bradycardia", "sinus_tachycardia", "sinus_arrhythmia",
                "first_degree_av_block", "left_bundle_branch_block", "right_bundle_branch_block",
                "premature_atrial_contractions", "premature_ventricular_contractions"):
        # Rates: bradycardia < 60 and tachycardia > 100 bpm (the conventional limits).
        if cond == "sinus_bradycardia":
            hr = rng.uniform(40, 56)
        elif cond == "sinus_tachycardia":
            hr = rng.uniform(105, 150)
        else:
            hr = float(np.clip(p.hr_bpm + rng.normal(0, 4), 62, 96))
        # Sinus arrhythmia: phasic RR variation > 0.12 s (the usual clinical criterion).
        rsa = rng.uniform(0.10, 0.18) if cond == "sinus_arrhythmia" else p.rsa
        rr0 = 60.0 / hr
        n = int(span / (rr0 * (1 - 2 * rsa))) + 3
        rr = _sinus_rr(rr0, n, last_r, p, rsa, rng)
        vt = {"left_bundle_branch_block": _VT_LBBB,
              "right_bundle_branch_block": _VT_RBBB}.get(cond, _VT_NORMAL)
        if cond == "first_degree_av_block":
            pr = rng.uniform(0.22, 0.34)   # PR > 200 ms defines first-degree block
        pr_k = pr * np.clip(1 + 0.2 * (rr - 0.85), 0.85, 1.1)   # PR shortens a little with rate
        # keep the class boundary: PR <= 200 ms unless the block is the condition
        if cond == "first_degree_av_block":
            pr_k = np.maximum(pr_k, 0.215)
        else:
            pr_k = np.minimum(pr_k, 0.198)
        vts = np.full(n, vt)
        pks = np.full(n, _P_SINUS)
        syms = np.full(n, "N")
        if cond in ("premature_atrial_contractions", "premature_ventricular_contractions"):
            ect = rng.random(n) < rng.uniform(0.12, 0.3)
            ect[0] = False
            ect &= ~np.roll(ect, 1)                  # isolated ectopics: no couplets
            n_in = int(np.sum(_times(last_r, rr) < t1))     # beats inside the segment
            if not ect[1:max(n_in - 1, 1)].any() and n_in >= 3:
                ect[int(rng.integers(1, n_in - 1))] = True    # at least one ectopic shown
                ect &= ~np.roll(ect, 1)
            idx = np.flatnonzero(ect)
            coupling = rng.uniform(0.55, 0.75, idx.size)
            nxt = np.minimum(idx + 1, n - 1)
            if cond == "premature_atrial_contractions":
                # A PAC resets the sinus node: the pause after it is about one sinus cycle
                # (non-compensatory).
                rr[nxt] = rr[nxt] * rng.uniform(1.0, 1.12, idx.size)
                rr[idx] *= coupling
                pks[idx], syms[idx] = _P_ECTOPIC, "A"
                pr_k[idx] *= 0.92
            else:
                # A PVC leaves the sinus node alone: full compensatory pause (2 RR in total).
                rr[nxt] = rr[nxt] + rr[idx] * (1 - coupling)
                rr[idx] *= coupling
                pks[idx], vts[idx], syms[idx] = _P_NONE, _VT_PVC, "V"
        t = _times(last_r, rr)
        keep = t < t1
        t = t[keep]
        beats.add(t, vts[keep], pks[keep], pr_k[keep], syms[keep])
    elif cond in ("atrial_fibrillation", "af_rapid_ventricular_response"):
        # AF: irregularly irregular RR, no P waves, fibrillatory waves at 350-600/min.
        hr = rng.uniform(62, 98) if cond == "atrial_fibrillation" else rng.uniform(112, 165)
        rr0 = 60.0 / hr
        sigma = rng.uniform(0.15, 0.28)
        n = int(span / (rr0 * 0.5)) + 3
        rr = rr0 * rng.lognormal(-sigma ** 2 / 2, sigma, n)
        rr = np.maximum(rr, 0.27)                     # AV-node refractory period
        t = _times(last_r, rr)
        t = t[t < t1]
        beats.add(t, _VT_NORMAL, _P_NONE, 0.0, "N")
        atrial.append(("af", t0, t1, None))
    elif cond == "atrial_flutter":
        # Typical flutter: atrial cycle 200-240 ms (250-300/min), 2:1, 4:1 or variable block.
        ac = rng.uniform(0.2, 0.24)
        mode = rng.choice(3, p=[0.5, 0.3, 0.2])
        n_f = int(span / ac) + 4
        ratios = (np.full(n_f, 2) if mode == 0 else np.full(n_f, 4) if mode == 1
                  else rng.choice([2, 4], n_f))
        phase0 = last_r - rng.uniform(0.1, 0.2)       # a flutter wave conducted to the last R
        delay = rng.uniform(0.14, 0.22)
        t = phase0 + np.cumsum(ratios) * ac + delay
        t = t[t < t1]
        beats.add(t, _VT_NORMAL, _P_NONE, 0.0, "N")
        atrial.append(("flutter", t0, t1, (phase0, ac)))
    elif cond == "supraventricular_tachycardia":
        hr = rng.uniform(150, 195)
        rr0 = 60.0 / hr
        n = int(span / rr0) + 3
        rr = rr0 + rng.normal(0, 0.004, n)
        t = _times(last_r, rr)
        t = t[t < t1]
        beats.add(t, _VT_NORMAL, _P_RETRO, 0.0, "N")
    elif cond == "ventricular_paced":
        rate = rng.choice([60.0, 70.0, 80.0])       # common programmed lower rates
        rr0 = 60.0 / rate
        t = last_r + rr0 * np.arange(1, int(span / rr0) + 2)
        t = t[t < t1]
        beats.add(t, _VT_PACED, _P_NONE, 0.0, "P")
    else:
        raise SignalError(
            f"unknown condition {cond!r}; known: {', '.join(CONDITIONS)}"
        )
    return float(t[-1]) if t.size else last_r


def _wave_table(tb, vt, pk, pr, rr_prev, p: Patient, m: _Morph, potassium: str,
                rng: np.random.Generator):
    """Per-beat wave parameters: centre (s, relative to R), left/right sigma (s), and dipole
    vector (mV), each `(B, W)` or `(B, W, 3)`."""
    b, w = tb.size, len(_WAVES)
    c = np.zeros((b, w))
    sl = np.full((b, w), 0.01)
    sr = np.full((b, w), 0.01)
    v = np.zeros((b, w, 3))
    hyper, hypo = potassium == "hyper", potassium == "hypo"

    # QRS duration per beat and type; hyperkalaemia widens the QRS (Parham WA et al.,
    # Tex Heart Inst J 33:40-47, 2006: peaked T, then P flattening and QRS widening).
    d = np.select([vt == _VT_LBBB, vt == _VT_RBBB, vt == _VT_PVC, vt == _VT_PACED],
                  [m.bbb_qrs_s, m.bbb_qrs_s - 0.01, m.pvc_qrs_s, m.paced_qrs_s], p.qrs_s)
    if hyper:
        d = d * rng.uniform(1.15, 1.35)
    onset = -0.45 * d                                  # QRS onset relative to the R peak
    resp = 1.0 + 0.06 * np.sin(2 * np.pi * p.resp_hz * tb)   # respiratory amplitude modulation

    # Normal (and RBBB's initial) activation.
    normal = (vt == _VT_NORMAL) | (vt == _VT_RBBB)
    dn = np.where(vt == _VT_RBBB, p.qrs_s, d)
    for name, cc, s in (("Q", -0.30, 0.07), ("R", 0.0, 0.085), ("S", 0.28, 0.08)):
        i = _W[name]
        c[:, i] = np.where(normal, cc * dn, c[:, i])
        sl[:, i] = sr[:, i] = np.where(normal, s * dn, sl[:, i])
        v[:, i] = np.where(normal[:, None], m.vec[name][None, :] * resp[:, None], v[:, i])

    # RBBB: delayed right-ventricular activation, a terminal rightward-anterior R' (rSR' in V1,
    # wide S in I and V6).
    rb = vt == _VT_RBBB
    if rb.any():
        i = _W["R2"]
        c[rb, i] = 0.28 * p.qrs_s + 0.5 * (d[rb] - p.qrs_s) + 0.015
        sl[rb, i] = sr[rb, i] = 0.22 * (d[rb] - 0.6 * p.qrs_s)
        v[rb, i] = _unit([-0.6, 0.1, -0.8]) * 0.9 * p.qrs_scale
        v[rb, _W["S"]] *= 0.6

    # LBBB: no septal q, broad notched leftward-posterior R, QS in V1-V3.
    lb = vt == _VT_LBBB
    if lb.any():
        base = _rot_frontal(_unit([0.75, 0.35, 0.7]), p.axis_deg - 50.0) * 1.7 * p.qrs_scale
        c[lb, _W["Q"]] = -0.3 * d[lb]
        sl[lb, _W["Q"]] = sr[lb, _W["Q"]] = 0.09 * d[lb]
        v[lb, _W["Q"]] = _unit([0.5, 0.1, 0.4]) * 0.35 * p.qrs_scale
        sl[lb, _W["R"]] = sr[lb, _W["R"]] = 0.11 * d[lb]
        v[lb, _W["R"]] = base
        c[lb, _W["R2"]] = 0.22 * d[lb]
        sl[lb, _W["R2"]] = sr[lb, _W["R2"]] = 0.09 * d[lb]
        v[lb, _W["R2"]] = _unit([0.7, -0.1, 0.8]) * 1.1 * p.qrs_scale

    # PVC (unifocal) and paced beats: wide, no normal conduction system.
    # RV-apical pacing: LBBB-like (QS in V1) with a left superior axis.
    paced_vec = np.stack([_unit([0.55, -0.7, 0.6]) * 1.8 * p.qrs_scale,
                          _unit([0.3, -0.8, 0.5]) * 0.9 * p.qrs_scale,
                          -_unit([0.45, -0.75, 0.55]) * 0.4])
    for kind, vecs in ((_VT_PVC, m.pvc_vec), (_VT_PACED, paced_vec)):
        k = vt == kind
        if not k.any():
            continue
        c[k, _W["R"]] = 0.0
        sl[k, _W["R"]] = sr[k, _W["R"]] = 0.13 * d[k]
        v[k, _W["R"]] = vecs[0]
        c[k, _W["R2"]] = 0.25 * d[k]
        sl[k, _W["R2"]] = sr[k, _W["R2"]] = 0.11 * d[k]
        v[k, _W["R2"]] = vecs[1]

    # ST and T: QT from the preceding RR (Framingham: QT = QTc - 0.154 (1 - RR), Sagie 1992);
    # wide QRS beats keep the JT interval, so QT grows with the QRS.
    qtc = p.qtc_s + (-0.02 if hyper else 0.03 if hypo else 0.0)
    qt = qtc - 0.154 * (1.0 - np.clip(rr_prev, 0.3, 2.0)) + (d - p.qrs_s)
    t_end = onset + qt
    t_sr = 0.040 * qt / 0.4
    t_sl = 0.060 * qt / 0.4
    t_amp = np.ones(b)
    if hyper:
        # Peaked, narrow, symmetric ("tented") T waves.
        t_sr = t_sl = 0.032 * qt / 0.4
        t_amp *= rng.uniform(2.0, 3.0)
    if hypo:
        t_amp *= rng.uniform(0.15, 0.35)     # flat T (Diercks DB et al., J Emerg Med 27:153, 2004)
    i = _W["T"]
    c[:, i] = t_end - 2.8 * t_sr
    sl[:, i], sr[:, i] = t_sl, t_sr
    wide = (vt == _VT_LBBB) | (vt == _VT_PVC) | (vt == _VT_PACED)
    # Secondary repolarisation changes: T discordant to the main QRS vector in wide beats.
    qrs_dir = v[:, _W["R"]] + v[:, _W["R2"]]
    qrs_dir = qrs_dir / np.maximum(np.linalg.norm(qrs_dir, axis=1, keepdims=True), 1e-9)
    t_vec = np.where(vt[:, None] == _VT_LBBB, -qrs_dir * 0.4, m.vec["T"][None, :])
    t_vec = np.where(vt[:, None] == _VT_PVC, m.pvc_vec[2][None, :], t_vec)
    t_vec = np.where(vt[:, None] == _VT_PACED, paced_vec[2][None, :], t_vec)
    t_vec = np.where(rb[:, None], _unit([0.55, 0.45, 0.3]) * 0.3 * p.t_scale, t_vec)
    v[:, i] = t_vec * t_amp[:, None]
    i = _W["ST"]
    c[:, i] = 0.45 * d + 0.06
    sl[:, i], sr[:, i] = 0.03, 0.05
    if hypo:
        # ST depression (0.05-0.1 mV) and a U wave of 0.1-0.2 mV, largest in V2-V3.
        v[:, i] = -_unit(m.vec["T"]) * rng.uniform(0.06, 0.11)
        u = _W["U"]
        c[:, u] = c[:, _W["T"]] + 0.17
        sl[:, u], sr[:, u] = 0.045, 0.04
        v[:, u] = m.vec["U"] * rng.uniform(0.1, 0.2)
    v[wide, i] = 0.3 * v[wide, _W["T"]]

    # Atrial waves.
    p_amp = rng.uniform(0.2, 0.5) if hyper else (1.2 if hypo else 1.0)
    p_dur = p.p_s * (1.3 if hyper else 1.0)
    pr_eff = pr + (0.02 if hyper else 0.0)
    p_on = onset - pr_eff
    for name, frac in (("P1", 0.38), ("P2", 0.62)):
        i = _W[name]
        c[:, i] = p_on + frac * p_dur
        sl[:, i] = sr[:, i] = p_dur / 6.5
    sinus = pk == _P_SINUS
    v[sinus, _W["P1"]] = m.vec["P1"] * p_amp
    v[sinus, _W["P2"]] = m.vec["P2"] * p_amp
    ect = pk == _P_ECTOPIC
    v[ect, _W["P1"]] = m.vec["PA"] * p_amp
    v[ect, _W["P2"]] = m.vec["PA"] * 0.3 * p_amp
    retro = pk == _P_RETRO
    c[retro, _W["P1"]] = 0.07
    sl[retro, _W["P1"]] = sr[retro, _W["P1"]] = 0.012
    v[retro, _W["P1"]] = m.vec["PR"]
    return c, sl, sr, v, onset


def _render_beats(n: int, fs: float, tb: np.ndarray, c, sl, sr, v) -> np.ndarray:
    """Sum every beat's waves into an `(n, 3)` dipole signal (vectorised scatter-add)."""
    active = np.any(v != 0, axis=(0, 2))          # waves this record uses (no U, R2, ... else)
    if tb.size == 0 or not active.any():
        return np.zeros((n, 3))
    c, sl, sr, v = c[:, active], sl[:, active], sr[:, active], v[:, active]
    lo, hi = int(np.floor(_SUPPORT_S[0] * fs)), int(np.ceil(_SUPPORT_S[1] * fs))
    centre = np.round(tb * fs).astype(np.int64)                    # (B,)
    offs = np.arange(lo, hi)                                       # (S,)
    idx = centre[:, None] + offs[None, :]                          # (B, S)
    # time of each support sample relative to the exact R time of its beat
    tr = idx / fs - tb[:, None]                                    # (B, S)
    dt = tr[:, None, :] - c[:, :, None]                            # (B, W, S)
    sig = np.where(dt < 0, sl[:, :, None], sr[:, :, None])
    g = np.exp(-0.5 * (dt / sig) ** 2)                             # (B, W, S)
    contrib = np.einsum("bws,bwk->bsk", g, v)                      # (B, S, 3)
    ok = (idx >= 0) & (idx < n)
    flat = idx[ok]
    out = np.empty((n, 3))
    for k in range(3):
        out[:, k] = np.bincount(flat, weights=contrib[..., k][ok], minlength=n)
    return out


def _smooth_noise(n: int, fs: float, knot_hz: float, rng: np.random.Generator) -> np.ndarray:
    """A slowly varying random curve (linear interpolation of random knots)."""
    n_k = int(n / fs * knot_hz) + 2
    return np.interp(np.arange(n) / fs * knot_hz, np.arange(n_k), rng.normal(0, 1, n_k))


def _atrial_activity(n: int, fs: float, atrial: list, rng: np.random.Generator) -> np.ndarray:
    """Fibrillatory (AF) and flutter waves as an `(n, 3)` dipole signal."""
    out = np.zeros((n, 3))
    t = np.arange(n) / fs
    for kind, t0, t1, arg in atrial:
        a, b = max(int(t0 * fs), 0), min(int(np.ceil(t1 * fs)), n)
        if b <= a:
            continue
        seg = t[a:b]
        if kind == "af":
            # f waves: 4.5-8 Hz (270-480/min) with wandering frequency and amplitude
            # (Stridh & Sornmo, IEEE TBME, 2001), mostly seen in V1 and the
            # inferior leads; amplitude 0.05-0.2 mV.
            f0 = rng.uniform(4.5, 8.0)
            freq = f0 + 0.4 * _smooth_noise(b - a, fs, 1.0, rng)
            phase = 2 * np.pi * np.cumsum(freq) / fs + rng.uniform(0, 2 * np.pi)
            amp = rng.uniform(0.05, 0.15) * np.clip(1 + 0.35 * _smooth_noise(b - a, fs, 0.7, rng),
                                                    0.2, None)
            wave = amp * (np.sin(phase) + 0.3 * np.sin(2 * phase + 1.0))
            direction = _unit([0.1, 0.5, -0.85] + rng.normal(0, 0.15, 3))
        else:
            # Typical (counter-clockwise) flutter: negative sawtooth in II, III, aVF, 0.1-0.3 mV.
            phase0, ac = arg
            ph = np.mod((seg - phase0) / ac, 1.0)
            # fast upstroke over 20 % of the cycle, slow downslope over the rest
            wave = np.where(ph < 0.2, ph / 0.2, 1.0 - (ph - 0.2) / 0.8) * 2 - 1
            wave = wave * rng.uniform(0.1, 0.25)
            direction = _unit([0.1, 0.9, -0.3])
        out[a:b] += wave[:, None] * direction[None, :]
    return out


def _leads8(xyz: np.ndarray) -> np.ndarray:
    return xyz @ _DOWER.T                                          # (T, 3) -> (T, 8)


def _noise8(n: int, fs: float, mix: dict, rng: np.random.Generator,
            powerline_hz: float | None) -> np.ndarray:
    """Noise of the 8 independent leads, each kind normalised to unit power per lead and
    weighted by `mix`. Generated per electrode (RA, LA, LL, V1-V6) and projected the way
    the leads are formed (I = LA - RA, II = LL - RA, Vi - Wilson's central terminal), so
    neighbouring leads share noise as real ones do. Models after the MIT-BIH Noise Stress
    Test Database kinds (Moody et al., Computers in Cardiology 11:381-384, 1984)."""
    t = np.arange(n) / fs
    e = 9
    comps = {}
    if mix.get("baseline"):
        # Respiration and electrode drift, < 0.5 Hz.
        resp = np.sin(2 * np.pi * rng.uniform(0.15, 0.35) * t + rng.uniform(0, 6.3))
        slow = np.stack([_smooth_noise(n, fs, 0.4, rng) for _ in range(e)], axis=1)
        comps["baseline"] = resp[:, None] * rng.normal(0, 1, e)[None, :] + slow
    if mix.get("emg"):
        comps["emg"] = (rng.standard_normal((n, e), dtype=np.float32)
                        * rng.uniform(0.5, 1.5, e).astype(np.float32)[None, :])
    if mix.get("powerline"):
        f = powerline_hz or float(rng.choice([50.0, 60.0]))
        ph = rng.uniform(0, 6.3)
        gains = rng.uniform(0.5, 1.5, e)
        # mains and its 3rd harmonic, where the rate can carry them (an ADC's anti-alias
        # filter removes what it cannot)
        hum = np.zeros(n)
        for k, a in ((1, 1.0), (3, 0.2)):
            if k * f < 0.45 * fs:
                hum += a * np.sin(2 * np.pi * k * f * t + k * ph)
        if hum.any():
            comps["powerline"] = hum[:, None] * gains[None, :]
    if mix.get("motion"):
        # Electrode motion: one or two bursts of large low-frequency artefact on an electrode,
        # over a low level of cable/skin movement on all of them.
        mot = 0.05 * np.stack([_smooth_noise(n, fs, 6.0, rng) for _ in range(e)], axis=1)
        for _ in range(int(rng.integers(1, 3))):
            ch = int(rng.integers(0, e))
            length = int(min(n, rng.uniform(0.5, 2.0) * fs))
            start = int(rng.integers(0, max(n - length, 1)))
            win = np.hanning(length)
            mot[start:start + length, ch] += win * _smooth_noise(length, fs, 6.0, rng) * 3
        comps["motion"] = mot
    # electrodes -> leads: I = LA - RA, II = LL - RA, Vi - (RA + LA + LL) / 3
    proj = np.zeros((e, 8))
    proj[[1, 0], 0] = (1, -1)
    proj[[2, 0], 1] = (1, -1)
    proj[3:, 2:] = np.eye(6)
    proj[:3, 2:] = -1.0 / 3
    out = np.zeros((n, 8))
    for kind, el in comps.items():
        leads = el @ proj.astype(el.dtype)
        rms = np.sqrt(np.mean(np.square(leads, dtype=np.float64), axis=0))
        # a lead the kind does not reach (motion on one chest electrode) stays at zero
        out += leads * (np.sqrt(mix[kind]) / np.where(rms > 0, rms, 1.0))[None, :]
    return out


def synthesize_schedule(schedule, fs_hz: float = 500.0, seed: int = 0, age: float | None = None,
                        sex=None, potassium: str = "normal", snr_db: float | None = None,
                        leads: tuple[str, ...] = STANDARD_12, noise: dict | None = None,
                        powerline_hz: float | None = None,
                        subject_id: str | None = None) -> SynthRecord:
    """One patient whose rhythm follows `schedule`, a list of `(condition, seconds)`.

    `age`/`sex` None are drawn from the seed. `snr_db` None gives a clean record; otherwise
    noise (kinds and power shares from `noise`, default `DEFAULT_NOISE_MIX`) is added at that
    signal-to-noise ratio in each independent lead (power of the clean lead over the noise).
    The noise draws from its own random stream: the same seed with and without noise gives
    the same ECG.
    """
    schedule = [(str(c), float(s)) for c, s in schedule]
    if not schedule:
        raise SignalError("empty rhythm schedule: give at least one (condition, seconds)")
    for cond, sec in schedule:
        if cond not in CONDITIONS:
            raise SignalError(f"unknown condition {cond!r}; known: {', '.join(CONDITIONS)}")
        if not sec > 0:
            raise SignalError(f"segment {cond!r} must last > 0 s, got {sec}")
    if potassium not in POTASSIUM:
        raise SignalError(f"potassium must be one of {POTASSIUM}, got {potassium!r}")
    if not fs_hz >= 100:
        raise SignalError(f"fs_hz must be >= 100 Hz for QRS detail, got {fs_hz}")
    bad = [name for name in leads if name not in STANDARD_12]
    if bad:
        raise SignalError(f"unknown lead(s) {bad}; use names from {STANDARD_12}")
    mix = dict(DEFAULT_NOISE_MIX if noise is None else noise)
    if set(mix) - set(NOISE_KINDS):
        raise SignalError(f"unknown noise kind(s) {sorted(set(mix) - set(NOISE_KINDS))}; "
                          f"known: {NOISE_KINDS}")

    ss = np.random.SeedSequence(int(seed))
    r_pat, r_rhythm, r_morph, r_noise = (np.random.default_rng(s) for s in ss.spawn(4))
    pat = _patient(age, sex, r_pat)
    morph = _morphology(pat, r_morph)
    total_s = sum(s for _, s in schedule)
    n = int(round(total_s * fs_hz))

    beats, atrial = _Beats(), []
    t0 = 0.0
    last_r = -r_rhythm.uniform(0.1, 0.8)     # a beat before the record starts
    beats.add([last_r], _VT_NORMAL, _P_NONE if schedule[0][0] in (
        "atrial_fibrillation", "af_rapid_ventricular_response", "atrial_flutter",
        "supraventricular_tachycardia", "ventricular_paced") else _P_SINUS, pat.pr_s, "N")
    seg_samples = []
    for i, (cond, sec) in enumerate(schedule):
        t1 = t0 + sec
        # The last segment runs a little past the end so the record ends mid-rhythm.
        last_r = _schedule_segment(cond, t0, t1 + (1.0 if i == len(schedule) - 1 else 0.0),
                                   last_r, pat, r_rhythm, beats, atrial)
        seg_samples.append((int(round(t0 * fs_hz)), int(round(t1 * fs_hz)), cond))
        t0 = t1
    if schedule[0][0] == "ventricular_paced":
        beats.vt[0] = np.array([_VT_PACED])
        beats.sym[0] = np.array(["P"])
    tb, vt, pk, pr, sym = beats.arrays()
    rr_prev = np.diff(tb, prepend=tb[0] - 60.0 / pat.hr_bpm)
    c, sl, sr, v, onset = _wave_table(tb, vt, pk, pr, rr_prev, pat, morph, potassium, r_morph)
    xyz = _render_beats(n, fs_hz, tb, c, sl, sr, v)

    # Ground-truth R peaks: the largest |deflection| of the clean lead II within 60 ms of the
    # nominal R time (before atrial waves, spikes and noise).
    ii = xyz @ _DOWER[1]
    centre = np.round(tb * fs_hz).astype(np.int64)
    inside = (centre >= 0) & (centre < n)
    half = int(round(0.06 * fs_hz))
    win = np.clip(centre[inside, None] + np.arange(-half, half + 1)[None, :], 0, n - 1)
    r_peaks = win[np.arange(win.shape[0]), np.argmax(np.abs(ii[win]), axis=1)].astype(np.int64)
    beat_types = tuple(str(s) for s in sym[inside])

    xyz += _atrial_activity(n, fs_hz, atrial, r_rhythm)
    # Pacing spikes: ~0.5 ms pulses, one sample at this rate, with a small opposite-polarity
    # recharge sample after (bipolar/unipolar amplitudes 1-5 mV as displayed).
    paced = np.flatnonzero(vt == _VT_PACED)
    if paced.size:
        sp = np.round((tb[paced] + onset[paced] - 0.004) * fs_hz).astype(np.int64)
        for off, gain in ((0, 1.0), (1, -0.25)):
            s = sp + off
            s = s[(s >= 0) & (s < n)]
            xyz[s] += morph.spike_vec * gain

    y8 = _leads8(xyz)
    if snr_db is not None:
        p_sig = np.mean((y8 - y8.mean(axis=0)) ** 2, axis=0)
        nz = _noise8(n, fs_hz, mix, r_noise, powerline_hz)
        p_nz = np.mean(nz ** 2, axis=0)
        if not np.all(p_nz > 0):
            raise SignalError(f"noise mix {mix} gives no noise in some leads at {fs_hz} Hz "
                              f"(mains above Nyquist?); add 'emg' or 'baseline' to reach "
                              f"{snr_db} dB")
        y8 = y8 + nz * np.sqrt(p_sig / p_nz / 10 ** (float(snr_db) / 10))[None, :]
    y8 = y8.astype(np.float32)
    have = {name: y8[:, j] for j, name in enumerate(_INDEPENDENT)}
    have.update(derive_limb_leads(have["I"], have["II"]))
    signal = np.ascontiguousarray(np.stack([have[name] for name in leads], axis=1))

    rr = np.diff(r_peaks) * (1000.0 / fs_hz)
    durations = {}
    for cond, sec in schedule:
        durations[cond] = durations.get(cond, 0.0) + sec
    main = max(durations, key=durations.get)
    labels = {
        "rr_interval": float(rr.mean()) if rr.size else 29999.0,
        "age": pat.age,
        "gender": pat.sex,
        "flag": int(potassium != "normal"),
        "report_label": arrhythmia_index(main),
        "condition": main,
        "potassium": potassium,
        "subject_id": subject_id if subject_id is not None else f"synth-{int(seed)}",
        "snr_db": None if snr_db is None else float(snr_db),
        "seed": int(seed),
    }
    return SynthRecord(signal=signal, fs_hz=float(fs_hz), leads=tuple(leads), r_peaks=r_peaks,
                       beat_types=beat_types, labels=labels, segments=seg_samples)


def synthesize(condition: str = "sinus_rhythm", seconds: float = 10.0, fs_hz: float = 500.0,
               seed: int = 0, age: float | None = None, sex=None, potassium: str = "normal",
               snr_db: float | None = None, leads: tuple[str, ...] = STANDARD_12,
               **kwargs) -> SynthRecord:
    """One record of a single condition (see `synthesize_schedule`)."""
    return synthesize_schedule([(condition, seconds)], fs_hz=fs_hz, seed=seed, age=age, sex=sex,
                               potassium=potassium, snr_db=snr_db, leads=leads, **kwargs)


def arrhythmia_index(condition: str) -> int:
    """Index of a condition's rhythm class (rhythms.toml) in the arrhythmia task's labels."""
    from edge_ecg.data.rhythms import synth_class
    from edge_ecg.data.tasks import DEFAULT_TASKS
    from edge_ecg.errors import RecordError

    labels = DEFAULT_TASKS["arrhythmia"].labels
    try:
        cls = synth_class(condition)
    except RecordError as exc:
        raise SignalError(str(exc)) from None
    if cls not in labels:
        raise SignalError(f"rhythm class {cls!r} of {condition!r} is not a label of tasks.toml")
    return labels.index(cls)


@dataclass(frozen=True)
class CohortEntry:
    """The plan of one synthetic patient of a cohort."""

    condition: str
    potassium: str
    age: float
    sex: int
    seed: int
    subject_id: str


def cohort_plan(n: int, seed: int = 0, conditions=None, potassium=None,
                age_range: tuple[float, float] = (18.0, 90.0)) -> list[CohortEntry]:
    """A balanced mix of `n` patients: conditions cycled in a shuffled order, half of them with
    a potassium abnormality (hyper and hypo alternating), ages uniform over `age_range`, sexes
    alternating. Deterministic for `seed`."""
    conditions = tuple(conditions or CONDITIONS)
    for cnd in conditions:
        if cnd not in CONDITIONS:
            raise SignalError(f"unknown condition {cnd!r}; known: {', '.join(CONDITIONS)}")
    if potassium is None:
        k_cycle = ("normal", "hyper", "normal", "hypo")
    else:
        k_cycle = tuple(potassium)
        for k in k_cycle:
            if k not in POTASSIUM:
                raise SignalError(f"unknown potassium state {k!r}; known: {POTASSIUM}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7919]))
    conds = [conditions[i % len(conditions)] for i in range(n)]
    rng.shuffle(conds)
    ks = [k_cycle[i % len(k_cycle)] for i in range(n)]
    rng.shuffle(ks)
    sexes = np.arange(n) % 2
    rng.shuffle(sexes)
    ages = rng.uniform(age_range[0], age_range[1], n)
    seeds = rng.integers(0, 2 ** 31 - 1, n)
    return [CohortEntry(condition=conds[i], potassium=ks[i], age=round(float(ages[i]), 1),
                        sex=int(sexes[i]), seed=int(seeds[i]),
                        subject_id=f"synth-{int(seed)}-{i:05d}") for i in range(n)]
