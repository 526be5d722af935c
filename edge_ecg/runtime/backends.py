"""Inference backends for exported bundles: onnxruntime and OpenVINO, one small interface.

`open_backend(bundle_dir, variant, threads)` verifies the bundle (sha256 of every file, via
`edge_ecg.runtime.bundle.load_bundle`) before anything of it is loaded, then compiles the variant's
model file. OpenVINO's precision hint comes from the variant (`f32` for fp32 variants: OpenVINO
otherwise runs bf16 on CPUs that have it, which breaks fp32 parity; DESIGN.md, measured).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_ecg.errors import BundleError
from edge_ecg.runtime.bundle import Manifest, Variant, load_bundle


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

        c = SignalContract.from_dict(self.manifest.signal)
        shapes = {"x": (1, c.n_leads, c.window_len), "lead_mask": (1, c.n_leads),
                  "beats": (1, c.max_beats, c.n_leads, c.beat_len), "beat_mask": (1, c.max_beats),
                  "rr_ms": (1, c.max_beats), "rr_mask": (1, c.max_beats),
                  "period": (1, len(c.period_features))}
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
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        path = bundle_dir / variant.file
        try:
            self._sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:   # onnxruntime raises its own Fail/InvalidGraph types
            raise BundleError(f"bundle {bundle_dir}: onnxruntime cannot load {variant.file}: "
                              f"{exc}") from exc
        graph_inputs = [i.name for i in self._sess.get_inputs()]
        if sorted(graph_inputs) != sorted(self.input_names):
            raise BundleError(f"bundle {bundle_dir}: {variant.file} takes inputs {graph_inputs} "
                              f"but the manifest lists {self.input_names}")
        self.output_names = [o.name for o in self._sess.get_outputs()]

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
            import openvino as ov
        except ImportError as exc:
            raise BundleError(f"variant {variant.name!r} needs OpenVINO: pip install "
                              "'edge-ecg[device]' (or pick an onnxruntime variant)") from exc
        core = ov.Core()
        # f32 unless the variant asks for a half type: int8 layers stay int8 either way, and
        # the rest (heads) must keep f32 for parity with the reference.
        hint = variant.precision if variant.precision in ("bf16", "f16") else "f32"
        try:
            model = core.read_model(str(bundle_dir / variant.file))
            self._compiled = core.compile_model(model, "CPU", {
                "INFERENCE_NUM_THREADS": int(threads),
                "INFERENCE_PRECISION_HINT": hint,
                "PERFORMANCE_HINT": "LATENCY",
            })
        except Exception as exc:
            raise BundleError(f"bundle {bundle_dir}: OpenVINO cannot compile {variant.file}: "
                              f"{exc}") from exc
        self._request = self._compiled.create_infer_request()
        self._ov_inputs = [p.get_any_name() for p in self._compiled.inputs]
        if sorted(self._ov_inputs) != sorted(self.input_names):
            raise BundleError(f"bundle {bundle_dir}: {variant.file} takes inputs {self._ov_inputs} "
                              f"but the manifest lists {self.input_names}")
        # a tensor can carry several names after OpenVINO's fusions: prefer the manifest's
        wanted = {t["output"] for t in manifest.tasks}
        self.output_names = []
        for port in self._compiled.outputs:
            names = port.get_names()
            hit = sorted(n for n in names if n in wanted or n.startswith("gate_"))
            self.output_names.append(hit[0] if hit else port.get_any_name())

    def run(self, inputs):
        arrays = self._check(inputs)
        res = self._request.infer(dict(zip(self.input_names, arrays)))
        return {name: np.asarray(res[port]) for name, port in
                zip(self.output_names, self._compiled.outputs)}

    def close(self):
        self._request = None
        self._compiled = None


BACKEND_CLASSES = {"onnxruntime": OnnxRuntimeBackend, "openvino": OpenVinoBackend}


def open_backend(bundle_dir: str | Path, variant: str | None = None, threads: int = 1,
                 manifest: Manifest | None = None) -> Backend:
    """Verify `bundle_dir` (unless a verified `manifest` is given) and open one variant."""
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
    return backend
