"""The wave table: per beat, the centre, widths and dipole vector of each wave, from the beat's
activation types, the preceding RR, the patient and the potassium state (hyperkalaemia: peaked
T, wide QRS, flat P; hypokalaemia: flat T, ST depression, U wave)."""

from __future__ import annotations

import numpy as np

from edge_ecg.data.synth.morphology import Morphology, rotate_frontal, unit
from edge_ecg.data.synth.patient import Patient
from edge_ecg.data.synth.scheduler import (
    ATRIUM_ECTOPIC,
    ATRIUM_RETROGRADE,
    ATRIUM_SINUS,
    VENT_LBBB,
    VENT_NORMAL,
    VENT_PACED,
    VENT_PVC,
    VENT_RBBB,
)

# Waves of one beat, in order. P1/P2: right and left atrial halves of the P wave (gives the
# biphasic P of V1); R2: a late QRS component (RBBB R', LBBB notch, ectopic second lobe);
# ST: a broad ST-segment deviation (hypokalaemic depression, discordant ST of wide QRS).
_WAVES = ("P1", "P2", "Q", "R", "S", "R2", "ST", "T", "U")
_W = {name: i for i, name in enumerate(_WAVES)}


def wave_table(r_s, ventricle, atrium, pr_s, rr_prev, p: Patient, m: Morphology, potassium: str,
                rng: np.random.Generator):
    """Per-beat wave parameters: centre (s, relative to R), left/right sigma (s), and dipole
    vector (mV), each `(B, W)` or `(B, W, 3)`."""
    b, w = r_s.size, len(_WAVES)
    c = np.zeros((b, w))
    sl = np.full((b, w), 0.01)
    sr = np.full((b, w), 0.01)
    v = np.zeros((b, w, 3))
    hyper, hypo = potassium == "hyper", potassium == "hypo"

    # QRS duration per beat and type; hyperkalaemia widens the QRS (Parham WA et al.,
    # Tex Heart Inst J 33:40-47, 2006: peaked T, then P flattening and QRS widening).
    d = np.select([ventricle == VENT_LBBB, ventricle == VENT_RBBB, ventricle == VENT_PVC,
                   ventricle == VENT_PACED],
                  [m.bbb_qrs_s, m.bbb_qrs_s - 0.01, m.pvc_qrs_s, m.paced_qrs_s], p.qrs_s)
    if hyper:
        d = d * rng.uniform(1.15, 1.35)
    onset = -0.45 * d                                  # QRS onset relative to the R peak
    resp = 1.0 + 0.06 * np.sin(2 * np.pi * p.resp_hz * r_s)   # respiratory amplitude modulation

    # Normal (and RBBB's initial) activation.
    normal = (ventricle == VENT_NORMAL) | (ventricle == VENT_RBBB)
    dn = np.where(ventricle == VENT_RBBB, p.qrs_s, d)
    for name, cc, s in (("Q", -0.30, 0.07), ("R", 0.0, 0.085), ("S", 0.28, 0.08)):
        i = _W[name]
        c[:, i] = np.where(normal, cc * dn, c[:, i])
        sl[:, i] = sr[:, i] = np.where(normal, s * dn, sl[:, i])
        v[:, i] = np.where(normal[:, None], m.vec[name][None, :] * resp[:, None], v[:, i])

    # RBBB: delayed right-ventricular activation, a terminal rightward-anterior R' (rSR' in V1,
    # wide S in I and V6).
    rb = ventricle == VENT_RBBB
    if rb.any():
        i = _W["R2"]
        c[rb, i] = 0.28 * p.qrs_s + 0.5 * (d[rb] - p.qrs_s) + 0.015
        sl[rb, i] = sr[rb, i] = 0.22 * (d[rb] - 0.6 * p.qrs_s)
        v[rb, i] = unit([-0.6, 0.1, -0.8]) * 0.9 * p.qrs_scale
        v[rb, _W["S"]] *= 0.6

    # LBBB: no septal q, broad notched leftward-posterior R, QS in V1-V3.
    lb = ventricle == VENT_LBBB
    if lb.any():
        base = rotate_frontal(unit([0.75, 0.35, 0.7]), p.axis_deg - 50.0) * 1.7 * p.qrs_scale
        c[lb, _W["Q"]] = -0.3 * d[lb]
        sl[lb, _W["Q"]] = sr[lb, _W["Q"]] = 0.09 * d[lb]
        v[lb, _W["Q"]] = unit([0.5, 0.1, 0.4]) * 0.35 * p.qrs_scale
        sl[lb, _W["R"]] = sr[lb, _W["R"]] = 0.11 * d[lb]
        v[lb, _W["R"]] = base
        c[lb, _W["R2"]] = 0.22 * d[lb]
        sl[lb, _W["R2"]] = sr[lb, _W["R2"]] = 0.09 * d[lb]
        v[lb, _W["R2"]] = unit([0.7, -0.1, 0.8]) * 1.1 * p.qrs_scale

    # PVC (unifocal) and paced beats: wide, no normal conduction system.
    # RV-apical pacing: LBBB-like (QS in V1) with a left superior axis.
    paced_vec = np.stack([unit([0.55, -0.7, 0.6]) * 1.8 * p.qrs_scale,
                          unit([0.3, -0.8, 0.5]) * 0.9 * p.qrs_scale,
                          -unit([0.45, -0.75, 0.55]) * 0.4])
    for kind, vecs in ((VENT_PVC, m.pvc_vec), (VENT_PACED, paced_vec)):
        k = ventricle == kind
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
    wide = (ventricle == VENT_LBBB) | (ventricle == VENT_PVC) | (ventricle == VENT_PACED)
    # Secondary repolarisation changes: T discordant to the main QRS vector in wide beats.
    qrs_dir = v[:, _W["R"]] + v[:, _W["R2"]]
    qrs_dir = qrs_dir / np.maximum(np.linalg.norm(qrs_dir, axis=1, keepdims=True), 1e-9)
    t_vec = np.where(ventricle[:, None] == VENT_LBBB, -qrs_dir * 0.4, m.vec["T"][None, :])
    t_vec = np.where(ventricle[:, None] == VENT_PVC, m.pvc_vec[2][None, :], t_vec)
    t_vec = np.where(ventricle[:, None] == VENT_PACED, paced_vec[2][None, :], t_vec)
    t_vec = np.where(rb[:, None], unit([0.55, 0.45, 0.3]) * 0.3 * p.t_scale, t_vec)
    v[:, i] = t_vec * t_amp[:, None]
    i = _W["ST"]
    c[:, i] = 0.45 * d + 0.06
    sl[:, i], sr[:, i] = 0.03, 0.05
    if hypo:
        # ST depression (0.05-0.1 mV) and a U wave of 0.1-0.2 mV, largest in V2-V3.
        v[:, i] = -unit(m.vec["T"]) * rng.uniform(0.06, 0.11)
        u = _W["U"]
        c[:, u] = c[:, _W["T"]] + 0.17
        sl[:, u], sr[:, u] = 0.045, 0.04
        v[:, u] = m.vec["U"] * rng.uniform(0.1, 0.2)
    v[wide, i] = 0.3 * v[wide, _W["T"]]

    # Atrial waves.
    p_amp = rng.uniform(0.2, 0.5) if hyper else (1.2 if hypo else 1.0)
    p_dur = p.p_s * (1.3 if hyper else 1.0)
    pr_eff = pr_s + (0.02 if hyper else 0.0)
    p_on = onset - pr_eff
    for name, frac in (("P1", 0.38), ("P2", 0.62)):
        i = _W[name]
        c[:, i] = p_on + frac * p_dur
        sl[:, i] = sr[:, i] = p_dur / 6.5
    sinus = atrium == ATRIUM_SINUS
    v[sinus, _W["P1"]] = m.vec["P1"] * p_amp
    v[sinus, _W["P2"]] = m.vec["P2"] * p_amp
    ect = atrium == ATRIUM_ECTOPIC
    v[ect, _W["P1"]] = m.vec["PA"] * p_amp
    v[ect, _W["P2"]] = m.vec["PA"] * 0.3 * p_amp
    retro = atrium == ATRIUM_RETROGRADE
    c[retro, _W["P1"]] = 0.07
    sl[retro, _W["P1"]] = sr[retro, _W["P1"]] = 0.012
    v[retro, _W["P1"]] = m.vec["PR"]
    return c, sl, sr, v, onset
