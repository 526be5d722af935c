"""The export stage on a tiny ECG-MoE: merge, route, ONNX/OpenVINO fp32 and int8, bundle checks.

One tiny model (LoRA adapters unmerged, scout gate forced onto two experts) goes through
`edge-ecg export` once per session; the tests read that bundle. ~60 s on 2 cores.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("openvino")

from edge_ecg import DISCLAIMER
from edge_ecg.cli import main
from edge_ecg.errors import BundleError
from edge_ecg.runtime.bundle import MANIFEST, Manifest, load_bundle
from edge_ecg.signal.contract import INPUT_NAMES

FORCED_SCOUTS = [0, 2]          # the only scouts the forced gate gives weight to
CALIB = "synth:16?seed=11"      # 16 synthetic patients: 8 calibrate, 8 measure
# int8 vs fp32 on windows calibration never saw, training units (regression / task scale, so
# 0.05 = 50 ms of RR, 5 years of age, 0.05 of a probability). Measured on this tiny random
# model: onnxruntime QDQ 0.025, NNCF 0.11 (its RR output; activations per-tensor).
INT8_TOL = {"onnx-int8-routed": 0.05, "openvino-int8-routed": 0.15}


def tiny_model(seed: int = 0):
    from edge_ecg.model.config import ECGMoEConfig
    from edge_ecg.model.moe import ECGMoE

    torch.manual_seed(seed)
    return ECGMoE(ECGMoEConfig.preset("tiny"), load_external=False).eval()


def force_scout_gate(model, experts=FORCED_SCOUTS) -> None:
    """Zero the scout gate's weights and give `experts` a large bias for every task: the
    softmax then puts all mass on them, so top-2 always picks exactly these two."""
    g = model.gate_scout
    with torch.no_grad():
        g.g_out.weight.zero_()
        bias = torch.full((g.n_tasks, g.n_experts), -30.0)
        bias[:, experts] = torch.tensor([1.0, 0.5])
        g.g_out.bias.copy_(bias.reshape(-1))


def with_adapters(model):
    """peft LoRA adapters with random (non-zero) weights, so merging changes the graph."""
    from edge_ecg.model.lora import add_lora

    torch.manual_seed(1)
    return add_lora(model, init_lora_weights=False).eval()


def example(model, n: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    from edge_ecg.model.flops import example_inputs

    return {k: v.numpy() for k, v in zip(INPUT_NAMES, example_inputs(model.cfg, n, seed=seed))}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Checkpoint with unmerged adapters -> `edge-ecg export` -> bundle (routed variants)."""
    from edge_ecg.model.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("export")
    ckpt = root / "ckpt"
    base = tiny_model()
    force_scout_gate(base)
    save_checkpoint(base, ckpt, metrics={"training_data": "synthetic"})
    peft_model = with_adapters(base)
    peft_model.save_pretrained(str(ckpt))          # adapter_config.json + adapter_model.safetensors
    out = root / "bundle"
    from edge_ecg.runtime.signing import TrustPolicy, generate_keypair

    key, pub, kid = generate_keypair(root / "keys", "exporter")   # signed at export
    rc = main(["export", "--checkpoint", str(ckpt), "--out", str(out), "--calib", CALIB,
               "--quantize", "int8", "--formats", "onnx,openvino", "--no-progress",
               "--variants", ("onnx-fp32-routed,onnx-int8-routed,openvino-fp32-routed,"
                             "openvino-int8-routed"),
               "--allow-metric-drop",    # an untrained model's metrics are noise
               "--sign-key", str(key)])
    assert rc == 0
    from export.merge import merge_adapters

    merged = merge_adapters(peft_model).eval()
    trust = TrustPolicy.resolve(pub, allow_unsigned=False)
    return {"bundle": out, "ckpt": ckpt, "merged": merged, "pub": pub, "key_id": kid,
            "manifest": load_bundle(out, trust=trust)}


