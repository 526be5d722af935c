"""EC57 run and episode figures on hand-made annotations."""

import math

import numpy as np

from edge_ecg.metrics import rhythm as rm


def test_runs_split_couplets_and_vt_runs():
    t = np.arange(12) * 0.5
    v = np.array([0, 1, 1, 0, 1, 1, 1, 1, 0, 1, 0, 0], bool)
    assert rm.runs(t, v) == [(0.5, 1.0, 2), (2.0, 3.5, 4)]


def test_run_scores_count_matches_and_misses():
    t = np.arange(20) * 0.5
    ref = np.zeros(20, bool)
    ref[[2, 3]] = True              # a couplet
    ref[[8, 9, 10]] = True          # a VT run
    ref[[15, 16, 17]] = True        # another VT run
    det = np.zeros(20, bool)
    det[[2, 3]] = True              # the couplet found
    det[[8, 9, 10, 11]] = True      # the first run found (longer)
    det[[15, 16]] = True            # the second seen only as a couplet: a miss, and a false couplet
    s = rm.run_scores(t, ref, t, det)
    assert (s["couplet_ref"], s["couplet_det"], s["couplet_tp_ref"], s["couplet_tp_det"]) == \
        (1, 2, 1, 1)
    assert s["couplet_se"] == 1.0 and s["couplet_ppv"] == 0.5
    assert s["vt_run_se"] == 0.5 and s["vt_run_ppv"] == 1.0
    none = rm.run_scores(t, np.zeros(20, bool), t, np.zeros(20, bool))
    assert math.isnan(none["vt_run_se"]) and math.isnan(none["vt_run_ppv"])


def test_episode_counts_and_duration():
    ref = [(10.0, 40.0), (100.0, 110.0)]
    det = [(15.0, 45.0), (200.0, 205.0)]
    c = rm.episode_counts(ref, det)
    f = rm.finish_episodes(c, "af")
    assert f["af_episode_se"] == 0.5 and f["af_episode_ppv"] == 0.5
    assert f["af_duration_se"] == 25.0 / 40.0
    assert f["af_duration_ppv"] == 25.0 / 35.0
    # clipped to the span scored: the second reference episode lies outside
    c = rm.episode_counts(ref, det, span=(0.0, 60.0))
    assert (c["ref"], c["det"], c["tp_ref"]) == (1, 1, 1)
    pooled = rm.finish_episodes(rm.pool([c, c]), "vf")
    assert pooled["vf_episodes"] == 2 and pooled["vf_episode_se"] == 1.0


def test_reference_episodes_from_rhythm_notes_and_cudb_brackets():
    fs = 100.0
    samples = [0, 500, 900, 1500, 2000, 2600]
    symbols = ["+", "N", "+", "+", "[", "]"]
    aux = ["(N", "", "(AFIB", "(N", "", ""]
    assert rm.reference_episodes(samples, symbols, aux, "af", fs, 3000) == [(9.0, 15.0)]
    assert rm.reference_episodes(samples, symbols, aux, "vf", fs, 3000) == [(20.0, 26.0)]
    # an episode open at the end lasts to the record's end
    assert rm.reference_episodes([0, 100], ["+", "+"], ["(N", "(VT"], "vt", fs, 1000) == \
        [(1.0, 10.0)]


def test_false_alarms_and_false_ectopic_beats():
    assert rm.false_alarms([(5.0, 8.0), (50.0, 50.0), (99.0, 101.0)], [(0.0, 6.0),
                                                                      (100.0, 120.0)]) == 1
    ref_t = np.array([1.0, 2.0, 3.0, 4.0])
    ref_s = ["N", "N", "V", "A"]
    det_t = np.array([1.05, 2.3, 3.0, 4.0])       # 2.0 s: detected 300 ms off, unmatched
    det_c = ["V", "S", "V", "S"]
    assert rm.false_ectopic(ref_s, ref_t, det_t, det_c) == 1


def test_record_counts_and_summary_of_one_hand_made_record():
    fs = 100.0
    ref_s = [0, 100, 200, 300, 400, 500, 600, 700]
    sym = ["+", "N", "V", "V", "V", "N", "N", "N"]
    aux = ["(N", "", "", "", "", "", "", ""]
    det = [100, 200, 300, 400, 500, 600, 700]
    cls = ["N", "V", "V", "V", "N", "V", "N"]        # the run found; N at 6 s called V
    alarms = [{"code": "vt", "state": "onset", "onset_index": 200, "index": 400,
               "priority": "high"},
              {"code": "vt", "state": "end", "onset_index": 200, "index": 500, "end_index": 400},
              {"code": "vt", "state": "onset", "onset_index": 900, "index": 950,
               "priority": "high"}]                   # still on at the end: false
    s = rm.summarize(rm.pool([rm.record_counts(ref_s, sym, aux, det, cls, alarms, fs, 1000)]))
    assert s["vt_run_se"] == 1.0 and s["vt_run_ppv"] == 1.0
    assert s["false_vt_alarms"] == 1
    assert s["sinus_false_ectopic"] == 1 and s["sinus_false_ectopic_share"] == 0.25
    assert s["sinus_high_alarms_per_hour"] == 2 / (10 / 3600)


