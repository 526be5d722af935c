"""The latency profiler on a short real run: every field present, figures consistent, honest."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from edge_ecg import DISCLAIMER
from edge_ecg.errors import BundleError, ProfileError
from edge_ecg.runtime.stage_timer import STAGES
from profiles.budgets import check_budgets
from profiles.compare import resolve_targets
from profiles.latency import latency_summary
from profiles.machine import Machine, _cpuinfo_model, is_profile_device, this_machine
from profiles.profile import load_profile
from profiles.profiler import pick_variant, profile_bundle
from profiles.report import format_comparison, format_report, plot_latency

SECONDS = 13.0    # one 10-s window plus three hops of 1 s: four windows
SHORT = {"seconds": SECONDS, "single_stream_queries": 64, "single_stream_max_s": 0.5}


@pytest.fixture(scope="module")
def local_report(profiler_bundle):
    return profile_bundle(profiler_bundle, load_profile("local"), variant="onnx-fp32", **SHORT)


TOP_FIELDS = {"tool", "edge_ecg_version", "disclaimer", "machine", "on_profile_device", "honesty",
              "profile", "runtime_versions", "bundle", "model_version", "variant", "model",
              "placement", "stream", "stages", "per_hop", "per_hop_ms", "settle_delay_ms",
              "single_stream", "throughput", "memory", "consistency", "budgets", "pass",
              "conditions"}
SUMMARY_FIELDS = {"n", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "max_ms", "total_s"}


def test_report_has_every_field_and_is_json(local_report):
    rep = json.loads(json.dumps(local_report, allow_nan=False))   # plain JSON, no NaN
    assert TOP_FIELDS <= set(rep)
    assert set(rep["stages"]) == set(STAGES)
    for st in (*rep["stages"].values(), rep["per_hop"]):
        assert SUMMARY_FIELDS <= set(st)
    for key in ("cpu_model", "cores", "os", "python", "numpy", "onnxruntime", "openvino"):
        assert rep["machine"][key] not in ("", None), key
    assert {"p90_ms", "queries", "note"} <= set(rep["single_stream"])
    assert {"signal_s", "processing_s", "realtime_factor"} <= set(rep["throughput"])
    assert rep["disclaimer"] == DISCLAIMER


def test_report_figures_are_consistent(local_report, profiler_bundle):
    rep = local_report
    # the stream: 13 s at 500 Hz, 10-s windows every second -> 4 windows
    assert rep["stream"]["signal_s"] == pytest.approx(SECONDS)
    assert rep["stream"]["predictions"] + rep["stream"]["withheld"] == 4
    assert rep["stream"]["predictions"] >= 3
    assert rep["stream"]["chunks"] == round(SECONDS / 0.04)
    assert rep["stages"]["read"]["n"] == rep["stream"]["chunks"]
    assert rep["stages"]["inference"]["n"] >= 1
    for st in (*rep["stages"].values(), rep["per_hop"], rep["single_stream"]):
        if st["p50_ms"] is not None:
            assert 0 <= st["p50_ms"] <= st["p90_ms"] <= st["p99_ms"] <= st["max_ms"]
    assert rep["per_hop"]["n"] == len(rep["per_hop_ms"]) >= 1
    # stage sums within the total: per hop, and over the run
    assert rep["consistency"]["per_hop_max_stage_excess_ms"] <= 0.0
    assert rep["consistency"]["stage_total_s"] <= rep["throughput"]["processing_s"]
    # a hop's end-to-end latency holds at least its inference
    assert rep["per_hop"]["max_ms"] >= rep["stages"]["inference"]["p50_ms"]
    th = rep["throughput"]
    assert th["realtime_factor"] == pytest.approx(th["signal_s"] / th["processing_s"])
    assert th["realtime_factor"] > 1.0          # a 3-kB graph keeps up with real time
    assert rep["single_stream"]["queries"] >= 1
    assert rep["memory"]["peak_rss_mb"] >= rep["memory"]["rss_before_backend_mb"] > 10
    size = (profiler_bundle / "model.onnx").stat().st_size
    assert rep["model"]["bytes"] == size
    assert rep["settle_delay_ms"]["p50_ms"] >= 0


def test_budgets_are_checked_against_the_measured_figures(local_report):
    rep, prof = local_report, load_profile("local")
    assert set(rep["budgets"]) == set(prof.budgets())
    b = rep["budgets"]["latency_p90_ms"]
    assert b["measured"] == rep["per_hop"]["p90_ms"] and b["limit"] == prof.budget_latency_p90_ms
    assert b["pass"] == (b["measured"] <= b["limit"])
    assert rep["pass"] == all(x["pass"] for x in rep["budgets"].values())
    # the same figures under impossible budgets fail, and `min_` budgets compare upward
    strict = replace(prof, budget_latency_p90_ms=1e-6, budget_min_realtime_factor=1e9)
    out = check_budgets(strict, rep)
    assert not out["latency_p90_ms"]["pass"] and not out["min_realtime_factor"]["pass"]
    assert out["peak_rss_mb"]["pass"] == rep["budgets"]["peak_rss_mb"]["pass"]


def test_local_profile_is_measured_here_and_says_so(local_report):
    assert local_report["on_profile_device"] is True
    text = format_report(local_report)
    assert "which is the profile's device" in text and "PROXY" not in text
    assert this_machine().cpu_model in text and DISCLAIMER in text


def test_other_device_is_reported_as_a_proxy_not_scaled(profiler_bundle):
    rpi4 = load_profile("rpi4")
    rep = profile_bundle(profiler_bundle, rpi4, variant="onnx-int8", **SHORT)
    assert rep["on_profile_device"] is False          # this test machine is no Pi 4
    assert "THIS machine" in rep["honesty"] and "proxy" in rep["honesty"]
    assert "not scaled" in rep["honesty"]
    text = format_report(rep)
    assert "PROXY" in text
    # the profile's threads and CPUs, as far as this machine has them, reported either way
    pl = rep["placement"]
    assert pl["threads_profile"] == 3
    assert pl["threads_used"] <= min(3, len(os.sched_getaffinity(0)))
    assert pl["affinity_requested"] == [1, 2, 3]
    assert pl["note"]


def test_affinity_is_restored_after_the_run(profiler_bundle):
    before = os.sched_getaffinity(0)
    profile_bundle(profiler_bundle, load_profile("local"), variant="onnx-fp32",
                   seconds=11.0, single_stream_queries=4)
    assert os.sched_getaffinity(0) == before


def test_window_mismatch_is_refused_naming_the_key(profiler_bundle):
    prof = replace(load_profile("local"), stream_window_s=5.0)
    with pytest.raises(ProfileError, match="stream.window_s"):
        profile_bundle(profiler_bundle, prof, **SHORT)


def test_variant_choice_follows_the_profile(profiler_bundle):
    from edge_ecg.runtime.bundle import load_bundle

    m = load_bundle(profiler_bundle)
    prof = replace(load_profile("rpi4"), runtime_variants=("onnx-int8-routed", "onnx-fp32"))
    assert pick_variant(m, prof, profiler_bundle) == "onnx-fp32"    # first one it has
    prof = replace(prof, runtime_variants=("onnx-int8-routed",))
    assert pick_variant(m, prof, profiler_bundle) == "onnx-int8"    # onnxruntime + int8
    fp32 = replace(prof, runtime_variants=("nope",), runtime_precision="fp32")
    assert pick_variant(m, fp32, profiler_bundle) == "onnx-fp32"   # by backend + precision
    none = replace(prof, runtime_variants=("nope",), runtime_backend="openvino",
                   runtime_precision="int8")
    with pytest.raises(BundleError, match="onnx-fp32"):
        pick_variant(m, none, profiler_bundle)
    with pytest.raises(BundleError, match="no variant 'ghost'"):
        pick_variant(m, prof, profiler_bundle, requested="ghost")


def test_compare_targets(profiler_bundle, tmp_path):
    t = resolve_targets(profiler_bundle, ["onnx-fp32", f"{profiler_bundle}:onnx-int8",
                                          str(profiler_bundle)])
    assert t == [(profiler_bundle, "onnx-fp32"), (profiler_bundle, "onnx-int8"),
                 (profiler_bundle, None)]
    with pytest.raises(BundleError):
        resolve_targets(None, ["onnx-fp32"])


def test_cli_compare_writes_table_json_and_plot(profiler_bundle, tmp_path, capsys):
    from edge_ecg.cli import main

    out, png = tmp_path / "cmp.json", tmp_path / "cmp.png"
    rc = main(["profile", "--bundle", str(profiler_bundle), "--profile", "local",
               "--compare", "onnx-fp32,openvino-fp32", "--seconds", "11", "--same-process",
               "--no-progress", "--json", str(out), "--plot", str(png)])
    text = capsys.readouterr().out
    assert rc in (0, 3)
    doc = json.loads(out.read_text())
    names = [r["variant"]["name"] for r in doc["comparison"]]
    assert names == ["onnx-fp32", "openvino-fp32"]                # both backends
    assert all(TOP_FIELDS <= set(r) for r in doc["comparison"])
    assert "onnx-fp32" in text and "openvino-fp32" in text and DISCLAIMER in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert rc == (0 if all(r["pass"] for r in doc["comparison"]) else 3)


def test_cli_reports_bad_profile_as_a_user_error(profiler_bundle, tmp_path, capsys):
    from edge_ecg.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text((Path(load_profile("local").path)).read_text().replace("threads = 1",
                                                                         "threads = 'one'"))
    rc = main(["profile", "--bundle", str(profiler_bundle), "--profile", str(bad)])
    err = capsys.readouterr().err
    assert rc == 1 and "runtime.threads" in err and "bad.toml" in err


def test_arm_cpuinfo_is_named_by_core():
    a72 = "".join(f"processor\t: {i}\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n\n"
                  for i in range(4))
    assert _cpuinfo_model(a72) == "4x Cortex-A72"
    big_little = ("CPU implementer\t: 0x41\nCPU part\t: 0xd05\n\n" * 6
                  + "CPU implementer\t: 0x41\nCPU part\t: 0xd0a\n\n" * 2)
    assert _cpuinfo_model(big_little) == "6x Cortex-A55 + 2x Cortex-A75"
    pi4 = Machine("4x Cortex-A72", "Raspberry Pi 4 Model B Rev 1.4", "aarch64", 4, 4, "Linux",
                  "3.11", "1.26", "1.17.0", "not installed")
    assert is_profile_device(load_profile("rpi4"), pi4)
    assert not is_profile_device(load_profile("rpi5"), pi4)
    assert not is_profile_device(load_profile("bedside_x86"), pi4)
    assert is_profile_device(load_profile("local"), pi4)    # local = wherever it runs


def test_latency_summary_percentiles():
    s = latency_summary([0.001 * i for i in range(1, 101)])   # 1..100 ms
    assert s["n"] == 100 and s["p50_ms"] == pytest.approx(50.5)
    assert s["p90_ms"] == pytest.approx(90.1) and s["p99_ms"] == pytest.approx(99.01)
    assert s["total_s"] == pytest.approx(5.05)
    assert latency_summary([])["p90_ms"] is None


def test_plot_of_a_single_run(local_report, tmp_path):
    png = plot_latency([local_report], tmp_path / "one.png")
    assert png.stat().st_size > 10_000
    assert "onnx-fp32" in format_comparison([local_report])


def test_cli_compare_isolates_each_variant_in_a_fresh_process(profiler_bundle):
    from profiles.compare import compare

    reps = compare(profiler_bundle, ["onnx-int8"], load_profile("local"), isolate=True,
                   seconds=11.0, rounds=2)
    assert len(reps) == 1 and reps[0]["isolated_process"] is True
    assert len(reps[0]["rounds"]) == 2                     # round-robin runs, median kept
    assert reps[0]["per_hop"]["p90_ms"] in [r["per_hop_p90_ms"] for r in reps[0]["rounds"]]
    assert reps[0]["variant"]["name"] == "onnx-int8" and reps[0]["stream"]["predictions"] >= 1
    assert "fresh process" in format_comparison(reps)


def test_real_record_replay_is_cut_at_seconds(profiler_bundle, shared_data):
    rep = profile_bundle(profiler_bundle, load_profile("local"), variant="onnx-fp32",
                         record=str(shared_data / "mitdb" / "100"), seconds=12.0,
                         single_stream_queries=8)
    s = rep["stream"]
    assert s["fs_hz"] == 360.0 and s["n_leads"] == 2          # MIT-BIH: MLII + V5 at 360 Hz
    assert s["signal_s"] == pytest.approx(12.0, abs=0.05)     # not the whole 30-min record
    assert s["predictions"] + s["withheld"] == 3               # windows ending at 10, 11, 12 s
    assert rep["stream"]["source"].startswith("record:")
