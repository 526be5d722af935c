"""`synthesize_schedule` and `synthesize`: one patient's record, from the rhythm schedule
through the wave table, rendering, atrial waves, pacing spikes, noise and lead projection."""

from __future__ import annotations

import numpy as np

from edge_ecg.data.synth.morphology import DOWER, DOWER_LEADS, draw_morphology, project_leads8
from edge_ecg.data.synth.noise import DEFAULT_NOISE_MIX, NOISE_KINDS, noise8
from edge_ecg.data.synth.patient import draw_patient
from edge_ecg.data.synth.record import CONDITIONS, POTASSIUM, SynthRecord, arrhythmia_index
from edge_ecg.data.synth.render import atrial_activity, render_beats
from edge_ecg.data.synth.scheduler import (
    ATRIUM_NONE,
    ATRIUM_SINUS,
    VENT_NORMAL,
    VENT_PACED,
    BeatSchedule,
    schedule_segment,
)
from edge_ecg.data.synth.waves import wave_table
from edge_ecg.errors import SignalError
from edge_ecg.signal.leads import STANDARD_12, derive_limb_leads


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
    pat = draw_patient(age, sex, r_pat)
    morph = draw_morphology(pat, r_morph)
    total_s = sum(s for _, s in schedule)
    n = int(round(total_s * fs_hz))

    beats, atrial = BeatSchedule(), []
    t0 = 0.0
    last_r = -r_rhythm.uniform(0.1, 0.8)     # a beat before the record starts
    beats.add([last_r], VENT_NORMAL, ATRIUM_NONE if schedule[0][0] in (
        "atrial_fibrillation", "af_rapid_ventricular_response", "atrial_flutter",
        "supraventricular_tachycardia", "ventricular_paced") else ATRIUM_SINUS, pat.pr_s, "N")
    seg_samples = []
    for i, (cond, sec) in enumerate(schedule):
        t1 = t0 + sec
        # The last segment runs a little past the end so the record ends mid-rhythm.
        last_r = schedule_segment(cond, t0, t1 + (1.0 if i == len(schedule) - 1 else 0.0),
                                   last_r, pat, r_rhythm, beats, atrial)
        seg_samples.append((int(round(t0 * fs_hz)), int(round(t1 * fs_hz)), cond))
        t0 = t1
    if schedule[0][0] == "ventricular_paced":
        beats.ventricle[0] = np.array([VENT_PACED])
        beats.symbol[0] = np.array(["P"])
    r_s, ventricle, atrium, pr_s, symbol = beats.arrays()
    rr_prev = np.diff(r_s, prepend=r_s[0] - 60.0 / pat.hr_bpm)
    c, sl, sr, v, onset = wave_table(r_s, ventricle, atrium, pr_s, rr_prev, pat, morph, potassium,
                                     r_morph)
    xyz = render_beats(n, fs_hz, r_s, c, sl, sr, v)

    # Ground-truth R peaks: the largest |deflection| of the clean lead II within 60 ms of the
    # nominal R time (before atrial waves, spikes and noise).
    ii = xyz @ DOWER[1]
    centre = np.round(r_s * fs_hz).astype(np.int64)
    inside = (centre >= 0) & (centre < n)
    half = int(round(0.06 * fs_hz))
    win = np.clip(centre[inside, None] + np.arange(-half, half + 1)[None, :], 0, n - 1)
    r_peaks = win[np.arange(win.shape[0]), np.argmax(np.abs(ii[win]), axis=1)].astype(np.int64)
    beat_types = tuple(str(s) for s in symbol[inside])

    xyz += atrial_activity(n, fs_hz, atrial, r_rhythm)
    # Pacing spikes: ~0.5 ms pulses, one sample at this rate, with a small opposite-polarity
    # recharge sample after (bipolar/unipolar amplitudes 1-5 mV as displayed).
    paced = np.flatnonzero(ventricle == VENT_PACED)
    if paced.size:
        sp = np.round((r_s[paced] + onset[paced] - 0.004) * fs_hz).astype(np.int64)
        for off, gain in ((0, 1.0), (1, -0.25)):
            s = sp + off
            s = s[(s >= 0) & (s < n)]
            xyz[s] += morph.spike_vec * gain

    y8 = project_leads8(xyz)
    if snr_db is not None:
        p_sig = np.mean((y8 - y8.mean(axis=0)) ** 2, axis=0)
        nz = noise8(n, fs_hz, mix, r_noise, powerline_hz)
        p_nz = np.mean(nz ** 2, axis=0)
        if not np.all(p_nz > 0):
            raise SignalError(f"noise mix {mix} gives no noise in some leads at {fs_hz} Hz "
                              f"(mains above Nyquist?); add 'emg' or 'baseline' to reach "
                              f"{snr_db} dB")
        y8 = y8 + nz * np.sqrt(p_sig / p_nz / 10 ** (float(snr_db) / 10))[None, :]
    y8 = y8.astype(np.float32)
    have = {name: y8[:, j] for j, name in enumerate(DOWER_LEADS)}
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
