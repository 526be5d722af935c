"""The alarm engine on hand-made event sequences: runs, couplets, patterns, AF from the RR
history, VF from segments, asystole vs the technical alarm, hysteresis."""

import numpy as np

from edge_ecg.runtime.alarms import AlarmEngine, AlarmLimits, StreamAlarms, rr_irregular

FS = 250.0


def _beats(eng, times_s, classes):
    out = []
    for t, c in zip(times_s, classes):
        out += eng.observe({"type": "beat", "index": int(round(t * FS)), "beat_class": c})
    return out


def _codes(eng):
    return [a["code"] for a in eng.active()]


def test_three_v_at_150_bpm_is_vt_with_its_onset_end_beats_and_rate():
    eng = AlarmEngine(FS)
    t = [0.0, 0.8, 1.6, 2.4]                       # sinus at 75 /min
    v = [2.8, 3.2, 3.6]                            # three V, 0.4 s apart: 150 /min
    out = _beats(eng, t, "NNNN")
    assert out == []
    out = _beats(eng, v[:2], "VV")
    assert [a.code for a in out] == []             # two V: not yet anything
    out = _beats(eng, v[2:], "V")
    assert [(a.code, a.state, a.priority) for a in out] == [("vt", "onset", "high")]
    on = out[0]
    assert on.onset_index == int(2.8 * FS) and on.index == int(3.6 * FS)
    assert on.evidence["beats"] == [int(x * FS) for x in v]
    assert on.evidence["rate_bpm"] == 150.0
    assert _codes(eng) == ["vt"]
    out = _beats(eng, [4.4], "N")                  # the run ends with the next non-V beat
    assert [(a.code, a.state) for a in out] == [("vt", "end")]
    assert out[0].end_index == int(3.6 * FS) and out[0].evidence["n_beats"] == 3
    assert "vt" not in _codes(eng)
    js = out[0].to_json()
    assert js["type"] == "alarm" and js["onset_s"] == 2.8 and js["end_s"] == 3.6


def test_the_monitors_chain_three_fast_v_are_nsvt_and_the_fifth_raises_vt():
    """`vt_run = 5`: 3-4 fast V beats a medium non-sustained VT; the fifth ends it and raises
    the red VT from the run's first beat."""
    eng = AlarmEngine(FS, AlarmLimits(vt_run=5))
    _beats(eng, [0.0, 0.8], "NN")
    out = _beats(eng, [1.2, 1.6, 2.0], "VVV")
    assert [(a.code, a.state, a.priority) for a in out] == [("nsvt", "onset", "medium")]
    assert out[0].onset_index == int(1.2 * FS) and out[0].evidence["rate_bpm"] == 150.0
    out = _beats(eng, [2.4], "V")
    assert out == [] and _codes(eng) == ["nsvt"]
    out = _beats(eng, [2.8], "V")                  # the fifth: VT takes over
    assert [(a.code, a.state, a.priority) for a in out] == [("nsvt", "end", "medium"),
                                                          ("vt", "onset", "high")]
    assert out[0].end_index == int(2.4 * FS)
    assert out[1].onset_index == int(1.2 * FS) and out[1].evidence["n_beats"] == 5
    assert _codes(eng) == ["vt"]
    out = _beats(eng, [3.2, 4.0], "VN")
    assert [(a.code, a.state) for a in out] == [("vt", "end")]
    assert out[0].evidence["n_beats"] == 6 and out[0].evidence["rate_bpm"] == 150.0
    short = AlarmEngine(FS, AlarmLimits(vt_run=5))
    out = _beats(short, [0.0, 0.8, 1.2, 1.6, 2.0, 2.8], "NNVVVN")
    assert [(a.code, a.state) for a in out] == [("nsvt", "onset"), ("nsvt", "end")]


def test_limits_changed_while_running_keep_the_state_and_act_from_then_on():
    """`set_limits`: a bed restored under another unit file, or a limit changed while it
    runs: the engine keeps what it has seen and judges what follows as a fresh engine under
    the new limits would."""
    eng, fresh = AlarmEngine(FS), AlarmEngine(FS, AlarmLimits(vt_run=5, on=4, off=6))
    _beats(eng, [0.0, 0.8, 1.6], "NNN")
    eng.set_limits(AlarmLimits(vt_run=5, on=4, off=6))
    assert eng.limits.vt_run == 5 and eng.last_beat == int(1.6 * FS)
    assert {k: (c.on_n, c.off_n) for k, c in eng.conds.items()} == {
        k: (c.on_n, c.off_n) for k, c in fresh.conds.items()}
    assert eng.conds["brady"].on_n == 4 and eng.conds["asystole"].on_n == 1
    out = _beats(eng, [2.0, 2.4, 2.8], "VVV")
    assert [(a.code, a.priority) for a in out] == [("nsvt", "medium")]


