"""QRSConfig: the detector's constants passed in explicitly, frozen, validated, and honoured
by a stream and an offline run alike (issue 28: no module globals to patch)."""

import dataclasses
from dataclasses import replace

import numpy as np
import pytest

from edge_ecg.errors import SignalError
from edge_ecg.signal import qrs
from edge_ecg.signal.qrs import (
    DEFAULT_QRS,
    QRSConfig,
    detect_beats,
    qrs_detect,
    qrs_flush,
    qrs_initial,
)
from edge_ecg.signal.scoring import score_beats

FS = 360.0


def couplet_train(fs=FS, seconds=30.0, gap_s=0.26, seed=0):
    """Identical narrow beats at RR 0.8 s; every sixth is followed `gap_s` later by a second,
    identical beat (a couplet, as close as an R-on-T ectopic), then a compensatory pause."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * fs)) / fs
    x = 0.01 * rng.standard_normal(t.size)
    r, k, beats, close = 0.5, 0, [], []
    while r < seconds - 1.0:
        beats.append(r)
        if k % 6 == 5:
            beats.append(r + gap_s)
            close.append(r + gap_s)
            r += gap_s
        r += 0.8
        k += 1
    for b in beats:
        x += np.exp(-0.5 * ((t - b) / 0.010) ** 2)
    return x, np.round(np.array(beats) * fs).astype(np.int64), \
        np.round(np.array(close) * fs).astype(np.int64)


def stream(x, fs, cuts, config):
    state = qrs_initial(fs, config=config)
    beats, start = [], 0
    for stop in list(cuts) + [len(x)]:
        found, state = qrs_detect(x[start:stop], state)
        beats += found
        start = stop
    return beats + qrs_flush(state)[0]


def test_defaults_are_todays_values():
    """The values the detector was tuned with (module docstring); a change here is a retune."""
    assert DEFAULT_QRS == QRSConfig()
    assert (DEFAULT_QRS.threshold, DEFAULT_QRS.refractory_s, DEFAULT_QRS.twave_s,
            DEFAULT_QRS.mwi_s, DEFAULT_QRS.hold_rr, DEFAULT_QRS.premature_slope) == \
        (0.4, 0.200, 0.360, 0.120, 0.5, 0.8)
    assert DEFAULT_QRS.detect_band_hz == (5.0, 15.0)


def test_no_module_globals_left_to_patch():
    """Setting `qrs.THRESHOLD` would silently do nothing now: make sure no such name exists."""
    for f in dataclasses.fields(QRSConfig):
        assert not hasattr(qrs, f.name.upper()), f.name


def test_config_is_frozen_and_carried_by_the_state():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_QRS.threshold = 0.5
    cfg = replace(DEFAULT_QRS, refractory_s=0.3)
    st = qrs_initial(FS, config=cfg)
    assert st.config is cfg
    assert st.n_refractory == round(0.3 * FS)
    _, st2 = qrs_detect(np.zeros(100), st)
    assert st2.config is cfg


@pytest.mark.parametrize("fs", [128.0, 250.0, 360.0])
def test_longer_refractory_period_drops_the_close_beat(fs):
    """The default 200 ms lets the second beat of a 260-ms couplet through; 400 ms drops
    exactly those beats. (Not 300 ms: the period runs between MWI peaks, which may sit
    anywhere on the integral's ~100-ms plateau over a narrow QRS.)"""
    x, ref, close = couplet_train(fs)
    s = score_beats(ref, detect_beats(x, fs), fs)
    assert (s.fn, s.fp) == (0, 0), s.to_dict()
    det = detect_beats(x, fs, replace(DEFAULT_QRS, refractory_s=0.40))
    s = score_beats(ref, det, fs)
    assert (s.fn, s.fp) == (close.size, 0), s.to_dict()
    # the beats lost are the couplets' second beats: no detection near any of them
    assert np.all(np.min(np.abs(det[:, None] - close[None, :]), axis=0) > 0.1 * fs)


def test_higher_threshold_floor_finds_no_beats():
    """`min_qrs_mwi` above every QRS's slope integral: nothing is a QRS."""
    x, ref, _ = couplet_train(seconds=10.0)
    assert detect_beats(x, FS).size >= ref.size - 1
    assert detect_beats(x, FS, replace(DEFAULT_QRS, min_qrs_mwi=1e6)).size == 0


def test_stream_and_offline_agree_with_a_non_default_config():
    x, _, _ = couplet_train(seconds=20.0, seed=1)
    cfg = replace(DEFAULT_QRS, refractory_s=0.30, threshold=0.5, mwi_s=0.1)
    offline = stream(x, FS, [], cfg)
    rng = np.random.default_rng(4)
    cuts = np.sort(rng.choice(np.arange(1, len(x)), size=300, replace=False)).tolist()
    chunked = stream(x, FS, cuts, cfg)
    assert [(b.index, b.decided_at) for b in chunked] == \
        [(b.index, b.decided_at) for b in offline]
    default = stream(x, FS, [], DEFAULT_QRS)
    assert [b.index for b in offline] != [b.index for b in default]


def test_fs_range_comes_from_the_config():
    with pytest.raises(SignalError, match="100, 2000"):
        qrs_initial(80.0)
    st = qrs_initial(80.0, config=replace(DEFAULT_QRS, fs_range_hz=(60.0, 2000.0)))
    assert st.fs_hz == 80.0


@pytest.mark.parametrize("field,value", [
    ("threshold", -0.1), ("threshold", 1.5), ("threshold", float("nan")), ("threshold", "0.4"),
    ("refractory_s", 0.0), ("mwi_s", -0.12), ("hold_rr", True), ("fall", 1.0),
    ("level_beats", 0), ("level_beats", 2.5), ("lowpass_hz", 0.0), ("lowpass_order", 0),
    ("detect_band_hz", (15.0, 5.0)), ("detect_band_hz", (5.0, 60.0)), ("detect_band_hz", 5.0),
    ("fs_range_hz", (500.0, 100.0)), ("min_qrs_mwi", float("inf")),
])
def test_bad_values_raise_a_value_error_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"QRSConfig\.{field} = .*default is"):
        replace(DEFAULT_QRS, **{field: value})


def test_lists_become_tuples_and_a_missing_lowpass_is_allowed():
    cfg = replace(DEFAULT_QRS, detect_band_hz=[5, 15], lowpass_hz=None)
    assert cfg.detect_band_hz == (5, 15)
    hash(cfg)                                   # frozen and hashable: usable as a cache key
    # no extra low-pass: one second-order section fewer
    assert qrs_initial(FS, config=cfg).sos.shape[0] == qrs_initial(FS).sos.shape[0] - 1


def test_a_config_of_the_wrong_type_is_refused():
    with pytest.raises(TypeError, match="QRSConfig"):
        qrs_initial(FS, config={"threshold": 0.4})
