"""`BeatStack`: the per-beat classes of the network fused with gradient-boosted trees on the
patient context, applied with numpy.

On patients never seen, a transparent classifier on the beat's RR and its patient context
(`beat_rr` + `beat_ctx`: prematurity, compensatory pause, QRS correlation, width and
amplitude against the patient's dominant beat) calls fewer false V than the network, which
also reads the beat's raw morphology and learns the training patients' shapes with it
(bench/beats_classes.py measures both side by side). The stack keeps both: the final class
probabilities are the normalised weighted geometric mean

    p  proportional to  p_network ** (1 - w)  *  p_trees ** w          (kind "gbt")

or, stacked (kind "gbt-stacked"), the trees' own probabilities where the trees read the
network's log-probabilities beside the context: they learn from out-of-fold networks on
which beats, by their RR and context, the network is to be trusted, instead of one share for
all. Which form and which `w` is chosen where neither the network nor the trees saw the
patients (never on a test fold; see `edge_ecg.model.beat_stacking`, which fits it). A slot
whose context is unknown (`known` = 0) keeps the network's probabilities.

The stack is data, not code: `beat_stack.json` in the bundle, hashed in the manifest like every
other file, so the bundle's signature covers it. Untrusted input all the same: its trees are
read and bounded by edge_ecg.runtime.trees, its other fields checked here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_ecg.errors import BundleError
from edge_ecg.runtime.bundle import read_bundle_json
from edge_ecg.runtime.patient_adaptation import AdaptationConfig
from edge_ecg.runtime.run_continuation import ContinuationConfig
from edge_ecg.runtime.svt_episode import SvtConfig
from edge_ecg.runtime.trees import TreeEnsemble, parse_trees, tree_classes
from edge_ecg.signal.contract import BEAT_RR_COLUMNS
from edge_ecg.signal.patient_context import CONTEXT_COLUMNS

FORMAT = "edge-ecg-beat-stack"
FORMAT_VERSION = 1
BEAT_STACK = "beat_stack.json"
KIND = "gbt"                  # the weighted geometric mean of the network and the trees
KIND_STACKED = "gbt-stacked"  # the trees, reading the network's log-probabilities too
KINDS = (KIND, KIND_STACKED)
# The features, computed from the model's own inputs (`beat_rr`, `beat_ctx`) per beat slot:
# the RR before and after the beat and the window's mean RR, their ratios, and the patient
# context (its `known` column decides whether the stack applies at all).
FEATURES: tuple[str, ...] = (*BEAT_RR_COLUMNS, "pre_mean", "post_mean",
                             *(c for c in CONTEXT_COLUMNS if c != "known"))
P_FLOOR = 1e-4             # a class the trees never saw keeps a small probability, not zero
_MAX_CLASSES = 64
_MAX_BYTES = 16 << 20


def stacked_features(classes) -> tuple[str, ...]:
    """The features of a "gbt-stacked" stack: `FEATURES`, then the network's log-probability
    of each class (floored at `P_FLOOR`)."""
    return (*FEATURES, *(f"log_p_{c}" for c in classes))


def stack_features(beat_rr: np.ndarray, beat_ctx: np.ndarray) -> np.ndarray:
    """`(..., len(FEATURES))` from `beat_rr` `(..., 3)` and `beat_ctx` `(..., N_CONTEXT)`."""
    rr = np.asarray(beat_rr, dtype=np.float64)
    ctx = np.asarray(beat_ctx, dtype=np.float64)
    pre, post, mean = rr[..., 0], rr[..., 1], rr[..., 2]
    ok = mean > 0
    safe = np.where(ok, mean, 1.0)
    ratios = np.stack([np.where(ok & (pre > 0), pre / safe, 0.0),
                       np.where(ok & (post > 0), post / safe, 0.0)], axis=-1)
    return np.concatenate([rr, ratios, ctx[..., 1:]], axis=-1)


@dataclass(frozen=True)
class BeatStack:
    task: str                      # the bundle's per-beat task ("beat")
    classes: tuple[str, ...]       # the task's labels, in its output order
    tree_classes: tuple[int, ...]  # the task class of each column the trees give
    features: tuple[str, ...]
    trees: TreeEnsemble
    weight: float                  # w: the trees' share in the geometric mean
    info: dict                     # how and on what it was fitted, its validation figures
    kind: str = KIND               # KIND (geometric mean) or KIND_STACKED
    # the patient's own beats veto V calls after a learning period (patient_adaptation.py);
    # None: a stack fitted before it, or fitted with --no-patient-adaptation
    adaptation: AdaptationConfig | None = None
    # a run of V calls goes on while its beats stay wide and unlike the dominant beat
    # (run_continuation.py); None: off
    continuation: ContinuationConfig | None = None
    # a supraventricular tachycardia that starts abruptly is called S while it lasts
    # (svt_episode.py); None: off
    svt: SvtConfig | None = None

    def tree_proba(self, x: np.ndarray) -> np.ndarray:
        """The trees' probabilities over the task's classes `(n, len(classes))`."""
        p = np.full((x.shape[0], len(self.classes)), 0.0)
        p[:, list(self.tree_classes)] = self.trees.predict_proba(x)
        return p

    def fuse(self, probs: np.ndarray, beat_rr: np.ndarray, beat_ctx: np.ndarray
             ) -> np.ndarray:
        """The fused per-slot probabilities `(B, M, K)` from the network's `probs` `(B, M, K)`
        and the same windows' `beat_rr` `(B, M, 3)` and `beat_ctx` `(B, M, N_CONTEXT)`."""
        p = np.asarray(probs)
        out = np.array(p, dtype=np.float32, copy=True)
        known = np.asarray(beat_ctx)[..., 0] > 0
        if self.weight <= 0.0 or not known.any():
            return out
        # features of the known slots only (row by row: the same numbers as all, then picked)
        out[known] = self.fuse_features(p[known], stack_features(np.asarray(beat_rr)[known],
                                                                 np.asarray(beat_ctx)[known]))
        return out

    def fuse_features(self, probs: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The fused probabilities `(n, K)` of beats with the network's `probs` `(n, K)` and
        stack features `x` `(n, len(FEATURES))` (`stack_features`)."""
        x = np.where(np.isfinite(x), x, 0.0)
        pn = np.maximum(np.asarray(probs, dtype=np.float64), P_FLOOR)
        if self.kind == KIND_STACKED:
            pt = np.maximum(self.tree_proba(np.concatenate([x, np.log(pn)], axis=1)), P_FLOOR)
            return (pt / pt.sum(axis=1, keepdims=True)).astype(np.float32)
        pt = np.maximum(self.tree_proba(x), P_FLOOR)
        w = self.weight
        z = (1.0 - w) * np.log(pn) + w * np.log(pt)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": self.kind,
                "task": self.task, "classes": list(self.classes),
                "tree_classes": list(self.tree_classes), "features": list(self.features),
                "weight": self.weight, **self.trees.to_fields(), "info": self.info,
                **({"patient_adaptation": self.adaptation.to_dict()}
                   if self.adaptation is not None else {}),
                **({"run_continuation": self.continuation.to_dict()}
                   if self.continuation is not None else {}),
                **({"svt_episode": self.svt.to_dict()} if self.svt is not None else {})}

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), separators=(",", ":")))


def parse_beat_stack(doc, where: str) -> BeatStack:
    """A `BeatStack` from a parsed JSON document, every field checked."""
    if not isinstance(doc, dict):
        raise BundleError(f"{where}: must hold a JSON object")
    if doc.get("format") != FORMAT or doc.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{where}: not an {FORMAT} v{FORMAT_VERSION} file; refit it with "
                          "`edge-ecg stack --beats`")
    kind = doc.get("kind")
    if kind not in KINDS:
        raise BundleError(f"{where}: kind {kind!r} is not one of {list(KINDS)}")
    task, classes, feats = doc.get("task"), doc.get("classes"), doc.get("features")
    if not isinstance(task, str):
        raise BundleError(f"{where}: 'task' must be a string")
    if not (isinstance(classes, list) and 2 <= len(classes) <= _MAX_CLASSES
            and all(isinstance(s, str) for s in classes) and len(set(classes)) == len(classes)):
        raise BundleError(f"{where}: 'classes' must be 2..{_MAX_CLASSES} distinct names")
    want = list(FEATURES) if kind == KIND else list(stacked_features(classes))
    if feats != want:
        raise BundleError(f"{where}: fitted on features {feats}, but this edge-ecg computes "
                          f"{want}; refit it with `edge-ecg stack --beats`")
    tc = tree_classes(doc, len(classes), where)
    w = doc.get("weight")
    if not (isinstance(w, (int, float)) and not isinstance(w, bool) and 0.0 <= w <= 1.0):
        raise BundleError(f"{where}: 'weight' must be a number in [0, 1]")
    k = 1 if tc.size == 2 else tc.size
    if kind == KIND_STACKED and w != 1.0:
        raise BundleError(f"{where}: a {KIND_STACKED!r} stack's 'weight' must be 1 (its trees "
                          "read the network themselves)")
    trees = parse_trees(doc, len(want), k, where)
    info = doc.get("info", {})
    adapt = doc.get("patient_adaptation")
    if adapt is not None:
        if "N" not in classes or "V" not in classes:
            raise BundleError(f"{where}: patient_adaptation needs the classes N and V")
        adapt = AdaptationConfig.parse(adapt, where)
    cont = doc.get("run_continuation")
    if cont is not None:
        if "V" not in classes:
            raise BundleError(f"{where}: run_continuation needs the class V")
        cont = ContinuationConfig.parse(cont, where)
    svt = doc.get("svt_episode")
    if svt is not None:
        if "N" not in classes or "S" not in classes:
            raise BundleError(f"{where}: svt_episode needs the classes N and S")
        svt = SvtConfig.parse(svt, where)
    return BeatStack(task=task, classes=tuple(classes), tree_classes=tuple(tc.tolist()),
                     features=tuple(want), trees=trees, weight=float(w),
                     info=info if isinstance(info, dict) else {}, kind=kind,
                     adaptation=adapt, continuation=cont, svt=svt)


def load_beat_stack(bundle: str | Path, manifest) -> BeatStack | None:
    """The bundle's `beat_stack.json`, or None where the manifest lists none. Its bytes are
    read once and must hash to the manifest's sha256, and its task and classes must be the
    manifest's per-beat task's."""
    got = read_bundle_json(bundle, manifest, BEAT_STACK, _MAX_BYTES, "edge-ecg stack --beats")
    if got is None:
        return None
    doc, where = got
    stack = parse_beat_stack(doc, where)
    task = next((t for t in manifest.tasks if t.get("kind") == "beat"), None)
    if task is None or task.get("name") != stack.task or \
            tuple(task.get("labels", ())) != stack.classes:
        raise BundleError(f"{where}: fitted for task {stack.task!r} with classes "
                          f"{list(stack.classes)}, which is not this bundle's per-beat task; "
                          "refit it with `edge-ecg stack --beats`")
    return stack


__all__ = ["BEAT_STACK", "FEATURES", "KINDS", "BeatStack", "TreeEnsemble", "load_beat_stack",
           "parse_beat_stack", "stack_features", "stacked_features"]