def test_a_longer_run_grows_and_a_slow_run_is_an_idioventricular_v_run():
    eng = AlarmEngine(FS)
    _beats(eng, [0.0, 0.8], "NN")
    out = _beats(eng, [1.2, 1.6, 2.0, 2.4, 2.8], "VVVVV")
    assert [a.code for a in out] == ["vt"]
    out = _beats(eng, [3.6], "N")
    assert out[0].evidence["n_beats"] == 5 and out[0].evidence["rate_bpm"] == 150.0
    slow = AlarmEngine(FS)
    _beats(slow, [0.0, 0.8], "NN")
    out = _beats(slow, [1.8, 2.8, 3.8], "VVV")     # 60 /min: accelerated idioventricular
    assert [(a.code, a.priority) for a in out] == [("v_run", "medium")]
    assert out[0].evidence["rate_bpm"] == 60.0


def test_a_slow_run_that_speeds_up_into_vt_escalates_only_where_the_unit_asks():
    """`vt_escalate_beats` N: an idioventricular run whose last max(N, vt_run) V come at >=
    vt_bpm becomes the red VT alarm, from the first of them (MIT-BIH 223's 55-s VT starts at
    96 /min). Off by default: the run stays the yellow v_run, as before; a run that stays slow
    never escalates; under the monitors' chain (vt_run 5) five beats must be that fast."""
    v = [1.5, 2.5, 3.5, 4.5]                       # 60 /min
    default = AlarmEngine(FS)
    _beats(default, [0.0, 0.8], "NN")
    _beats(default, v + [4.9, 5.3, 5.7, 6.1], "V" * 8)
    assert _codes(default) == ["v_run"]            # off: the run is judged by its start

    eng = AlarmEngine(FS, AlarmLimits(vt_escalate_beats=3))
    _beats(eng, [0.0, 0.8], "NN")
    out = _beats(eng, v, "VVVV")
    assert [(a.code, a.state) for a in out] == [("v_run", "onset")]
    assert _beats(eng, [4.9], "V") == []           # 3.5, 4.5, 4.9: 86 /min, still slow
    out = _beats(eng, [5.3], "V")                  # 4.5, 4.9, 5.3: 150 /min
    assert [(a.code, a.state, a.priority) for a in out] == [
        ("v_run", "end", "medium"), ("vt", "onset", "high")]
    assert out[1].onset_index == int(4.5 * FS)
    assert out[1].evidence["rate_bpm"] == 150.0
    assert _codes(eng) == ["vt"]
    _beats(eng, [5.7], "V")                        # the VT's own rate, not the run's from 1.5 s
    assert eng.episodes["vt"].extra["rate_bpm"] == 150.0
    out = _beats(eng, [6.0], "N")                  # the run ends: so does its VT alarm
    assert [(a.code, a.state) for a in out] == [("vt", "end")]

    steady = AlarmEngine(FS, AlarmLimits(vt_escalate_beats=3))
    _beats(steady, [0.0, 0.8], "NN")
    out = _beats(steady, [1.5 + 0.7 * k for k in range(12)], "V" * 12)   # 86 /min
    assert [a.code for a in out] == ["v_run"] and _codes(steady) == ["v_run"]

    chain = AlarmEngine(FS, AlarmLimits(vt_run=5, vt_escalate_beats=3))
    _beats(chain, [0.0, 0.8], "NN")
    _beats(chain, v + [4.9, 5.3], "VVVVVV")
    assert _codes(chain) == ["v_run"]              # 2.5 ... 5.3: 86 /min over five
    out = _beats(chain, [5.7], "V")                # 3.5 ... 5.7: 109 /min over five
    assert [(a.code, a.state) for a in out] == [("v_run", "end"), ("vt", "onset")]
    assert out[1].onset_index == int(3.5 * FS)


def test_two_v_is_a_couplet_not_vt_and_recurring_couplets_are_one_alarm():
    eng = AlarmEngine(FS)
    _beats(eng, [0.0, 0.8], "NN")
    out = _beats(eng, [1.2, 1.6, 2.4], "VVN")
    assert [(a.code, a.state, a.priority) for a in out] == [("couplet", "onset", "low")]
    assert out[0].onset_index == int(1.2 * FS)
    assert out[0].evidence["beats"] == [int(1.2 * FS), int(1.6 * FS)]
    assert "vt" not in _codes(eng)
    out = _beats(eng, [3.2, 3.6, 4.0, 4.8], "NVVN")   # another couplet 2.4 s later: same alarm
    assert out == []
    ep = [a for a in eng.active() if a["code"] == "couplet"][0]
    assert ep["evidence"]["occurrences"] == 2 and ep["evidence"]["n_beats"] == 4
    # it clears once no couplet came for advisory_hold_s (10 s)
    times = np.arange(5.6, 16.0, 0.8)
    out = _beats(eng, times, "N" * len(times))
    assert [(a.code, a.state) for a in out] == [("couplet", "end")]
    assert out[0].end_index == int(4.0 * FS)


