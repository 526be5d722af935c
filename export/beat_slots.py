"""Beat slots trimmed: a routed graph computes its per-beat features on the beat slots that hold
beats (plus one empty slot), not on all `max_beats`.

A window's beats fill a prefix of the `max_beats` slots (`beat_mask` 1, then 0), and the runtime
and the data loaders leave an empty slot all zeros (beats, `beat_rr`, `beat_ctx`). A 10-s window
holds 14 beats at the median (validation and calibration windows); the model computes the
morphology experts, the beat shape features and the per-beat head for all 32 slots, a quarter
of the int8 graph's time.

The graph written here keeps the model's inputs and outputs, shapes included. Its prologue
finds `n`, the slots in use by any window of the batch (the last slot with `beat_mask` > 0,
plus one), and slices `beats`, `beat_mask`, `beat_rr` and `beat_ctx` to
`clip(n + 1, morph_beats + 1, max_beats)` slots; the model is traced with that slot axis
dynamic; the epilogue fills the per-beat outputs back to `max_beats` slots with the last
computed slot, which is empty in every window of the batch.

Why that is the same output:
- valid slots: a beat's features and logits read its own slot only; the template, the shape
  features' template, the experts' masked mean and max over beats ignore masked slots (zero
  weight in the mean, `- BIG` in the max), so the slots cut off change nothing;
- the window tasks pool the first `morph_beats` slots, always computed (at least
  `morph_beats + 1` slots are kept);
- the input summary's fraction of slots filled is computed as a sum over the slots kept divided
  by `max_beats` (`SlotSummary`: the slots cut off are all zero; the sum is the same and
  dividing by 32 is what the mean does);
- an empty slot's logits depend only on its inputs (zeros) and on the window's own gate row,
  so every empty slot of a window has the logits of the last slot computed (empty, for every
  window, by construction). Where a caller puts non-zero data in an empty slot the full model's
  logits there would differ; nothing reads an empty slot's class.

`tests/export/test_beat_slots.py` checks it against the model on windows of every beat count.
"""

from __future__ import annotations

import functools

import numpy as np

# The inputs with a beat-slot axis (axis 1) and the per-beat outputs refilled to max_beats.
SLOT_INPUTS = ("beats", "beat_mask", "beat_rr", "beat_ctx")


def slot_range(cfg) -> tuple[int, int]:
    """The fewest and most slots the trimmed graph computes: the window tasks' pooled slots
    (`morph_beats`) plus an empty one, up to `max_beats`."""
    most = cfg.contract.max_beats
    return min(most, min(cfg.morph_beats, most) + 1), most


def can_trim(model) -> bool:
    """Whether trimming saves anything: a period model with a per-beat task, whose beat slots
    outnumber the pooled ones by more than one."""
    cfg = model.cfg
    lo, hi = slot_range(cfg)
    return bool(cfg.use_period and any(t.per_beat for t in cfg.tasks) and lo < hi)


@functools.cache
def _summary_form():
    import torch
    import torch.nn.functional as F

    from edge_ecg.model.gate import InputSummary

    class SlotSummary(InputSummary):
        """The summary with the fraction of slots filled as sum / max_beats: the same number
        from the slots kept (those cut off are zero)."""

        max_beats = 0

        def forward(self, x, lead_mask, beat_mask, period, valid):
            # InputSummary.forward but `filled`: its mean over the slots would divide by the
            # slots kept (tests/export/test_beat_slots.py holds the two equal on full masks)
            low = F.avg_pool1d(x, self.pool_by)                              # (B, L, T/10)
            amp = low.abs().mean(-1)
            spread = low.std(-1)
            slope = (low[..., 1:] - low[..., :-1]).abs().mean(-1) * 10.0
            filled = beat_mask.sum(1, keepdim=True) / float(self.max_beats)
            missing = lead_mask - valid.mean(-1)                             # (B, L)
            return torch.cat([amp, spread, slope, lead_mask, period, filled, missing], 1)

    return SlotSummary


def slot_form(model):
    """`model` (an export-form copy, changed in place) with the slot-count-free summary."""
    cls = _summary_form()
    model.summary.__class__ = cls
    model.summary.max_beats = int(model.cfg.contract.max_beats)
    return model


def dynamic_slots(cfg):
    """The `torch.export` dimension of the slot axis."""
    import torch

    lo, hi = slot_range(cfg)
    return torch.export.Dim("slots", min=lo, max=hi)