def test_the_vt_alarm_is_scored_on_long_fast_runs_and_nsvt_as_vt_is():
    fs = 100.0
    # sinus every 0.8 s; a 6-beat run at 150 /min from 4 s; a 3-beat one at 150 /min from 12 s;
    # a 5-beat run at 60 /min from 20 s (slow: not one a VT alarm must raise)
    t = [0.0, 0.8, 1.6, 2.4, 3.2]
    t += [4.0 + 0.4 * k for k in range(6)] + [6.8, 7.6, 8.4, 9.2, 10.0, 10.8, 11.6]
    t += [12.0, 12.4, 12.8] + [13.6, 14.4, 15.2, 16.0, 16.8, 17.6, 18.4, 19.2]
    t += [20.0 + k for k in range(5)] + [25.0, 25.8]
    sym = ["N"] * 5 + ["V"] * 6 + ["N"] * 7 + ["V"] * 3 + ["N"] * 8 + ["V"] * 5 + ["N"] * 2
    ref_s = [int(round(x * fs)) for x in t]

    def alarm(code, a, b):
        return [{"code": code, "state": "onset", "onset_index": int(a * fs), "index": int(a * fs)},
                {"code": code, "state": "end", "onset_index": int(a * fs), "index": int(b * fs),
                 "end_index": int(b * fs)}]

    alarms = (alarm("vt", 4.0, 6.0) + alarm("nsvt", 12.0, 12.8) + alarm("nsvt", 16.0, 16.8)
              + alarm("vt", 17.0, 17.5))
    c = rm.record_counts(ref_s, sym, [""] * len(sym), ref_s, sym, alarms, fs, int(30 * fs))
    s = rm.summarize(rm.pool([c]))
    assert (s["vt_alarm_ref"], s["vt_alarm_tp"], s["vt_alarm_se"]) == (1, 1, 1.0)
    assert s["vt_or_nsvt_alarm_se"] == 1.0 and s["vt_alarm_tp_any"] == 1
    assert s["false_nsvt_alarms"] == 1 and s["false_vt_alarms"] == 1    # at 16 s and 17 s
    assert s["false_nsvt_per_hour"] == 1 / (30 / 3600)
    missed = rm.summarize(rm.pool([rm.record_counts(ref_s, sym, [""] * len(sym), ref_s, sym,
                                                    [], fs, int(30 * fs))]))
    assert missed["vt_alarm_se"] == 0.0
    # broken into non-sustained pieces by the classifier: no red alarm, a yellow one
    pieces = alarm("nsvt", 4.0, 4.8) + alarm("nsvt", 5.2, 6.0)
    broken = rm.summarize(rm.pool([rm.record_counts(ref_s, sym, [""] * len(sym), ref_s, sym,
                                                    pieces, fs, int(30 * fs))]))
    assert broken["vt_alarm_se"] == 0.0 and broken["vt_or_nsvt_alarm_se"] == 1.0


def test_a_record_without_rhythm_notes_scores_no_af_and_no_sinus_hours():
    """SVDB's files here carry beat labels only: an AF alarm there is neither true nor false,
    and the record is not 'sinus throughout' (it was counted as both before)."""
    fs = 100.0
    ref_s = [100, 200, 300, 400, 500]
    sym = ["N", "S", "N", "S", "N"]
    af = [{"code": "new_af", "state": "onset", "onset_index": 100, "index": 300,
           "priority": "medium"}]
    bare = rm.record_counts(ref_s, sym, [""] * 5, ref_s, sym, af, fs, 3600)
    assert "false_af_alarms" not in bare and "af_det" not in bare
    assert "sinus_hours" not in bare and bare["af_alarms_unscored"] == 1
    s = rm.summarize(rm.pool([bare]))
    assert np.isnan(s["false_af_per_hour"]) and s["af_alarms_unscored"] == 1
    # beside a record in sinus rhythm, the rate is over the annotated hours only
    sinus = rm.record_counts([0, *ref_s], ["+", *sym], ["(N", *[""] * 5], ref_s, sym, af, fs,
                             3600)
    s = rm.summarize(rm.pool([bare, sinus]))
    assert s["false_af_alarms"] == 1 and s["rhythm_hours"] == 0.01
    assert s["false_af_per_hour"] == 1 / (3600 / fs / 3600) and s["sinus_hours"] == 0.01


