"""The model as it is exported: exact rewrites into fewer, cheaper ONNX ops, and the per-beat
head routed to the experts its own gate row carries.

Exact forms (`export_forms`, every exported graph, fp32 and int8 alike; outputs equal to the
model's up to float rounding, checked by the stage's fp32 parity against torch):

- `fold_pool`: the fold scout's 1x1 `out` conv, masked, then averaged, is linear: averaged
  first, then one (B, 2c + 1) x (2c + 1, D) product (816 positions x 24 x 96 MACs -> 25 x 96).
- `cnn_pool`: the CNN scout's 1x1 `out` conv after its time mean, for the same reason.
- `dlinear_fused`: trend (a replicate-padded moving average) and seasonal residual each
  through a Linear, summed, is one Linear over the pooled window: Pad, AveragePool, Sub,
  two MatMuls and an Add become one MatMul (the LoRA-merged weights folded into one matrix).
- `valid_upsample`: the per-segment validity mask repeated per sample by a Mul broadcast along
  the contiguous axis and a Transpose; `expand` along a size-1 inner axis runs element by
  element in onnxruntime (the graph's slowest op at batch 1, ~60-120 us).
- `beat_template`: the window's mean beat as one MatMul of the beat mask with the beats, and
  each beat's product with it as another (a ReduceSum over the middle beat axis and a Mul
  over every beat sample before).
- `shared_template`: the deviation expert's template and beat-minus-template written as the
  shape features' own ops, which onnxruntime's common-subexpression pass then computes once
  (a masked sum over the beat slots, a Mul and a Sub over every beat sample fewer; all-task
  int8 2.16 -> 2.07 ms with trimmed beat slots, one process, interleaved).
- `einsum_matmul` (an ONNX pass, `einsum_to_matmul`): the gate-weighted sums over experts
  as MatMul instead of onnxruntime's Einsum.

Routed form (`route_beat_head`, routed variants only; part of routing, measured by its
metric gate): a per-beat head reads the morphology experts its own gate row carries
(`Routing.heads`), renormalised over them as pruning renormalises; every other morphology
expert computes the first `morph_beats` slots only, the ones the window tasks pool. On the
bundled checkpoint the beat task leans 0.988 on `beat_mlp`: three of the four beat
encoders then run on 16 beats instead of 32.

What each is worth: export/int8_scope.py (bench/int8_choices.py).
"""

from __future__ import annotations

import contextlib
import copy
import functools

import numpy as np

FORMS = ("fold_pool", "cnn_pool", "dlinear_fused", "valid_upsample", "beat_template",
         "shared_template", "einsum_matmul")


