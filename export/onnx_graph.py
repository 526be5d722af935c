"""torch -> ONNX: the dynamo exporter at opset 18, one self-contained file, dynamic batch.

DESIGN.md (measured): the legacy exporter and jit.trace bake data-dependent branches in
silently, so only `dynamo=True` is used, and the opset actually written is checked.
"""

from __future__ import annotations

import contextlib
import copy
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from edge_ecg.signal.contract import INPUT_NAMES
from export.errors import ExportError

OPSET = 18


class _TupleOutputs:
    """Wraps a model whose forward returns an ordered dict, so the graph outputs get its keys."""

    @staticmethod
    def wrap(model, output_names: list[str]):
        import torch

        class TupleOutputs(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.m = inner

            def forward(self, x, lead_mask, beats, beat_mask, rr_ms, rr_mask, period, beat_rr,
                        valid, beat_ctx):
                out = self.m(x, lead_mask, beats, beat_mask, rr_ms, rr_mask, period, beat_rr,
                             valid, beat_ctx)
                return tuple(out[k] for k in output_names)

        return TupleOutputs(model).eval()


def output_names_of(model, example: dict[str, np.ndarray]) -> list[str]:
    """The model's output names in order (one forward pass on the example)."""
    import torch

    with torch.no_grad():
        out = model.eval()(*(torch.from_numpy(example[k][:1]) for k in INPUT_NAMES))
    return list(out.keys())


def export_onnx(model, example: dict[str, np.ndarray], path: str | Path,
                opset: int = OPSET, forms: bool = True, trim_slots: bool = False) -> list[str]:
    """Write `model` to the single ONNX file `path`; returns the graph output names.

    `example` is a batch in `stack_inputs` form with at least 2 windows (a batch of 1 would let
    the exporter specialise the batch axis). The batch axis of every input is dynamic.
    `forms`: the model is traced in its exact export forms and its Einsums written as MatMul
    (`export.graph_forms`: the same outputs from fewer, cheaper ops). `trim_slots`: the
    per-beat part computes only the beat slots in use (`export.beat_slots`; routed graphs).
    """
    import onnx
    import torch

    from export.beat_slots import SLOT_INPUTS, can_trim, dynamic_slots, slot_form, trim_slots_onnx
    from export.graph_forms import einsum_to_matmul, export_forms

    path = Path(path)
    names = output_names_of(model, example)
    args = tuple(torch.from_numpy(np.ascontiguousarray(example[k][:2])) for k in INPUT_NAMES)
    if args[0].shape[0] < 2:
        raise ExportError("export_onnx needs an example batch of at least 2 windows")
    batch = torch.export.Dim("batch", min=1, max=4096)
    trim_slots = trim_slots and can_trim(model)
    dynamic = {k: {0: batch} for k in INPUT_NAMES}
    if trim_slots:
        slots = dynamic_slots(model.cfg)
        dynamic.update({k: {0: batch, 1: slots} for k in SLOT_INPUTS})
    # Export into an empty scratch folder: anything beside model.onnx afterwards is external
    # data we asked not to have.
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), \
            (export_forms(model) if forms else contextlib.nullcontext(model)) as traced:
        warnings.simplefilter("ignore")
        if trim_slots:
            traced = slot_form(traced if forms else copy.deepcopy(traced))
        wrapped = _TupleOutputs.wrap(traced.eval(), names)
        scratch = Path(tmp) / "model.onnx"
        try:
            torch.onnx.export(wrapped, args, str(scratch), dynamo=True, opset_version=opset,
                              external_data=False, input_names=list(INPUT_NAMES),
                              output_names=names,
                              dynamic_shapes=dynamic,
                              verbose=False)
        except Exception as exc:  # the exporter raises many types; name the stage
            raise ExportError(f"torch.onnx.export (dynamo, opset {opset}) failed: {exc}") from exc
        extra = [p.name for p in Path(tmp).iterdir() if p != scratch]
        if extra:
            raise ExportError(f"ONNX export wrote external data files {extra}; expected one file")
        if forms or trim_slots:
            proto = onnx.load(str(scratch))
            changed = bool(forms and einsum_to_matmul(proto))
            if trim_slots:
                trim_slots_onnx(proto, model.cfg,
                                tuple(t.name for t in model.cfg.tasks if t.per_beat))
                changed = True
            if changed:
                onnx.save(proto, str(scratch))
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(scratch), path)
    check_onnx_file(path, opset)
    model_proto = onnx.load(str(path), load_external_data=False)
    written = [o.name for o in model_proto.graph.output]
    if written != names:
        raise ExportError(f"{path}: graph outputs {written} differ from the model's {names}")
    return names


