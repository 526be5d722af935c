"""The rhythm scheduler: when each beat happens, how the ventricles are activated and what
atrial activity precedes it, segment by segment of a rhythm schedule (loops over segments,
never over samples)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge_ecg.data.synth.patient import Patient
from edge_ecg.data.synth.record import CONDITIONS
from edge_ecg.errors import SignalError

# Ventricular activation types and the beat symbols they carry.
VENT_NORMAL, VENT_LBBB, VENT_RBBB, VENT_PVC, VENT_PACED = range(5)
# Atrial activity before a beat.
ATRIUM_NONE, ATRIUM_SINUS, ATRIUM_ECTOPIC, ATRIUM_RETROGRADE = range(4)


@dataclass
class BeatSchedule:
    """The beat schedule of a record (arrays of one entry per beat, times in seconds)."""

    r_s: list = field(default_factory=list)        # R times (s)
    ventricle: list = field(default_factory=list)  # ventricular activation (VENT_*)
    atrium: list = field(default_factory=list)     # atrial activity before the beat (ATRIUM_*)
    pr_s: list = field(default_factory=list)       # PR interval (s)
    symbol: list = field(default_factory=list)     # beat symbol

    def add(self, r_s, ventricle, atrium, pr_s, symbol) -> None:
        n = len(r_s)
        self.r_s.append(np.asarray(r_s, dtype=np.float64))
        self.ventricle.append(np.broadcast_to(np.asarray(ventricle, dtype=np.int64), (n,)))
        self.atrium.append(np.broadcast_to(np.asarray(atrium, dtype=np.int64), (n,)))
        self.pr_s.append(np.broadcast_to(np.asarray(pr_s, dtype=np.float64), (n,)))
        self.symbol.append(np.broadcast_to(np.asarray(symbol, dtype="<U1"), (n,)))

    def arrays(self):
        def cat(xs, dt):
            return np.concatenate(xs) if xs else np.zeros(0, dtype=dt)

        return (cat(self.r_s, np.float64), cat(self.ventricle, np.int64),
                cat(self.atrium, np.int64), cat(self.pr_s, np.float64), cat(self.symbol, "<U1"))


def sinus_rr(rr0: float, n: int, t0: float, p: Patient, rsa: float,
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


def schedule_segment(cond: str, t0: float, t1: float, last_r: float, p: Patient,
                      rng: np.random.Generator, beats: BeatSchedule, atrial: list) -> float:
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
        rr = sinus_rr(rr0, n, last_r, p, rsa, rng)
        vent = {"left_bundle_branch_block": VENT_LBBB,
              "right_bundle_branch_block": VENT_RBBB}.get(cond, VENT_NORMAL)
        if cond == "first_degree_av_block":
            pr = rng.uniform(0.22, 0.34)   # PR > 200 ms defines first-degree block
        pr_k = pr * np.clip(1 + 0.2 * (rr - 0.85), 0.85, 1.1)   # PR shortens a little with rate
        # keep the class boundary: PR <= 200 ms unless the block is the condition
        if cond == "first_degree_av_block":
            pr_k = np.maximum(pr_k, 0.215)
        else:
            pr_k = np.minimum(pr_k, 0.198)
        ventricle = np.full(n, vent)
        atrium = np.full(n, ATRIUM_SINUS)
        symbol = np.full(n, "N")
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
                atrium[idx], symbol[idx] = ATRIUM_ECTOPIC, "A"
                pr_k[idx] *= 0.92
            else:
                # A PVC leaves the sinus node alone: full compensatory pause (2 RR in total).
                rr[nxt] = rr[nxt] + rr[idx] * (1 - coupling)
                rr[idx] *= coupling
                atrium[idx], ventricle[idx], symbol[idx] = ATRIUM_NONE, VENT_PVC, "V"
        t = _times(last_r, rr)
        keep = t < t1
        t = t[keep]
        beats.add(t, ventricle[keep], atrium[keep], pr_k[keep], symbol[keep])
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
        beats.add(t, VENT_NORMAL, ATRIUM_NONE, 0.0, "N")
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
        beats.add(t, VENT_NORMAL, ATRIUM_NONE, 0.0, "N")
        atrial.append(("flutter", t0, t1, (phase0, ac)))
    elif cond == "supraventricular_tachycardia":
        hr = rng.uniform(150, 195)
        rr0 = 60.0 / hr
        n = int(span / rr0) + 3
        rr = rr0 + rng.normal(0, 0.004, n)
        t = _times(last_r, rr)
        t = t[t < t1]
        beats.add(t, VENT_NORMAL, ATRIUM_RETROGRADE, 0.0, "N")
    elif cond == "ventricular_paced":
        rate = rng.choice([60.0, 70.0, 80.0])       # common programmed lower rates
        rr0 = 60.0 / rate
        t = last_r + rr0 * np.arange(1, int(span / rr0) + 2)
        t = t[t < t1]
        beats.add(t, VENT_PACED, ATRIUM_NONE, 0.0, "P")
    else:
        raise SignalError(
            f"unknown condition {cond!r}; known: {', '.join(CONDITIONS)}"
        )
    return float(t[-1]) if t.size else last_r
