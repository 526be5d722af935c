"""Which parts of the routed model the int8 variants quantize: the module prefixes kept fp32,
those stored as int8 weights only, a per-beat task's morphology experts, and the experts whose
convolutions chain in int8. The measured reasons sit beside each choice.
"""

from __future__ import annotations

from edge_ecg.data.tasks import TaskSet

# Module path prefixes kept fp32 in int8 variants. Heads: a quantized regression head clips to
# the calibration range. Gates: they pick the experts; a flipped top-k choice costs more than
# int8 saves on a few small Linear layers. Rhythm experts (RR in ms: an 8-bit step of ~8 ms
# lands straight in the RR output), the fusion layers (every task passes through them) and the
# lead embedding: little compute. Measured on the trained edge checkpoint (onnxruntime QDQ, 128
# unseen synthetic windows): heads+gates only: RR MAE 19.9 -> 25.6 ms, max RR diff 96 ms;
# with rhythm+fusion+lead fp32: RR MAE 19.6 ms, max RR diff 11 ms, every metric in tolerance.
FP32_MODULES = ("heads.", "gate_", "rhythm.", "fuse_", "lead_embed")
# Of those, the ones that store int8 weights (fp32 arithmetic, see export.weight_only).
# Gates stay fully fp32: their weights decide the top-k experts.
WEIGHT_ONLY_MODULES = ("heads.", "rhythm.", "fuse_")
# A per-beat task's morphology experts int8 too, or kept fp32 (`beat_expert_modules`: those
# carrying at least BEAT_EXPERT_MIN_GATE of its gate row). Kept fp32 before: on the previous
# checkpoint beat_mlp int8 cost beat macro F1 -0.068 on the held-out fold. That was with every
# fp32 reader of the beats and the window seeing their 8-bit copy (the gates included, so
# top-k picks flipped); since fp32 readers read fp32 (export.quantize.fp32_readers), the
# bundled checkpoint on held-out fold 0 (7426 windows): beat macro F1 +0.0014 worse than
# torch with them int8, +0.0008 with them fp32, both within 0.01; 1.89 against 2.04 ms (the
# table below).
BEAT_EXPERTS_INT8 = True
BEAT_EXPERT_MIN_GATE = 0.01
# Experts whose convolution stack runs int8 from end to end (export.quantize CHAIN_OP_TYPES:
# ReLUs, residual Adds and pooling quantized too, so no DequantizeLinear -> QuantizeLinear
# between two convolutions), by path and expert name; the routed model's module paths come
# from `int8_chain_modules` (an expert kept fp32 stays fp32 all the same).
# The scout "cnn" (the arrhythmia and potassium scout) is not chained: chained, it cost the
# arrhythmia macro F1 0.018 on the checkpoint's validation patients (2719 windows of
# recipe:validation, the export's gate; 4 of its 35 too_noisy windows flipped), over the 0.01
# tolerance; unchained 0.0053, and no slower (one process, interleaved x300, a 14-beat window,
# thread CPU p50: 2.09 ms chained, 1.99 unchained, 3.20 for ONNX fp32 with all experts).
# Agreement with torch on the arrhythmia class moved less (0.9765 -> 0.9787: those windows
# are near-ties); keeping it fp32 with int8-stored weights agreed best (0.9879, macro F1
# -0.0033) but ran 2.24 ms (a scratch comparison of the variants, same windows and run).
INT8_CHAIN_EXPERTS = {"scout": ("fold",),
                      "morphology": ("beat_cnn", "beat_dilated", "beat_deviation")}
