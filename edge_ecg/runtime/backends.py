"""Inference backends for exported bundles: onnxruntime and OpenVINO, one small interface.

`open_backend(bundle_dir, variant, threads)` verifies the bundle (sha256 of every file, via
`edge_ecg.runtime.bundle.load_bundle`) before anything of it is loaded, then compiles the
variant's model file through `edge_ecg.runtime.sessions`, as the export stage's parity checks
do. OpenVINO's precision hint comes from the variant (`f32` for fp32 variants: OpenVINO
otherwise runs bf16 on CPUs that have it, which breaks fp32 parity; DESIGN.md, measured).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_ecg.errors import BundleError
from edge_ecg.runtime.bundle import Manifest, Variant, load_bundle
from edge_ecg.runtime.sessions import (
    onnx_input_names,
    onnx_output_names,
    onnx_session,
    openvino_compiled,
    openvino_input_names,
    openvino_output_names,
)


class Backend:
    """A compiled model: `run(inputs) -> outputs`, both dicts of named float32 arrays."""

    name = "base"

    def __init__(self, bundle_dir: Path, manifest: Manifest, variant: Variant, threads: int):
        self.bundle_dir = bundle_dir
        self.manifest = manifest
        self.variant = variant
        self.threads = threads
        self.input_names = list(manifest.inputs)
        self.output_names: list[str] = []

    def _check(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise BundleError(f"bundle {self.bundle_dir} needs input(s) {missing}; got "
                              f"{sorted(inputs)}")
        return [np.ascontiguousarray(inputs[n], dtype=np.float32) for n in self.input_names]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def warmup(self, runs: int = 2) -> None:
        """Run zero inputs of the contract's shapes: the first calls allocate and compile
        kernels (tens of ms), which a live stream should not pay on its first window."""
        from edge_ecg.signal.contract import SignalContract
        from edge_ecg.signal.patient_context import N_CONTEXT

        c = SignalContract.from_dict(self.manifest.signal)
        # every input of the contract: with one missing, warm-up silently did nothing
        shapes = {"x": (1, c.n_leads, c.window_len), "lead_mask": (1, c.n_leads),
                  "beats": (1, c.max_beats, c.n_leads, c.beat_len), "beat_mask": (1, c.max_beats),
                  "rr_ms": (1, c.max_beats), "rr_mask": (1, c.max_beats),
                  "period": (1, len(c.period_features)), "beat_rr": (1, c.max_beats, 3),
                  "valid": (1, c.n_leads, c.n_valid_seg), "beat_ctx": (1, c.max_beats, N_CONTEXT)}
        zeros = {n: np.zeros(shapes[n], np.float32) for n in self.input_names if n in shapes}
        if len(zeros) == len(self.input_names):
            for _ in range(runs):
                self.run(zeros)

    def close(self) -> None:
        pass

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, bundle_dir, manifest, variant, threads):
        super().__init__(bundle_dir, manifest, variant, threads)
        try:
            self._sess = onnx_session(bundle_dir / variant.file, threads)
        except Exception as exc:   # onnxruntime raises its own Fail/InvalidGraph types
            # a graph saved as onnxruntime optimised it (export --ort-optimized) may use kernels
            # of that version; say which
            q = manifest.quantization.get(variant.name, {})
            hint = (f" (the file is onnxruntime {q['ort_version']}'s optimised graph: install "
                    f"onnxruntime>={q['ort_version']} or pick another variant)"
                    if isinstance(q, dict) and q.get("ort_version") else "")
            raise BundleError(f"bundle {bundle_dir}: onnxruntime cannot load {variant.file}: "
                              f"{exc}{hint}") from exc
        graph_inputs = onnx_input_names(self._sess)
        if sorted(graph_inputs) != sorted(self.input_names):
            raise BundleError(f"bundle {bundle_dir}: {variant.file} takes inputs {graph_inputs} "
                              f"but the manifest lists {self.input_names}")
        self.output_names = onnx_output_names(self._sess)

    def run(self, inputs):
        arrays = self._check(inputs)
        outs = self._sess.run(None, dict(zip(self.input_names, arrays)))
        return dict(zip(self.output_names, outs))

    def close(self):
        self._sess = None


class OpenVinoBackend(Backend):
    name = "openvino"

    def __init__(self, bundle_dir, manifest, variant, threads):
        super().__init__(bundle_dir, manifest, variant, threads)
        try:
            import openvino  # noqa: F401  (the device extra: say so before anything else)
        except ImportError as exc:
            raise BundleError(f"variant {variant.name!r} needs OpenVINO: pip install "
                              "'edge-ecg[device]' (or pick an onnxruntime variant)") from exc
        # f32 unless the variant asks for a half type: int8 layers stay int8 either way, and
        # the rest (heads) must keep f32 for parity with the reference.
        hint = variant.precision if variant.precision in ("bf16", "f16") else "f32"
        try:
            self._compiled = openvino_compiled(bundle_dir / variant.file, threads, hint,
                                               latency_hint=True)
        except Exception as exc:
            raise BundleError(f"bundle {bundle_dir}: OpenVINO cannot compile {variant.file}: "
                              f"{exc}") from exc
        self._request = self._compiled.create_infer_request()
        self._ov_inputs = openvino_input_names(self._compiled)
        if sorted(self._ov_inputs) != sorted(self.input_names):
            raise BundleError(f"bundle {bundle_dir}: {variant.file} takes inputs {self._ov_inputs} "
                              f"but the manifest lists {self.input_names}")
        # a tensor can carry several names after OpenVINO's fusions: the manifest's task
        # outputs and the gates, the first in sorted order where a tensor carries several
        wanted = {t["output"] for t in manifest.tasks}
        carried = {n for port in self._compiled.outputs for n in port.get_names()}
        self.output_names = openvino_output_names(
            self._compiled, sorted(n for n in carried if n in wanted or n.startswith("gate_")))

    def run(self, inputs):
        arrays = self._check(inputs)
        res = self._request.infer(dict(zip(self.input_names, arrays)))
        return {name: np.asarray(res[port]) for name, port in
                zip(self.output_names, self._compiled.outputs)}

    def close(self):
        self._request = None
        self._compiled = None


BACKEND_CLASSES = {"onnxruntime": OnnxRuntimeBackend, "openvino": OpenVinoBackend}


class BeatStackedBackend(Backend):
    """A backend whose per-beat probabilities come out fused with the bundle's beat stack
    (`edge_ecg.runtime.beat_stack`): every caller (stream, offline, evaluate, the ward's
    workers) gets the same classes from the same windows."""

    def __init__(self, inner: Backend, stack, output: str) -> None:
        super().__init__(inner.bundle_dir, inner.manifest, inner.variant, inner.threads)
        self.inner, self.stack, self.output = inner, stack, output
        self.name = inner.name
        self.output_names = inner.output_names

    def __getattr__(self, name: str):
        # what a particular backend carries beyond the base (its session, its compiled model)
        return getattr(self.__dict__["inner"], name)

    def run(self, inputs):
        out = self.inner.run(inputs)
        if self.output in out and "beat_ctx" in inputs and "beat_rr" in inputs:
            out = dict(out)
            out[self.output] = self.stack.fuse(out[self.output], inputs["beat_rr"],
                                               inputs["beat_ctx"])
        return out

    def close(self) -> None:
        self.inner.close()


def open_backend(bundle_dir: str | Path, variant: str | None = None, threads: int = 1,
                 manifest: Manifest | None = None, beat_stack: bool = True) -> Backend:
    """Verify `bundle_dir` (unless a verified `manifest` is given) and open one variant.
    `beat_stack`: fuse the per-beat classes with the bundle's `beat_stack.json` where it has
    one (False: the network's own, e.g. to measure the two side by side)."""
    bundle_dir = Path(bundle_dir)
    if manifest is None:
        manifest = load_bundle(bundle_dir)
    v = manifest.variant(variant)
    cls = BACKEND_CLASSES.get(v.backend)
    if cls is None:
        raise BundleError(f"bundle {bundle_dir}: variant {v.name!r} has unknown backend {v.backend!r}")
    backend = cls(bundle_dir, manifest, v, int(threads))
    missing = [t["output"] for t in manifest.tasks if t["output"] not in backend.output_names]
    if missing:
        raise BundleError(f"bundle {bundle_dir}: variant {v.name!r} lacks the task output(s) "
                          f"{missing} the manifest names; re-export the bundle")
    if beat_stack and "beat_stack.json" in manifest.files:
        from edge_ecg.runtime.beat_stack import load_beat_stack

        stack = load_beat_stack(bundle_dir, manifest)
        if stack is not None and "beat_ctx" in manifest.inputs:
            task = next(t for t in manifest.tasks if t.get("kind") == "beat")
            return BeatStackedBackend(backend, stack, task["output"])
    return backend


__all__ = ["BACKEND_CLASSES", "Backend", "BeatStackedBackend", "OnnxRuntimeBackend",
           "OpenVinoBackend", "open_backend"]
