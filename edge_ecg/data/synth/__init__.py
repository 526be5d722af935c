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

Modules, in the order a record is made: `patient` (norms by age and sex), `morphology` (dipole
vectors, the Dower projection), `scheduler` (beat times and activation types per rhythm
segment), `waves` (the per-beat wave table, potassium effects included), `render` (beats and
atrial waves to a dipole signal), `noise`, `generator` (`synthesize_schedule`, `synthesize`),
`record` (conditions, `SynthRecord`), `cohort` (`cohort_plan`).
"""

from edge_ecg.data.synth.cohort import CohortEntry, cohort_plan
from edge_ecg.data.synth.generator import synthesize, synthesize_schedule
from edge_ecg.data.synth.noise import DEFAULT_NOISE_MIX, NOISE_KINDS
from edge_ecg.data.synth.patient import Patient, draw_patient
from edge_ecg.data.synth.record import CONDITIONS, POTASSIUM, SynthRecord, arrhythmia_index

__all__ = [
    "CONDITIONS", "DEFAULT_NOISE_MIX", "NOISE_KINDS", "POTASSIUM", "CohortEntry", "Patient",
    "SynthRecord", "arrhythmia_index", "cohort_plan", "draw_patient", "synthesize",
    "synthesize_schedule",
]