def routed_torch(exported):
    """The routed model as the bundle records it: experts kept per path, and a per-beat head
    reading only its own experts (`routing.heads`, original numbering)."""
    from export.graph_forms import route_beat_head

    m = exported["manifest"]
    keep = {p: d["kept"] for p, d in m.routing["paths"].items()}
    model = exported["merged"].pruned(keep, [t["name"] for t in m.tasks]).eval()
    morph = keep.get("morphology", [])
    heads = {t: tuple(morph.index(i) for i in h["kept"])
             for t, h in m.routing.get("heads", {}).items()}
    return route_beat_head(model, heads)


def scaled_diff(ref: dict, got: dict, manifest: Manifest) -> float:
    worst = 0.0
    for t in manifest.tasks:
        s = t["scale"] if t["kind"] == "regression" else 1.0
        worst = max(worst, float(np.abs(ref[t["name"]] - got[t["name"]]).max() / s))
    return worst


def test_merge_parity_and_adapters_matter():
    from export.merge import has_adapters, merge_with_parity
    from export.parity import max_abs_diff, run_torch

    base = tiny_model(seed=3)
    peft_model = with_adapters(base)
    x = example(base, 4)
    plain = run_torch(tiny_model(seed=3), x, progress=False)
    adapted = run_torch(peft_model, x, progress=False)
    assert max_abs_diff(plain, adapted) > 1e-3          # the adapters change the outputs
    merged, rep = merge_with_parity(peft_model, x, {"rr_interval": 1000.0, "age": 100.0})
    assert rep["merged"] and rep["max_abs_diff"] <= 1e-5
    assert not has_adapters(merged)
    assert type(merged).__name__ == "ECGMoE"


def test_select_experts_keeps_the_mass():
    from export.routing import select_experts

    usage = {"scout": np.array([0.5, 0.0, 0.495, 0.005]), "rhythm": np.array([0.25] * 4)}
    keep = select_experts(usage, 0.99)
    assert keep["scout"] == (0, 2) and keep["rhythm"] == (0, 1, 2, 3)
    assert select_experts(usage, 0.4)["scout"] == (0,)
    with pytest.raises(BundleError):
        select_experts(usage, 1.5)


def test_one_usage_measurement_routes_each_deployment():
    from export.routing import route_from_usage

    per_task = {"scout": {"a": np.array([1.0, 0.0, 0.0, 0.0]),
                          "b": np.array([0.0, 0.0, 0.6, 0.4])}}
    r = route_from_usage(per_task, ["a"], 0.99)
    assert r.keep["scout"] == (0,) and set(r.per_task["scout"]) == {"a"}
    r = route_from_usage(per_task, ["a", "b"], 0.99)
    assert r.keep["scout"] == (0, 2, 3)
    np.testing.assert_allclose(r.usage["scout"], [0.5, 0.0, 0.3, 0.2])


def test_routing_keeps_exactly_the_gated_experts(exported):
    import onnx

    m = exported["manifest"]
    scout = m.routing["paths"]["scout"]
    assert scout["kept"] == FORCED_SCOUTS and scout["total"] == 4
    assert scout["mass_kept"] == pytest.approx(1.0, abs=1e-6)
    cost = m.routing["cost"]
    assert cost["routed"]["params"] < cost["all_experts"]["params"]
    assert cost["routed"]["flops"] < cost["all_experts"]["flops"]
    # The graph computes only the kept scouts: two scout weight sets, a gate over two experts.
    proto = onnx.load(str(exported["bundle"] / m.variant("onnx-fp32-routed").file))
    names = [i.name.removeprefix("m.") for i in proto.graph.initializer]
    scouts = {n.split(".")[1] for n in names if n.startswith("scouts.")}
    assert scouts == {"0", "1"}
    sess_out = {o.name: o for o in proto.graph.output}
    assert sess_out["gate_scout"].type.tensor_type.shape.dim[2].dim_value == 2