def test_bigeminy_needs_three_cycles_and_trigeminy_its_own_pattern():
    eng = AlarmEngine(FS)
    seq = "NVNVN"
    out = _beats(eng, np.arange(len(seq)) * 0.7, seq)
    assert out == []                                # two cycles: not yet
    out = _beats(eng, [3.5], "V")                   # N V N V N V: three
    assert [(a.code, a.priority) for a in out] == [("bigeminy", "low")]
    assert out[0].onset_index == 0
    tri = AlarmEngine(FS)
    seq = "NNVNNVNNV"
    out = _beats(tri, np.arange(len(seq)) * 0.7, seq)
    assert [a.code for a in out] == ["trigeminy"]
    assert "bigeminy" not in _codes(tri)


def test_eight_s_at_150_per_min_are_svt_through_a_pvc_until_a_normal_beat():
    """Supraventricular tachycardia (medium), as profiles/alarms/svt.toml sets it (off by
    default): 8 consecutive S beats at >= 150 /min; a PVC inside it neither ends nor extends
    it; the next N ends it. Slower, or fewer, or broken by a V before it starts: no alarm."""
    from pathlib import Path

    from edge_ecg.runtime.alarm_settings import read_alarm_settings

    s = [2.0 + 0.4 * k for k in range(8)]              # 8 S at 0.4 s: 150 /min
    assert _beats(AlarmEngine(FS), [0.0, 0.8, 1.6] + s, "NNN" + "S" * 8) == []    # the default
    profile = Path(__file__).resolve().parents[2] / "profiles" / "alarms" / "svt.toml"
    on = read_alarm_settings(profile).limits
    assert (on.svt_run, on.svt_bpm) == (8, 150.0)
    eng = AlarmEngine(FS, on)
    _beats(eng, [0.0, 0.8, 1.6], "NNN")
    out = _beats(eng, s[:7], "S" * 7)
    assert out == []
    out = _beats(eng, s[7:], "S")
    assert [(a.code, a.state, a.priority) for a in out] == [("svt", "onset", "medium")]
    assert out[0].onset_index == int(2.0 * FS) and out[0].evidence["rate_bpm"] == 150.0
    assert out[0].evidence["n_beats"] == 8 and out[0].text == "Supraventricular tachycardia"
    out = _beats(eng, [5.1, 5.8, 6.2], "VSS")           # a PVC and its pause, then S again
    assert out == [] and _codes(eng) == ["svt"]
    out = _beats(eng, [7.0], "N")
    assert [(a.code, a.state) for a in out] == [("svt", "end")]
    assert out[0].end_index == int(6.2 * FS) and out[0].evidence["n_beats"] == 10
    # 8 S at 0.45 s (133 /min): not fast enough; 7 at 150: too few; a V before the eighth
    for times, cls in (([0.45 * k for k in range(9)], "S" * 9),
                       ([0.4 * k for k in range(7)] + [3.0], "S" * 7 + "N"),
                       ([0.4 * k for k in range(9)], "SSSSVSSSS")):
        assert [a.code for a in _beats(AlarmEngine(FS, on), times, cls)] == []
    # a unit's limits: 5 beats at 130 /min
    eng = AlarmEngine(FS, AlarmLimits(svt_run=5, svt_bpm=130.0))
    out = _beats(eng, [0.45 * k for k in range(5)], "S" * 5)
    assert [a.code for a in out] == ["svt"]