# -- exact forms (torch) -------------------------------------------------------------------
@functools.cache
def _classes() -> dict:
    """The export-form subclasses, built on first use (torch is imported lazily here)."""
    import torch
    import torch.nn.functional as F

    from edge_ecg.model.period_expert import BeatHead, MorphologyExpert
    from edge_ecg.model.scouts import CNNScout, DLinearScout, FoldScout

    class PooledFoldScout(FoldScout):
        """mean((W h + b) * valid) = [W b] [mean(h * valid); mean(valid)]: one MatMul with a
        constant weight (a bias added to it would be a Gemm with a computed bias)."""

        def forward(self, x, period):
            grid, valid = self.fold(x, period)
            h = F.relu(self.bn1(self.conv1(torch.cat([grid, valid], 1))))
            h = F.relu(self.bn2(self.conv2(h)))
            pooled = torch.cat([(h * valid).mean((-2, -1)), valid.mean((-2, -1))], 1)
            w = torch.cat([self.out.weight[:, :, 0, 0], self.out.bias[:, None]], 1)
            return pooled @ w.t()                                            # (B, D)

    class PooledCNNScout(CNNScout):
        """mean_t(W h + b) = W mean_t(h) + b."""

        def forward(self, x, period):
            h = F.relu(self.bn(self.stem(x)))
            for blk in self.blocks:
                h = F.avg_pool1d(blk(h), 2)
            return F.linear(h.mean(-1), self.out.weight[:, :, 0], self.out.bias)

    class FusedDLinearScout(DLinearScout):
        """lin_trend(A low) + lin_seasonal((I - A) low) = low @ W + b, A the moving average."""

        def fuse(self):
            t = self.lin_trend.in_features
            half = self.kernel // 2
            with torch.no_grad():
                eye = torch.eye(t)
                padded = F.pad(eye[None], (half, self.kernel - 1 - half), mode="replicate")
                a = F.avg_pool1d(padded, self.kernel, stride=1)[0]          # row i: trend of e_i
                w = a @ self.lin_trend.weight.t() + (eye - a) @ self.lin_seasonal.weight.t()
                b = self.lin_trend.bias + self.lin_seasonal.bias
            self.register_buffer("fused_w", w.contiguous(), persistent=False)
            self.register_buffer("fused_b", b.contiguous(), persistent=False)

        def forward(self, x, period):
            low = F.avg_pool1d(x, self.pool_by)                              # (B, L, T/pool)
            return F.relu(self.mix((low @ self.fused_w + self.fused_b).flatten(1)))

    class WindowOnlyMorphology(MorphologyExpert):
        """An expert no per-beat head reads: per-beat features of the first `n_slots` beats
        (those the window tasks pool); a deviation expert's template still over every slot."""

        n_slots = 0

        def beat_features(self, beats, beat_mask):
            b, _, n_leads, n = beats.shape
            nb = self.n_slots
            if self.kind == "beat_deviation":
                tmpl = beat_template(beats, beat_mask).reshape(b, 1, n_leads, n)
                sel = (beats[:, :nb] - tmpl) * beat_mask[:, :nb, None, None]
            else:
                sel = beats[:, :nb]
            return self.encoder(sel.reshape(b * nb, n_leads, n)).reshape(b, nb, self.dim)

    class SharedTemplateDeviation(MorphologyExpert):
        """A `beat_deviation` expert whose template and beat-minus-template are the very ops
        of the shape features' (`beat_shape_features` below: flattened beats, the template by
        `beat_template`, one Sub), so onnxruntime's common-subexpression pass computes them
        once for both: (beats - template) * mask as the model, from one template."""

        def beat_features(self, beats, beat_mask):
            b, m, n_leads, n = beats.shape
            d = beats.flatten(2) - beat_template(beats, beat_mask)              # (B, M, L*len)
            sel = (d * beat_mask[..., None]).reshape(b * m, n_leads, n)
            return self.encoder(sel).reshape(b, m, self.dim)

    class RoutedBeatHead(BeatHead):
        """A per-beat head over the experts `keep` only, its gate row renormalised over them
        (evenly weighted on a window whose top-k picked none of them)."""

        keep: tuple[int, ...] = ()

        def forward(self, per_beat, gate, beat_rr, shape, beat_ctx=None):
            keep = list(self.keep)
            h = torch.stack([F.relu(self.proj[e](per_beat[e])) for e in keep], 1)
            g = gate[:, keep]
            total = g.sum(-1, keepdim=True)
            g = torch.where(total > 0, g / total.clamp(min=1e-9),
                            torch.full_like(g, 1.0 / len(keep)))
            return self.classify(torch.einsum("be,bemd->bmd", g, h), beat_rr, shape, beat_ctx)

    return {"fold": (FoldScout, PooledFoldScout), "cnn": (CNNScout, PooledCNNScout),
            "dlinear": (DLinearScout, FusedDLinearScout),
            "morph": (MorphologyExpert, WindowOnlyMorphology),
            "deviation": (MorphologyExpert, SharedTemplateDeviation),
            "beat_head": (BeatHead, RoutedBeatHead)}


def valid_upsample(valid, seg: int, n: int):
    """`edge_ecg.model.moe.expand_valid` as a broadcast Mul along the contiguous axis and a
    Transpose: `(B, L, n_seg)` -> `(B, L, n)`."""
    import torch

    ones = torch.ones(seg, 1, dtype=valid.dtype, device=valid.device)
    up = (valid[:, :, None, :] * ones).transpose(2, 3)                       # (B, L, n_seg, seg)
    return up.reshape(valid.shape[0], valid.shape[1], -1)[..., :n]


def beat_template(beats, beat_mask):
    """The masked mean beat `(B, 1, L*len)` of `(B, M, L, len)` beats: one MatMul."""
    w = beat_mask[:, None, :]                                                # (B, 1, M)
    return (w @ beats.flatten(2)) / beat_mask.sum(1)[:, None, None].clamp(min=1.0)


def beat_shape_features(beats, beat_mask):
    """`edge_ecg.model.period_expert.beat_shape_features` with the template and each beat's
    product with it as MatMuls."""
    from edge_ecg.model.period_expert import shape_against_template

    b = beats.flatten(2)                                                     # (B, M, K)
    t = beat_template(beats, beat_mask)                                      # (B, 1, K)
    return shape_against_template(b, t, (b @ t.transpose(1, 2))[..., 0], beat_mask)


def _swap_class(module, new_cls):
    module.__class__ = new_cls
    return module