def test_routing_records_each_tasks_usage(exported):
    """The per-task rows of the tasks that read a path average to the usage routing acts on
    (a task that does not read a path, as the per-beat task the scouts and rhythm experts, has
    an all-zero row there: export.routing.route_from_usage), and the report shows them."""
    m = exported["manifest"]
    for d in m.routing["paths"].values():
        rows = np.array([d["usage_per_task"][t["name"]] for t in m.tasks])
        read = rows[rows.sum(1) > 0]
        assert len(read) >= 1
        np.testing.assert_allclose(read.mean(0), d["usage"], atol=1e-5)
        np.testing.assert_allclose(read.sum(1), 1.0, atol=1e-4)    # each task's gate sums to 1
    forced = m.routing["paths"]["scout"]["usage_per_task"]
    assert all(sum(row[i] for i in FORCED_SCOUTS) > 0.999 for row in forced.values()
               if sum(row) > 0)
    report = (exported["bundle"] / "REPORT.md").read_text()
    assert "Gate mass per task" in report and "| scout | rr_interval |" in report


def test_onnx_file_is_one_opset18_file(exported):
    from export.onnx_graph import check_onnx_file

    m = exported["manifest"]
    for name in ("onnx-fp32-routed", "onnx-int8-routed"):
        path = exported["bundle"] / m.variant(name).file
        assert check_onnx_file(path) == 18
        assert sorted(p.name for p in path.parent.iterdir()) == ["model.onnx"]


