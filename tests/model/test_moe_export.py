"""The tiny model exports with the dynamo ONNX exporter (opset 18) and matches in onnxruntime."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from edge_ecg.model.flops import example_inputs
from edge_ecg.model.moe import ECGMoE
from edge_ecg.signal.contract import INPUT_NAMES

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def test_onnx_export_parity_batch_1_and_4(tmp_path, tiny_cfg):
    torch.manual_seed(0)
    m = ECGMoE(tiny_cfg).eval()
    path = tmp_path / "tiny.onnx"
    batch = torch.export.Dim("batch", min=1, max=1024)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, example_inputs(tiny_cfg, 2), str(path), dynamo=True,
                          opset_version=18, input_names=list(INPUT_NAMES),
                          output_names=m.output_names, external_data=False,
                          dynamic_shapes={n: {0: batch} for n in INPUT_NAMES})
    model = onnx.load(str(path))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [18]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == m.output_names
    c = tiny_cfg.contract
    for b in (1, 4):
        inp = example_inputs(tiny_cfg, b, seed=b)
        # different periods per window: the fold must follow each (no baked-in constant)
        inp[6][:, c.period_features.index("dominant_cycle_s")] = torch.linspace(0.35, 1.4, b)
        inp[3][-1] = 0.0                                  # and a window without beats
        with torch.no_grad():
            ref = m(*inp)
        got = sess.run(None, {n: t.numpy() for n, t in zip(INPUT_NAMES, inp)})
        for (k, v), g in zip(ref.items(), got):
            tol = 1e-3 if k == "rr_interval" or k == "age" else 1e-5   # task units (ms, years)
            assert np.abs(v.numpy() - g).max() <= tol, (b, k)