def test_af_from_irregular_rr_with_onset_offset_and_the_model_veto():
    rng = np.random.default_rng(0)
    sinus = np.cumsum(np.full(60, 0.8) + rng.normal(0, 0.01, 60))
    af = sinus[-1] + np.cumsum(rng.uniform(0.35, 1.1, 80))
    back = af[-1] + np.cumsum(np.full(60, 0.8) + rng.normal(0, 0.01, 60))
    eng = AlarmEngine(FS)
    out = _beats(eng, np.concatenate([sinus, af, back]), "N" * 200)
    ons = [a for a in out if a.code == "new_af"]
    assert [a.state for a in ons] == ["onset", "end"]
    assert ons[0].priority == "medium"
    # onset within 32 beats (the RR window judged) of the true onset, before it is decided
    assert abs(ons[0].onset_index / FS - sinus[-1]) < 32 * 0.8
    assert ons[0].onset_index < ons[0].index
    assert sinus[-1] < ons[0].index / FS < af[-1]
    assert af[-1] < ons[1].index / FS < back[-1]
    # the model saying "not AF" on the window vetoes the RR call
    eng = AlarmEngine(FS)
    eng.observe({"type": "prediction", "index": 1, "start": 0, "intervals": {"hr_bpm": 75.0},
                 "outputs": {"arrhythmia": {"probs": {"af_or_flutter": 0.1}}}})
    out = _beats(eng, np.concatenate([sinus, af]), "N" * 140)
    assert not [a for a in out if a.code == "new_af"]
    assert not rr_irregular(np.full(32, 200.0), AlarmLimits())


def test_af_confirmation_waits_for_beats_judged_af_and_keeps_the_onset():
    rng = np.random.default_rng(0)
    sinus = np.cumsum(np.full(60, 0.8) + rng.normal(0, 0.01, 60))
    af = sinus[-1] + np.cumsum(rng.uniform(0.35, 1.1, 80))
    t = np.concatenate([sinus, af])
    first = [a for a in _beats(AlarmEngine(FS, AlarmLimits(af_confirm_beats=1)), t, "N" * 140)
             if a.code == "new_af"][0]
    later = [a for a in _beats(AlarmEngine(FS, AlarmLimits(af_confirm_beats=10)), t, "N" * 140)
             if a.code == "new_af"][0]
    assert later.onset_index == first.onset_index        # where the AF began, not when told
    beat_times = np.round(t * FS).astype(int).tolist()
    assert beat_times.index(later.index) == beat_times.index(first.index) + 9
    # a stretch judged AF on fewer beats than asked raises nothing, and a gap starts again
    eng = AlarmEngine(FS, AlarmLimits(af_confirm_beats=10))
    k = beat_times.index(first.index)
    assert not [a for a in _beats(eng, t[:k + 5], "N" * (k + 5)) if a.code == "new_af"]
    eng.observe({"type": "gap", "index": int(t[k + 5] * FS) + 1, "length": 10})
    assert eng.af_run == 0


def test_frequent_pvcs_do_not_make_af():
    eng = AlarmEngine(FS)
    t, cls = [], []
    for k in range(60):       # sinus 75 /min with a premature V every third beat
        t += [k * 2.4, k * 2.4 + 0.8, k * 2.4 + 1.3]
        cls += ["N", "N", "V"]
    out = _beats(eng, t, cls)
    assert not [a for a in out if a.code == "new_af"]
    assert "trigeminy" in _codes(eng)


def test_frequent_pacs_do_not_make_af():
    # sinus 75 /min with a premature S every other beat, its pause not compensatory: the RR
    # series with the S beats in it is as irregular as AF by Dash's measures
    rng = np.random.default_rng(1)
    t, cls, x = [], [], 0.0
    for k in range(120):
        x += 0.8 + rng.normal(0, 0.01)
        t.append(x)
        cls.append("N")
        if k % 2:
            t.append(x + rng.uniform(0.35, 0.6))
            cls.append("S")
    rr = np.diff(t)[:32] * FS
    assert rr_irregular(rr, AlarmLimits())
    eng = AlarmEngine(FS)
    out = _beats(eng, t, cls)
    assert not [a for a in out if a.code == "new_af"]


def _beats_p(eng, times_s, no_p):
    out = []
    for t, absent in zip(times_s, no_p):
        out += eng.observe({"type": "beat", "index": int(round(t * FS)), "beat_class": "N",
                            "pr_ms": None if absent else 160.0})
    return out


def test_af_needs_p_waves_absent_where_beats_are_delineated():
    rng = np.random.default_rng(2)
    irregular = np.cumsum(rng.uniform(0.35, 1.1, 120))
    # P waves before every beat: an irregular sinus rhythm (sinus arrhythmia, wandering
    # pacemaker), not AF
    eng = AlarmEngine(FS)
    assert not [a for a in _beats_p(eng, irregular, [False] * 120) if a.code == "new_af"]
    # none before 60 % of them (the delineator finds "P waves" in fibrillatory waves): AF
    eng = AlarmEngine(FS)
    no_p = rng.uniform(size=120) < 0.6
    ons = [a for a in _beats_p(eng, irregular, no_p) if a.code == "new_af"]
    assert ons and ons[0].state == "onset"
    # the threshold is a limit: at 0.7 the same beats are not enough
    eng = AlarmEngine(FS, AlarmLimits(af_p_absent=0.7))
    assert not [a for a in _beats_p(eng, irregular, no_p) if a.code == "new_af"]
    # a stream that does not delineate (no pr_ms on its beats): the RR history decides
    eng = AlarmEngine(FS)
    assert [a for a in _beats(eng, irregular, "N" * 120) if a.code == "new_af"]