# The int8 levers on the bundled checkpoint, all six tasks (12 of 12 experts kept),
# `python bench/int8_choices.py --calib-limit 0` (recipe:calib, 1108 windows; held-out fold 0,
# 7426 windows; batch 1, one thread, p50 of the calling thread's CPU time over 500 calls
# interleaved in a random order, shared 2-core machine), each step added to the one above;
# ratios against ONNX fp32 with all experts written plainly (as before) / in the export's
# forms (the bundle's onnx-fp32 now) / the dense soft-gate baseline, and the worst task
# metric drop against torch (tolerance 0.01):
#   int8 as before (QDQ file, beat experts fp32)   2.66 ms 1.25x 1.12x 1.12x  +0.002
#   + onnxruntime's optimised graph saved           2.65 ms 1.25x 1.13x 1.13x  +0.002
#   + fp32 readers read fp32 (export.quantize)      2.62 ms 1.26x 1.14x 1.14x  +0.001
#   + activation x activation MatMuls fp32          2.52 ms 1.32x 1.18x 1.19x  +0.001
#   + beat experts int8 (BEAT_EXPERTS_INT8)         2.36 ms 1.40x 1.26x 1.26x  +0.004
#   + exact graph forms (export.graph_forms)        2.19 ms 1.52x 1.37x 1.37x  +0.006
#   + per-beat head routed (routing.ROUTE_HEADS)    1.95 ms 1.70x 1.53x 1.54x  +0.008
#   + conv experts chained in int8 (INT8_CHAINS)    1.89 ms 1.75x 1.58x 1.58x  +0.001
# (ONNX fp32 all experts 3.31 ms plain, 2.98 ms in the forms; dense baseline 2.99 ms; the
# routed fp32 graph 2.59 ms.) Alternatives to that default, same run: beat experts fp32
# 2.04 ms (+0.001); activation MatMuls int8 2.03 ms and arrhythmia macro F1 -0.14 (the
# gate-weighted sums over experts quantized); nodes under 250k MACs fp32 2.22 ms; the QDQ file
# shipped 1.95 ms at run time, 100 ms to open a session against 34 ms (ORT_OPTIMIZED).
# Before the forms and the fp32 readers, chains measured 1.22x against 1.21x without them
# and arrhythmia -0.006; now their arrhythmia drop is +0.0002 against +0.0078 without.
# The bundle is exported --no-route-heads (export/routing.py: the routed per-beat head cost
# held-out V F1 0.049, hidden in the macro F1): in bench/export_variants.py, one run at load
# 2.3, it runs 2.41 ms against 3.43 for ONNX fp32 with all experts in the forms, 1.42x.
INT8_CHAINS = True
ORT_OPTIMIZED = True
# The onnxruntime routed graphs (fp32 and int8) compute the per-beat part on the beat slots in
# use only (export.beat_slots; the same outputs: the int8 graph's bit-identical to the
# untrimmed int8 on 1214 validation windows). What it saves depends on the window's beats
# (14 at the median of the validation and calibration windows; at least 17 slots computed).
# The bundle's files against a scratch export with it (and graph_forms' shared_template), one
# process, interleaved x400, thread CPU p50, load 2.2-2.5 (AMD EPYC, 2 cores), windows of
# 9 / 14 / 21 / 32 beats: int8 2.55 / 3.09 / 2.65 / 3.04 -> 2.32 / 2.80 / 2.51 / 3.05 ms, i.e.
# 1.36 / 1.35 / 1.36 / 1.40x -> 1.50 / 1.49 / 1.44 / 1.40x the bundle's ONNX fp32 with all
# experts (3.48 / 4.17 / 3.62 / 4.27 ms). `python bench/int8_choices.py --no-route-heads
# --calib-limit 128 --eval-limit 300` (validation windows, load 6.8; its timed window has 14
# beats): 2.98 -> 2.78 ms, 1.44x -> 1.55x ONNX fp32 all experts, 1.53x the dense baseline; the
# fp32 routed graph 4.11 -> 3.52 ms. OpenVINO runs the trimmed graph slower (2.6 -> 4.0 ms: a
# data-dependent shape), so its variants are converted from the untrimmed graph.
TRIM_SLOTS = True


def beat_expert_modules(routing, tasks: TaskSet) -> tuple[str, ...]:
    """Module prefixes, in the routed model, of the morphology experts a per-beat task reads
    (at least `BEAT_EXPERT_MIN_GATE` of its mean gate row on the calibration windows)."""
    rows = routing.per_task.get("morphology", {})
    kept = routing.keep.get("morphology", ())
    out: list[str] = []
    for t in tasks:
        row = rows.get(t.name) if t.per_beat else None
        if row is None:
            continue
        for new, old in enumerate(kept):          # the routed model renumbers its experts
            name = f"morphology.{new}."
            if row[old] >= BEAT_EXPERT_MIN_GATE and name not in out:
                out.append(name)
    return tuple(out)


def int8_chain_modules(model_cfg, experts: dict = INT8_CHAIN_EXPERTS) -> tuple[str, ...]:
    """Module prefixes, in the (routed) model, of the experts named in `experts`."""
    module = {"scout": "scouts", "morphology": "morphology", "rhythm": "rhythm"}
    out = []
    for path, names in experts.items():
        if path == "scout" or model_cfg.use_period:
            out += [f"{module[path]}.{i}." for i, n in enumerate(model_cfg.experts(path))
                    if n in names]
    return tuple(out)