def trim_slots_onnx(proto, cfg, per_beat_outputs: tuple[str, ...]) -> None:
    """Add the prologue and epilogue (module docstring) to `proto`, traced with a dynamic slot
    axis: the graph inputs get back their `max_beats` slots, the per-beat outputs too."""
    import onnx
    from onnx import helper, numpy_helper

    g = proto.graph
    lo, hi = slot_range(cfg)
    inputs = {i.name: i for i in g.input}
    missing = [n for n in SLOT_INPUTS if n not in inputs]
    if missing:
        raise ValueError(f"trim_slots_onnx: the graph lacks the inputs {missing}")
    p = "beat_slots"
    # Rename what the model reads to the sliced tensors.
    renamed = {n: f"{p}_{n}" for n in SLOT_INPUTS}
    for node in g.node:
        for j, name in enumerate(node.input):
            if name in renamed:
                node.input[j] = renamed[name]
    for n in SLOT_INPUTS:
        dim = inputs[n].type.tensor_type.shape.dim[1]
        dim.Clear()
        dim.dim_value = hi
    g.initializer.extend([
        numpy_helper.from_array(np.arange(1, hi + 1, dtype=np.float32), f"{p}_pos"),
        numpy_helper.from_array(np.array(1.0, np.float32), f"{p}_one"),
        numpy_helper.from_array(np.array(float(lo), np.float32), f"{p}_lo"),
        numpy_helper.from_array(np.array(float(hi), np.float32), f"{p}_hi"),
        numpy_helper.from_array(np.array([0], np.int64), f"{p}_zero"),
        numpy_helper.from_array(np.array([1], np.int64), f"{p}_axis"),
        numpy_helper.from_array(np.array([1], np.int64), f"{p}_shape1"),
        numpy_helper.from_array(np.arange(hi, dtype=np.int64), f"{p}_idx"),
        numpy_helper.from_array(np.array(1, np.int64), f"{p}_one_i"),
    ])
    pre = [
        # last slot in use, 1-based: max over the batch of beat_mask * (1..max_beats); a
        # masked slot (0) contributes 0, so an empty batch gives 0
        helper.make_node("Greater", ["beat_mask", f"{p}_zero_f"], [f"{p}_used"]),
        helper.make_node("Where", [f"{p}_used", f"{p}_pos", f"{p}_zero_f"], [f"{p}_at"]),
        helper.make_node("ReduceMax", [f"{p}_at"], [f"{p}_last"], keepdims=0),
        helper.make_node("Add", [f"{p}_last", f"{p}_one"], [f"{p}_n1"]),
        helper.make_node("Clip", [f"{p}_n1", f"{p}_lo", f"{p}_hi"], [f"{p}_nf"]),
        helper.make_node("Cast", [f"{p}_nf"], [f"{p}_n0"], to=onnx.TensorProto.INT64),
        helper.make_node("Reshape", [f"{p}_n0", f"{p}_shape1"], [f"{p}_n"]),
    ]
    g.initializer.append(numpy_helper.from_array(np.array(0.0, np.float32), f"{p}_zero_f"))
    for n in SLOT_INPUTS:
        pre.append(helper.make_node("Slice", [n, f"{p}_zero", f"{p}_n", f"{p}_axis"],
                                    [renamed[n]]))
    # Epilogue: slot i of the output reads computed slot min(i, n - 1).
    post = [
        helper.make_node("Sub", [f"{p}_n0", f"{p}_one_i"], [f"{p}_lastslot"]),
        helper.make_node("Min", [f"{p}_idx", f"{p}_lastslot"], [f"{p}_gather"]),
    ]
    outs = {o.name: o for o in g.output}
    producer = {o: node for node in g.node for o in node.output}
    for name in per_beat_outputs:
        node = producer[name]
        inner = f"{p}_{name}_computed"
        node.output[list(node.output).index(name)] = inner
        post.append(helper.make_node("Gather", [inner, f"{p}_gather"], [name], axis=1))
        dim = outs[name].type.tensor_type.shape.dim[1]
        dim.Clear()
        dim.dim_value = hi
    for k, node in enumerate(pre + post):
        node.name = node.name or f"{p}_{k}_{node.op_type}"
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(pre + nodes + post)


LOW_SLOTS = "beat_slots_lo"     # the initializer holding the fewest slots computed


def pin_slots(proto, n: float | None) -> float | None:
    """Set the fewest slots the trimmed graph `proto` computes to `n` (in place); returns the
    value it had, None for a graph without trimmed slots (then nothing changes).

    int8 calibration runs the graph with `n = max_beats`: onnxruntime's calibrator stacks
    each tensor over the calibration windows, so every window must give the same shapes; all
    slots computed, the statistics are those of the untrimmed graph."""
    from onnx import numpy_helper

    for i, init in enumerate(proto.graph.initializer):
        if init.name == LOW_SLOTS:
            old = float(numpy_helper.to_array(init))
            if n is not None:
                proto.graph.initializer[i].CopyFrom(
                    numpy_helper.from_array(np.array(float(n), np.float32), LOW_SLOTS))
            return old
    return None
