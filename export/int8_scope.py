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
# A per-beat task's morphology experts stay fp32 too (`beat_expert_modules`): a beat's class
# rests on a few of its features, and int8 on them moved the rare classes. Measured on the
# bundled checkpoint (ONNX QDQ, held-out fold 0 -- the export's own tolerance check; the rule
# is general, the experts are picked by routing on the calibration windows): beat macro F1
# -0.068 against torch with beat_mlp int8 (and -0.068 with the heads' weights fp32 as well),
# -0.004 with it fp32, 1.27 -> 1.37 MB, 1.69 -> 1.72 ms at batch 1.
BEAT_EXPERT_MIN_GATE = 0.01
# Experts whose convolution stack runs int8 from end to end (export.quantize CHAIN_OP_TYPES:
# ReLUs, residual Adds and pooling quantized too, so no DequantizeLinear -> QuantizeLinear
# between two convolutions), by path and expert name; the routed model's module paths come
# from `int8_chain_modules` (a per-beat task's experts stay fp32 all the same).
INT8_CHAIN_EXPERTS = {"scout": ("cnn", "fold"),
                      "morphology": ("beat_cnn", "beat_dilated", "beat_deviation")}
# Measured on the retrained edge checkpoint (beat_ctx), all six tasks, 12 of 12 experts kept,
# bench/int8_choices.py-style run on 800 held-out windows, 64 calibration windows; per call the
# calling thread's CPU time (the box was shared with a training run, so wall time was
# meaningless), median of 150 interleaved calls, batch 1, one thread; ONNX fp32 all experts 3.94 ms:
#   int8 as before (QDQ file)                      3.44 ms 1.14x  session start 1820 ms
#   int8, onnxruntime's optimised graph saved      3.26 ms 1.21x  session start  655 ms
#   + conv experts chained in int8                 3.24 ms 1.22x  (arrhythmia F1 -0.006, vs -0.002)
#   + the beat task's experts int8 as well         2.92 ms 1.35x  beat macro F1 +0.006 on these
#     800 windows; kept fp32 by default: -0.068 on the held-out fold with the older checkpoint
# and nodes under 1M / 250k MACs left fp32: 1.02-1.10x (slower than quantizing them: each fp32
# island adds a DequantizeLinear/QuantizeLinear pair back). Worst metric drop of each <= 0.006.
INT8_CHAINS = False
ORT_OPTIMIZED = True


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