def empty_slots_zero(x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`x` with its empty beat slots all zeros, as the runtime and the data loaders fill them
    (`example_inputs` leaves noise there)."""
    x = {k: v.copy() for k, v in x.items()}
    empty = x["beat_mask"] == 0
    for k in ("beats", "beat_rr", "beat_ctx"):
        x[k][empty] = 0.0
    return x


def test_onnx_and_openvino_fp32_parity(exported):
    from export.parity import run_onnx, run_openvino, run_torch

    m = exported["manifest"]
    model = routed_torch(exported)
    noisy = example(model, 4, seed=5)
    x = empty_slots_zero(noisy)
    ref = run_torch(model, x, progress=False)
    for bs in (1, 4):
        got = run_onnx(exported["bundle"] / m.variant("onnx-fp32-routed").file, x, batch_size=bs)
        assert scaled_diff(ref, got, m) <= 1e-4
        assert np.abs(ref["gate_scout"] - got["gate_scout"]).max() <= 1e-5
    # noise in the empty slots: the trimmed graph (export.beat_slots) never reads it, so every
    # window output and every filled slot's class is still the model's
    ref_noisy = run_torch(model, noisy, progress=False)
    got = run_onnx(exported["bundle"] / m.variant("onnx-fp32-routed").file, noisy, batch_size=1)
    filled = noisy["beat_mask"] > 0
    assert np.abs(ref_noisy["beat"][filled] - got["beat"][filled]).max() <= 1e-4
    for t in m.tasks:
        if t["kind"] != "beat":
            s = t["scale"] if t["kind"] == "regression" else 1.0
            assert np.abs(ref_noisy[t["name"]] - got[t["name"]]).max() / s <= 1e-4, t["name"]
    got = run_openvino(exported["bundle"] / m.variant("openvino-fp32-routed").file, x,
                       precision="f32", expected=list(ref))
    assert scaled_diff(ref, got, m) <= 1e-4
    # The parity the export recorded agrees.
    assert m.parity["onnx-fp32-routed"]["max_abs_diff_by_batch"]["batch_1"] <= 1e-4
    assert m.parity["openvino-fp32-routed"]["max_abs_diff_training_units"] <= 1e-4


def test_int8_parity_within_tolerance(exported):
    from export.parity import run_onnx, run_openvino, run_torch

    m = exported["manifest"]
    from edge_ecg.data.dataset import load_dataset

    model = routed_torch(exported)
    # Real-looking windows the calibration never saw (random noise would leave its range).
    x = load_dataset("synth:6?seed=77", model.cfg.contract, model.cfg.task_set,
                     progress=False).inputs
    ref = run_torch(model, x, progress=False)
    onnx_q = run_onnx(exported["bundle"] / m.variant("onnx-int8-routed").file, x)
    ov_q = run_openvino(exported["bundle"] / m.variant("openvino-int8-routed").file, x,
                        expected=list(ref))
    for name, got in (("onnx-int8-routed", onnx_q), ("openvino-int8-routed", ov_q)):
        d = scaled_diff(ref, got, m)
        assert 0.0 < d <= INT8_TOL[name]      # quantized (not bit-equal), yet close
    q = m.quantization["onnx-int8-routed"]
    assert q["format"] == "QDQ" and q["fp32_nodes"] > 0
    assert m.variants["onnx-int8-routed"]["precision"] == "int8"
    # the per-beat task's morphology experts (>= 1 % of its gate row), named as the routed
    # model numbers them, are int8 in both int8 variants by default (BEAT_EXPERTS_INT8), fp32
    # where the export keeps them so (tests/export/test_weight_only.py has the rule)
    from export.int8_scope import BEAT_EXPERTS_INT8

    morph = m.routing["paths"]["morphology"]
    row = morph["usage_per_task"]["beat"]
    want = {f"morphology.{new}." for new, old in enumerate(morph["kept"]) if row[old] >= 0.01}
    assert want
    for v in ("onnx-int8-routed", "openvino-int8-routed"):
        assert (want <= set(m.quantization[v]["fp32_modules"])) != BEAT_EXPERTS_INT8, v


def test_manifest_round_trip_and_contents(exported):
    bundle, m = exported["bundle"], exported["manifest"]
    doc = json.loads((bundle / MANIFEST).read_text())
    assert Manifest(**doc) == m
    assert json.loads(m.to_json()) == doc
    assert m.training_data == "synthetic" and DISCLAIMER in m.notes
    assert m.default_variant == "onnx-int8-routed"
    assert m.inputs == list(INPUT_NAMES)
    names = {t["name"]: t for t in m.tasks}
    assert names["rr_interval"]["unit"] == "ms" and names["rr_interval"]["output"] == "rr_interval"
    assert names["arrhythmia"]["labels"] == ["normal_sinus", "af_or_flutter", "other_rhythm",
                                             "too_noisy"]
    assert set(m.files) >= {"REPORT.md", "chart.png", "onnx-int8-routed/model.onnx",
                            "openvino-int8-routed/model.xml", "openvino-int8-routed/model.bin"}
    assert m.routing["merge"]["merged"] and m.routing["merge"]["max_abs_diff"] <= 1e-5
    for v in m.variants:
        assert set(m.metrics[v]) == set(names)
    report = (bundle / "REPORT.md").read_text()
    assert DISCLAIMER in report and "onnx-int8-routed" in report
    assert (bundle / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _copy(exported, tmp_path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(exported["bundle"], dst)
    return dst


def test_tampered_bundle_refused(exported, tmp_path):
    b = _copy(exported, tmp_path)
    f = b / "onnx-int8-routed" / "model.onnx"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"sha256 of onnx-int8-routed/model.onnx .*tampered"):
        load_bundle(b)


def test_truncated_bundle_refused(exported, tmp_path):
    b = _copy(exported, tmp_path)
    f = b / "openvino-int8-routed" / "model.bin"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(BundleError, match=r"openvino-int8-routed/model.bin is .* bytes.*truncated"):
        load_bundle(b)


def test_incomplete_bundle_refused(exported, tmp_path):
    b = _copy(exported, tmp_path)
    (b / "openvino-int8-routed" / "model.xml").unlink()
    with pytest.raises(BundleError, match=r"openvino-int8-routed/model.xml .* missing"):
        load_bundle(b)
    (b / MANIFEST).unlink()
    with pytest.raises(BundleError, match=r"no manifest.json"):
        load_bundle(b)


def test_path_escape_refused(exported, tmp_path):
    b = _copy(exported, tmp_path)
    (tmp_path / "outside.bin").write_bytes(b"x")
    doc = json.loads((b / MANIFEST).read_text())
    doc["files"]["../outside.bin"] = {"sha256": "0" * 64, "bytes": 1}
    (b / MANIFEST).write_text(json.dumps(doc))
    with pytest.raises(BundleError, match=r"escapes the bundle"):
        load_bundle(b)


def test_export_signs_with_sign_key(exported):
    """`--sign-key`: the bundle verifies against that key alone, and against no other."""
    from edge_ecg.runtime.bundle import verify_bundle
    from edge_ecg.runtime.signing import TrustPolicy

    _, check = verify_bundle(exported["bundle"],
                             trust=TrustPolicy.resolve(exported["pub"], allow_unsigned=False))
    assert (check.status, check.key_id, check.signer) == ("trusted", exported["key_id"],
                                                          "exporter")
    with pytest.raises(BundleError, match="does not trust"):   # the shipped key alone
        verify_bundle(exported["bundle"], trust=TrustPolicy.resolve(allow_unsigned=False))


def test_export_refuses_an_unusable_sign_key_before_exporting(tmp_path):
    from export.errors import ExportError
    from export.stage import ExportRequest, check_request

    key = tmp_path / "k.key"
    with pytest.raises(ExportError, match="--sign-key: signing key .* not found.*keygen"):
        check_request(ExportRequest(checkpoint=tmp_path, out=tmp_path / "b", sign_key=key))
    from edge_ecg.runtime.signing import generate_keypair

    key, _, _ = generate_keypair(tmp_path / "keys", "k")
    key.chmod(0o640)
    with pytest.raises(ExportError, match="readable by others.*chmod 600"):
        check_request(ExportRequest(checkpoint=tmp_path, out=tmp_path / "b", sign_key=key))


def test_bundle_cli_verify_and_info(exported, tmp_path, capsys):
    assert main(["bundle", "verify", str(exported["bundle"]),
                 "--trusted-keys", str(exported["pub"])]) == 0
    assert "OK, signed by exporter" in capsys.readouterr().out
    assert main(["bundle", "info", str(exported["bundle"])]) == 0
    out = capsys.readouterr().out
    assert "scout [0, 2] of 4" in out and DISCLAIMER in out and "(default)" in out
    b = _copy(exported, tmp_path)
    (b / "REPORT.md").write_text("edited")
    assert main(["bundle", "verify", str(b)]) == 1
    assert "REPORT.md" in capsys.readouterr().err


def test_metric_drop_fails_loudly(tmp_path):
    """Routing a model whose gates spread mass to one expert per path costs metric: refused."""
    from edge_ecg.data.dataset import load_dataset
    from export.errors import MetricDropError
    from export.parity import run_torch
    from export.stage import ExportRequest, export_bundle

    model = tiny_model(seed=4)
    data = load_dataset("synth:8?seed=5", model.cfg.contract, model.cfg.task_set, progress=False)
    # Labels the full model nearly gets right: any change of prediction is a drop.
    out = run_torch(model, data.inputs, progress=False)
    for t in model.cfg.tasks:
        y = out[t.name]
        lab = (y.argmax(-1) if t.kind == "multiclass" else
               (y >= 0.5) * 1.0 if t.kind == "binary" else y + 5.0)
        data.labels[t.name] = lab.astype(np.float32)
    req = ExportRequest(checkpoint=tmp_path / "none", out=tmp_path / "b", keep_mass=0.3,
                        progress=False)
    with pytest.raises(MetricDropError, match=r"tolerance 0.01.*--allow-metric-drop"):
        export_bundle(req, model=model, data=data, eval_data=data)
    assert not (tmp_path / "b").exists()
