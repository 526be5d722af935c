"""A synthetic patient: age, sex and the ECG parameters drawn from age- and sex-specific
published norms."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_ecg.errors import SignalError


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


def draw_patient(age: float | None, sex, rng: np.random.Generator) -> Patient:
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
    sex = sex_code(sex, rng)
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


def sex_code(sex, rng: np.random.Generator) -> int:
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
