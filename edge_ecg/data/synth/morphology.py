"""Dipole geometry: the Dower matrix that projects a 3-D cardiac dipole (Frank X, Y, Z) to the
eight independent leads, and each patient's dipole vectors of every wave template."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_ecg.data.synth.patient import Patient

# Dower matrix: rows I, II, V1..V6; columns Frank X, Y, Z (Dower et al. 1980, as tabulated
# by Edenbrandt & Pahlm, J Electrocardiol 21:361-367, 1988).
DOWER = np.array([
    [0.632, -0.235, 0.059],
    [0.235, 1.066, -0.132],
    [-0.515, 0.157, -0.917],
    [0.044, 0.164, -1.387],
    [0.882, 0.098, -1.277],
    [1.213, 0.127, -0.601],
    [1.125, 0.127, -0.086],
    [0.831, 0.076, 0.230],
])
DOWER_LEADS = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")


def project_leads8(xyz: np.ndarray) -> np.ndarray:
    return xyz @ DOWER.T                                          # (T, 3) -> (T, 8)


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def rotate_frontal(v: np.ndarray, deg: float) -> np.ndarray:
    """Rotate a dipole vector in the frontal (X, Y) plane by `deg` (positive = clockwise
    towards the feet, as the hexaxial axis is measured)."""
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1], v[2]])


@dataclass
class Morphology:
    """Per-record dipole vectors (mV) of each template."""

    vec: dict
    pvc_vec: np.ndarray       # (3 waves: R, R2, T) x 3 for the record's (unifocal) PVC focus
    spike_vec: np.ndarray
    pvc_qrs_s: float
    paced_qrs_s: float
    bbb_qrs_s: float


def draw_morphology(p: Patient, rng: np.random.Generator) -> Morphology:
    """Dipole vectors for this patient, with a little individual scatter."""
    def jit(v, s=0.12):
        return np.asarray(v, dtype=np.float64) + rng.normal(0, s, 3) * np.linalg.norm(v)

    axis_rot = p.axis_deg - 50.0           # the templates below have a +50 degree QRS axis
    q = p.qrs_scale
    vec = {
        "P1": unit(jit([0.2, 0.8, -0.5])) * 0.10,
        "P2": unit(jit([0.7, 0.4, 0.5])) * 0.09,
        "Q": rotate_frontal(unit(jit([-0.4, 0.1, -0.9])), axis_rot) * 0.15 * q,
        "R": rotate_frontal(unit(jit([0.64, 0.77, 0.3], 0.08)), axis_rot) * 1.6 * q,
        "S": rotate_frontal(unit(jit([-0.25, -0.15, 0.95])), axis_rot) * 0.7 * q,
        "T": rotate_frontal(unit(jit([0.55, 0.55, -0.35])), 0.5 * axis_rot) * 0.36 * p.t_scale,
        "U": unit([0.45, 0.35, -0.8]),
        "PA": unit(jit([0.3, -0.8, -0.1])) * 0.12,     # ectopic (low) atrial P: inverted in II
        "PR": unit([-0.2, -0.8, -0.3]) * 0.07,              # retrograde P (SVT)
    }
    # Unifocal PVC: a random main vector, a rotated second lobe and a discordant T.
    main = unit(rng.normal(0, 1, 3) + np.array([0.0, 0.6, 0.0])) * rng.uniform(1.6, 2.4) * q
    second = unit(main + rng.normal(0, 0.8, 3)) * 0.6 * np.linalg.norm(main)
    pvc = np.stack([main, second, -unit(main + second) * rng.uniform(0.35, 0.55)])
    spike = unit(jit([0.2, -0.6, -0.7], 0.3)) * rng.uniform(2.0, 5.0)
    return Morphology(vec=vec, pvc_vec=pvc, spike_vec=spike,
                  pvc_qrs_s=float(rng.uniform(0.14, 0.18)),
                  paced_qrs_s=float(rng.uniform(0.15, 0.18)),
                  bbb_qrs_s=float(rng.uniform(0.13, 0.16)))