def test_the_stream_s_beat_objects_and_the_station_s_json_give_the_same_af_alarms():
    # the stream feeds BeatEvent objects, the ward's station their JSON: the P wave must read
    # the same from both (pr_ms None: no P found; no waves: not delineated)
    from edge_ecg.runtime.events import BeatEvent

    rng = np.random.default_rng(3)
    times = np.cumsum(rng.uniform(0.35, 1.1, 120))
    for waves_of in (lambda k: {"pr_ms": None, "qrs_ms": 90.0},          # AF: no P waves
                     lambda k: {"pr_ms": 150.0, "qrs_ms": 90.0},         # P waves: not AF
                     lambda k: None):                                    # not delineated
        beats = [BeatEvent(index=int(round(t * FS)), time_s=float(t), delay_ms=0.0,
                           waves=waves_of(k), beat_class="N", beat_prob=0.9)
                 for k, t in enumerate(times)]
        objs, dicts = AlarmEngine(FS), AlarmEngine(FS)
        a = [x.to_json() for b in beats for x in objs.observe(b)]
        b = [x.to_json() for b in beats for x in dicts.observe(b.to_json())]
        assert a == b
        assert bool([x for x in a if x["code"] == "new_af"]) == (waves_of(0) is None
                                                                 or waves_of(0)["pr_ms"] is None)


def test_vf_segments_raise_and_clear_with_hysteresis_and_invalid_segments_hold():
    eng = AlarmEngine(FS)
    hop, seg = int(FS), int(4 * FS)

    def feed(k, vf):
        return eng.observe_vf(k * hop, k * hop + seg, vf)

    assert feed(0, True) == []                      # one segment does not raise it
    out = feed(1, True)
    assert [(a.code, a.priority) for a in out] == [("vf", "high")]
    assert out[0].onset_index == seg // 2           # the first VF segment's middle
    assert feed(2, False) == [] and feed(3, None) == [] and feed(4, False) == []
    assert _codes(eng) == ["vf"]                    # two misses of three, one undecided
    out = feed(5, False)
    assert [(a.code, a.state) for a in out] == [("vf", "end")]
    assert out[0].end_index == hop + seg            # the last VF segment's end
    # a station mirrors the stream's VF alarm events
    st = AlarmEngine(FS)
    st.observe({"type": "alarm", "code": "vf", "state": "onset", "index": 10,
                "onset_index": 5, "evidence": {"segments": 2}})
    assert _codes(st) == ["vf"]
    st.observe({"type": "alarm", "code": "vf", "state": "end", "index": 20})
    assert _codes(st) == []


def test_asystole_needs_a_signal_and_leads_off_is_technical():
    eng = AlarmEngine(FS)
    eng.observe({"type": "beat", "index": 0, "beat_class": "N"})
    out = []
    for i in range(2, 6):
        out += eng.observe({"type": "withheld", "index": int(i * FS), "start": 0,
                            "reasons": ["beat_count"]})
    asy = [a for a in out if a.code == "asystole"]
    assert asy and asy[0].priority == "high" and asy[0].index == int(4 * FS)
    assert asy[0].evidence["last_beat"] == 0
    off = AlarmEngine(FS)
    off.observe({"type": "beat", "index": 0, "beat_class": "N"})
    out = []
    for i in range(2, 8):
        out += off.observe({"type": "withheld", "index": int(i * FS), "start": 0,
                            "reasons": ["lead_off", "beat_count"]})
    assert [a.code for a in out] == ["signal"]
    assert out[0].priority == "low" and "lead_off" in out[0].text


def test_stream_alarms_call_vf_on_the_signal_without_any_beat():
    t = np.arange(int(12 * FS)) / FS
    x = (0.5 * np.sin(2 * np.pi * 5.0 * t))[:, None]
    sa = StreamAlarms()
    out = sa.feed([], x, np.zeros(t.size, np.uint8), origin=1000, fs_hz=FS, leads=("ECG",))
    vf = [a for a in out if a.code == "vf"]
    assert len(vf) == 1 and vf[0].state == "onset"
    assert vf[0].onset_index == 1000 + int(2 * FS)   # middle of the first segment [0, 4) s