def test_rxr_reading_learning_period_and_vf_as_a_maximal_run():
    t = np.arange(40) * 0.5                 # beats every 0.5 s, 0 .. 19.5 s
    ref = np.zeros(40, bool)
    ref[[2, 3, 4]] = True                   # a VT run in the learning period (1.0-2.0 s)
    ref[[20, 21, 22]] = True                # a VT run after it (10-11 s)
    det = ref.copy()
    det[[30, 31, 32, 33]] = True            # beats called V inside a reference VF (15-16.5 s)
    det[[36, 37]] = True                    # a couplet inside the algorithm's VF alarm
    vf, alarm = [(14.8, 16.8)], [(17.5, 19.0)]
    strict = rm.run_scores(t, ref, t, det)
    assert strict["vt_run_ref"] == 2 and strict["vt_run_det"] == 3 and strict["vt_run_ppv"] == 2 / 3
    assert strict["couplet_det"] == 1 and strict["couplet_ppv"] == 0.0
    e = rm.run_scores(t, ref, t, det, vf=vf, det_vf=alarm, from_s=5.0, prefix="ec57_")
    # reference: the run at 10 s and the VF episode; algorithm: the run at 10 s, the run in
    # the VF, and the VF alarm (which overlaps no reference run: false)
    assert (e["ec57_vt_run_ref"], e["ec57_vt_run_tp_ref"]) == (2, 2)
    assert (e["ec57_vt_run_det"], e["ec57_vt_run_tp_det"]) == (3, 2)
    assert e["ec57_couplet_det"] == 0       # the couplet inside the VF alarm is not compared


def test_rxr_reading_lets_fusion_beats_continue_a_run():
    fs = 100.0
    samples = [0] + [100 * k for k in range(1, 41)]
    sym = ["+"] + ["N"] * 40
    aux = ["(N"] + [""] * 40
    for k in (34, 35, 36):                  # V F V at 34-36 s: a run of 3 as rxr counts it
        sym[k] = "V" if k != 35 else "F"
    det = samples[1:]
    cls = [{"V": "V", "F": "F"}.get(s, "N") for s in sym[1:]]
    c = rm.record_counts(samples, sym, aux, det, cls, [], fs, 4100, ec57_from_s=30.0)
    s = rm.summarize(rm.pool([c]))
    assert s["vt_run_ref"] == 0                       # strict: V F V is no run of V
    assert s["ec57_vt_run_ref"] == 1 and s["ec57_vt_run_se"] == 1.0 and s["ec57_vt_run_ppv"] == 1.0


def test_vt_alarms_on_beats_without_classes_are_unscored_not_false():
    """CUDB labels every beat N and annotates its VT only now and then: there, a VT alarm
    outside the annotated VT and VF is neither true nor false, and its hours do not dilute the
    false VT rate of the databases whose beats carry classes."""
    fs = 100.0
    ref_s = [0, 100, 200, 300, 400, 500, 1000, 1500]
    sym = ["N", "N", "N", "N", "N", "[", "]", "N"]
    vt = [{"code": "vt", "state": "onset", "onset_index": 200, "index": 300},
          {"code": "vt", "state": "end", "onset_index": 200, "index": 400, "end_index": 400},
          {"code": "vt", "state": "onset", "onset_index": 600, "index": 700},    # inside VF
          {"code": "vt", "state": "end", "onset_index": 600, "index": 800, "end_index": 800}]
    cu = rm.record_counts(ref_s, sym, [""] * len(sym), [100, 200, 300], ["V", "V", "V"], vt,
                          fs, 3600, classified=False)
    assert cu["vt_alarms_unscored"] == 1 and "false_vt_alarms" not in cu and "vt_hours" not in cu
    mit = rm.record_counts([100, 200], ["N", "N"], ["", ""], [100, 200], ["N", "N"], vt[:2], fs,
                           3600)
    s = rm.summarize(rm.pool([cu, mit]))
    assert s["hours"] == 0.02 and s["vt_hours"] == 0.01
    assert s["false_vt_alarms"] == 1 and s["false_vt_per_hour"] == 100.0
    assert s["vt_alarms_unscored"] == 1
    only_cu = rm.summarize(rm.pool([cu]))
    assert only_cu["vt_hours"] == 0.0 and np.isnan(only_cu["false_vt_per_hour"])