def check_onnx_file(path: str | Path, opset: int = OPSET) -> int:
    """Check that `path` is one self-contained ONNX file at the default-domain `opset`."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    proto = onnx.load(str(path), load_external_data=False)
    written = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    if written != [opset]:
        raise ExportError(f"{path}: opset written is {written}, expected [{opset}]")
    external = [t.name for t in proto.graph.initializer if uses_external_data(t)]
    if external:
        raise ExportError(f"{path}: {len(external)} tensors use external data (e.g. {external[0]})")
    onnx.checker.check_model(proto)
    return written[0]


def node_module_path(node) -> str:
    """The torch module path the dynamo exporter recorded for an ONNX node ('' if none).

    The `namespace` metadata reads ': Wrapper/m: ECGMoE/m.heads.age: Linear/linear_3: aten...';
    the module path is the last dotted segment before the aten op.
    """
    for prop in node.metadata_props:
        if prop.key == "namespace":
            mods = [seg.split(":")[0].strip() for seg in prop.value.split("/")]
            mods = [m for m in mods if m]
            paths = [m for m in mods[:-1] if m.startswith("m.") or m == "m"]
            return paths[-1][2:] if paths and paths[-1].startswith("m.") else ""
    return ""


def nodes_in_modules(path: str | Path, prefixes: tuple[str, ...]) -> list[str]:
    """Names of the ONNX nodes that belong to torch submodules whose path starts with a prefix
    (e.g. ("heads.",)): the exporter's namespace metadata ties nodes to modules."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    out = []
    for node in proto.graph.node:
        mod = node_module_path(node)
        if mod and any(mod == p.rstrip(".") or mod.startswith(p) for p in prefixes):
            out.append(node.name)
    return out


def save_ort_optimized(src: str | Path, dst: str | Path) -> dict:
    """Write onnxruntime's optimised graph of `src` to `dst`: constants folded, QDQ pairs fused
    into QLinear* kernels, Conv/Gemm + activation fused, so a device session starts from fewer,
    larger ops and does not redo that work at every start.

    Saved at ORT_ENABLE_EXTENDED, not ALL: the ALL level adds layout transforms (NCHWc blocks,
    NHWC int8) specific to this machine's instruction set, which a saved file must not carry to
    another CPU (onnxruntime's own advice for offline optimisation); the session that opens the
    file still applies them for the CPU it runs on. Optimising folds the int8-stored weights
    of `export.weight_only` into fp32; they are stored as int8 again (`restore_weight_only`).
    """
    import onnx
    import onnxruntime as ort

    from export.weight_only import restore_weight_only

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(dst)
    opts.intra_op_num_threads = 1
    ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])
    source = onnx.load(str(src), load_external_data=False)
    proto = onnx.load(str(dst), load_external_data=False)
    restored = restore_weight_only(proto, source)
    if restored:
        onnx.save(proto, str(dst))
    return {"ort_optimized": "ORT_ENABLE_EXTENDED", "ort_version": ort.__version__,
            "nodes_before": len(source.graph.node), "nodes_after": len(proto.graph.node),
            "weight_only_restored": restored}
