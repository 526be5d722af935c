"""DelineationConfig: the delineator's constants passed in explicitly, frozen, validated, and
honoured by a stream and an offline run alike (issue 28: no module globals to patch)."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from itertools import pairwise

import numpy as np
import pytest

from edge_ecg.data.synth import synthesize
from edge_ecg.errors import SignalError
from edge_ecg.signal import delineate as dl
from edge_ecg.signal.delineate import (
    DEFAULT_DELINEATION,
    DelineationConfig,
    delineate,
    delineate_flush,
    delineate_initial,
    delineate_record,
)
from edge_ecg.signal.qrs import detect_beats


@pytest.fixture(scope="module")
def sinus():
    rec = synthesize("sinus_rhythm", seconds=12.0, seed=1)
    x = rec.signal.astype(np.float64)
    beats = [(int(r), int(r)) for r in detect_beats(x, rec.fs_hz)]
    return x, rec.fs_hz, beats


def test_no_module_globals_left_to_patch():
    """Setting `delineate.POST_S` would silently do nothing now; the knobs that did nothing
    (STRONG_FRAC 0, COMB_Q empty) are gone, not moved into the config."""
    for f in dataclasses.fields(DelineationConfig):
        assert not hasattr(dl, f.name.upper()), f.name
    for gone in ("STRONG_FRAC", "COMB_Q", "strong_frac", "comb_q"):
        assert not hasattr(dl, gone) and not hasattr(DEFAULT_DELINEATION, gone)


def test_defaults_are_todays_values():
    assert DEFAULT_DELINEATION == DelineationConfig()
    assert (DEFAULT_DELINEATION.pre_s, DEFAULT_DELINEATION.post_s, DEFAULT_DELINEATION.p_snr,
            DEFAULT_DELINEATION.t_end_max_s) == (0.60, 0.80, 3.0, (0.10, 0.40, 0.70))


def test_config_is_frozen_and_carried_by_the_state():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_DELINEATION.post_s = 1.0
    cfg = replace(DEFAULT_DELINEATION, post_s=1.0)
    st = delineate_initial(500.0, config=cfg)
    assert st.config is cfg and st.post == 500
    _, st2 = delineate(np.zeros((10, 2)), [], st)
    assert st2.config is cfg


def test_post_s_sets_the_decision_delay(sinus):
    x, fs, beats = sinus
    for post_s in (0.8, 1.0):
        waves = delineate_record(x, fs, beats, config=replace(DEFAULT_DELINEATION, post_s=post_s))
        inside = [w for w in waves if w.r + round(post_s * fs) < x.shape[0]]
        assert len(inside) >= 10
        assert {w.decided_at - w.r for w in inside} == {round(post_s * fs)}


def test_p_wave_floor_removes_every_p_wave(sinus):
    """`p_min_mv` above any P wave's size: QRS and T stay, every P goes."""
    x, fs, beats = sinus
    base = [w for w in delineate_record(x, fs, beats) if w.valid]
    assert sum(w["p_on"] is not None for w in base) >= len(base) - 2
    high = [w for w in delineate_record(x, fs, beats,
                                        config=replace(DEFAULT_DELINEATION, p_min_mv=5.0))
            if w.valid]
    assert [w.r for w in high] == [w.r for w in base]
    assert all(w["p_on"] is None and w["p_peak"] is None for w in high)
    assert [(w["qrs_on"], w["t_off"]) for w in high] == [(w["qrs_on"], w["t_off"]) for w in base]


def _stream(x, fs, beats, cuts, cfg):
    st, out = delineate_initial(fs, config=cfg), []
    for a, b in pairwise(cuts):
        got, st = delineate(x[a:b], [p for p in beats if a <= p[1] < b], st)
        out += got
    return out + delineate_flush(st)[0]


def test_stream_and_offline_agree_with_a_non_default_config(sinus):
    x, fs, beats = sinus
    cfg = replace(DEFAULT_DELINEATION, post_s=0.9, qrs_sig=0.3, p_snr=2.0, t_ref_s=0.1)
    offline = delineate_record(x, fs, beats, config=cfg)
    rng = np.random.default_rng(2)
    cuts = np.unique(np.concatenate([[0, x.shape[0]], rng.integers(0, x.shape[0], 200)]))
    chunked = _stream(x, fs, beats, cuts, cfg)
    assert len(chunked) == len(offline)
    for u, v in zip(chunked, offline):
        assert (u.r, u.decided_at, u.valid, u.points) == (v.r, v.decided_at, v.valid, v.points)
        np.testing.assert_array_equal(u.per_lead, v.per_lead)
    default = delineate_record(x, fs, beats)
    assert [w.points for w in offline] != [w.points for w in default]


def test_fs_range_comes_from_the_config():
    with pytest.raises(SignalError, match="100, 2000"):
        delineate_initial(80.0)
    assert delineate_initial(80.0, config=replace(DEFAULT_DELINEATION,
                                                  fs_range_hz=(50.0, 2000.0))).fs_hz == 80.0


@pytest.mark.parametrize("field,value", [
    ("post_s", 0.0), ("post_s", 0.2), ("pre_s", 0.1), ("qrs_on_q", 1.5), ("qrs_off_q", -0.1),
    ("p_snr", -1.0), ("flat_mv", float("nan")), ("hold_s", 0.0), ("p_min_mv", "0.01"),
    ("t_end_max_s", (0.1, 0.4)), ("t_end_max_s", (0.1, 0.4, 0.0)), ("qrs_search_s", 0.15),
    ("fs_range_hz", (2000.0, 100.0)), ("qrs_lowpass_hz", 0.0), ("p_alone", True),
])
def test_bad_values_raise_a_value_error_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"DelineationConfig\.{field} = .*default is"):
        replace(DEFAULT_DELINEATION, **{field: value})


def test_a_config_of_the_wrong_type_is_refused():
    with pytest.raises(TypeError, match="DelineationConfig"):
        delineate_initial(500.0, config={"post_s": 0.8})