@contextlib.contextmanager
def export_forms(model):
    """A copy of `model` in its exact export forms (the module's docstring), valid inside the
    `with`: two of them replace functions `edge_ecg.model.moe` calls (the validity
    upsampling, the beat shape features), restored on exit."""
    from edge_ecg.model import moe

    classes = _classes()
    m = copy.deepcopy(model).eval()
    for s in getattr(m, "scouts", ()):
        for key in ("fold", "cnn", "dlinear"):
            base, form = classes[key]
            if type(s) is base:
                _swap_class(s, form)
                if key == "dlinear":
                    s.fuse()
    base, form = classes["deviation"]
    for e in getattr(m, "morphology", ()):
        if type(e) is base and e.kind == "beat_deviation":
            _swap_class(e, form)
    saved = moe.expand_valid, moe.beat_shape_features
    moe.expand_valid, moe.beat_shape_features = valid_upsample, beat_shape_features
    try:
        yield m
    finally:
        moe.expand_valid, moe.beat_shape_features = saved


# -- routed form (torch) -------------------------------------------------------------------
def route_beat_head(model, heads: dict[str, tuple[int, ...]]):
    """`model` (routed, changed in place and returned) with each per-beat task's head reading
    only the morphology experts `heads[task]` (indices in `model`), and the experts no
    per-beat head reads computing the first `morph_beats` beat slots only."""
    cfg = model.cfg
    if not heads or not cfg.use_period:
        return model
    classes = _classes()
    read: set[int] = set()
    for t in cfg.tasks:
        if t.per_beat and t.name in heads:
            keep = tuple(sorted(heads[t.name]))
            if not keep:
                raise ValueError(f"route_beat_head: task {t.name} keeps no expert")
            head = _swap_class(model.heads[t.name], classes["beat_head"][1])
            head.keep = keep
            read |= set(keep)
        elif t.per_beat:
            read |= set(range(len(model.morphology)))
    nb = min(cfg.morph_beats, cfg.contract.max_beats)
    for i, e in enumerate(model.morphology):
        if i not in read and nb < cfg.contract.max_beats:
            _swap_class(e, classes["morph"][1]).n_slots = nb
    return model


# -- ONNX pass -----------------------------------------------------------------------------
def einsum_to_matmul(proto) -> int:
    """Rewrite the model's two Einsum forms as MatMul in place: `bte,bed->btd` (a batched
    MatMul as is) and `be,bemd->bmd` (Reshape, Unsqueeze, MatMul, Reshape, with `e`, `m`,
    `d` from shape inference); returns the number rewritten, others left as they are."""
    import onnx
    from onnx import helper, numpy_helper

    g = proto.graph
    inferred = onnx.shape_inference.infer_shapes(proto).graph
    shapes = {vi.name: [d.dim_value if d.HasField("dim_value") else 0
                        for d in vi.type.tensor_type.shape.dim]
              for vi in (*inferred.value_info, *inferred.input, *inferred.output)}
    nodes, n = [], 0
    for node in g.node:
        eq = next((a.s.decode() for a in node.attribute if a.name == "equation"), None) \
            if node.op_type == "Einsum" else None
        dims = shapes.get(node.input[1], []) if eq else []
        if eq == "bte,bed->btd":
            new = [helper.make_node("MatMul", list(node.input), list(node.output),
                                    name=node.name)]
        elif eq == "be,bemd->bmd" and len(dims) == 4 and dims[1] and dims[3]:
            # `m` may be dynamic (export.beat_slots): -1 takes it from the element count
            _, e, m, d = dims
            a, h = node.input
            p = node.name
            g.initializer.extend([
                numpy_helper.from_array(np.array([0, e, m * d if m else -1], np.int64),
                                        f"{p}_hshape"),
                numpy_helper.from_array(np.array([0, m or -1, d], np.int64), f"{p}_oshape"),
                numpy_helper.from_array(np.array([1], np.int64), f"{p}_axis1")])
            new = [
                helper.make_node("Reshape", [h, f"{p}_hshape"], [f"{p}_h"], name=f"{p}_h"),
                helper.make_node("Unsqueeze", [a, f"{p}_axis1"], [f"{p}_g"], name=f"{p}_g"),
                helper.make_node("MatMul", [f"{p}_g", f"{p}_h"], [f"{p}_mm"], name=f"{p}_mm"),
                helper.make_node("Reshape", [f"{p}_mm", f"{p}_oshape"], list(node.output),
                                 name=p)]
        else:
            nodes.append(node)
            continue
        for x in new:       # the exporter's module metadata, so module-based choices still see it
            x.metadata_props.extend(node.metadata_props)
        nodes += new
        n += 1
    del g.node[:]
    g.node.extend(nodes)
    return n
