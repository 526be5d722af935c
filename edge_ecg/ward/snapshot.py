"""A bed's runtime state as bytes and back, without pickle: what lets a bed move between
workers and resume exactly.

`StreamProcessor`'s state is plain data (ring buffers, filter and detector states, the
delineator's beats, counters): `dump` walks it and writes a JSON skeleton plus the raw bytes
of its NumPy arrays; `load` rebuilds it. Untrusted bytes stay data: only classes defined in
`edge_ecg.runtime` and `edge_ecg.signal` are rebuilt (by `object.__new__` and attribute
assignment: no constructor, no `__setstate__`, no import of anything else), arrays only of
bool/int/float dtypes, and anything else in the graph makes `dump` fail loudly rather than
write a state that would restore differently. The backend and its manifest are not state:
they are written as references and re-attached from the worker's own backend on `load`, after
checking that the snapshot was taken with the same bundle.

Equality is proved, not assumed (tests/ward/test_snapshot.py): a processor restored at any
cut point gives exactly the events of the uninterrupted one, and `dump(load(b)) == b`.

Size is the snapshot's cost (a worker dumps, sends and the broker stores every byte, over TLS:
~1 MB a bed every 10 s was the largest part of a worker's own CPU; BENCHMARKS.md, Ward), so
two exact encodings shrink the arrays, both checked at dump time and undone bit for bit:
- rows of zeros at the end of a large array are not written (the patient context's unused
  template slots; a ring buffer that has not wrapped yet);
- the raw ring buffer holds the frames' millivolts, `(count - baseline) / gain` in float32
  (`Chunk.to_mv`): given the bed's gain and baseline (`meta["adc"]`) it is written as int16
  counts, half its bytes, with every sample whose recomputed millivolts differ in even one bit
  (a gap's linear fill, another gain) kept as it was; too many such samples, or counts beyond
  int16, and the array is written as it is.
"""

from __future__ import annotations

import base64
import collections
import importlib
import json
import math
import struct

import numpy as np

from edge_ecg.ward.errors import StateError

MAGIC = b"EWS2"
_MAGICS = (b"EWS1", MAGIC)       # EWS1: the same without the encodings (still read)
_TRIM_MIN_BYTES = 4096           # smaller arrays are written whole: not worth a check
_ADC_MAX_EXCEPTIONS = 1 / 8      # beyond this share of samples not exact as counts: plain
ALLOWED_MODULES = ("edge_ecg.runtime.", "edge_ecg.signal.")
_DTYPE_KINDS = "biuf"
# Not state: scratch and statistics that never change an event, rebuilt fresh on load
# (the reusable input batch's rows are rewritten before use; timers only time).
_FRESH = {
    ("edge_ecg.runtime.stream_processor", "StreamProcessor", "timer"):
        lambda o: _cls("edge_ecg.runtime.stage_timer", "StageTimer")(),
    ("edge_ecg.runtime.predictor", "Predictor", "latency_s"):
        lambda o: _cls("edge_ecg.runtime.recent", "RecentValues")(),
    ("edge_ecg.runtime.predictor", "Predictor", "_batch"):
        lambda o: _cls("edge_ecg.signal.contract", "InputBatch")(o.contract),
}


def _cls(module: str, qualname: str) -> type:
    if not any(module.startswith(p) for p in ALLOWED_MODULES):
        raise StateError(f"class {module}.{qualname} is not runtime state: refused")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not isinstance(obj, type) or obj.__module__ != module:
        raise StateError(f"{module}.{qualname} is not a class of {module}: refused")
    return obj


def _attrs(o) -> dict:
    d = dict(getattr(o, "__dict__", {}))
    for k in type(o).__mro__:
        for s in getattr(k, "__slots__", ()):
            if s not in ("__dict__", "__weakref__") and hasattr(o, s):
                d[s] = getattr(o, s)
    return d


def _zero_tail_rows(a: np.ndarray) -> int:
    """How many leading rows of C-contiguous `a` to keep: the rows after the last one with a
    nonzero bit are zeros (+0.0, never -0.0: compared as bits). A full ring's last row is
    rarely all zeros: that is checked first, so most arrays cost one row's look."""
    if a.ndim == 0 or a.nbytes < _TRIM_MIN_BYTES or a.shape[0] == 0:
        return a.shape[0] if a.ndim else 0
    flat = a.reshape(-1).view(np.dtype(f"u{a.dtype.itemsize}"))
    row = flat.size // a.shape[0]
    if flat[-row:].any():
        return a.shape[0]
    nz = np.flatnonzero(flat)
    return int(nz[-1]) // row + 1 if nz.size else 0


def _adc_encode(x: np.ndarray, gain: np.ndarray, base: np.ndarray):
    """float32 `(rows, leads)` millivolts as int16 counts that `Chunk.to_mv` turns back into
    the same bits, plus the samples that do not (flat index, value): `(parts, n_bad)`, or None
    when the encoding would not pay. The counts are a guess (a value beyond int16 or NaN
    casts to anything); the bit-for-bit comparison is the only judge."""
    est = x * gain                                      # float32, in place from here
    est += base
    np.rint(est, out=est)
    with np.errstate(invalid="ignore"):
        counts = est.astype(np.int16)
    back = counts.astype(np.float32)                    # Chunk.to_mv's very operations
    back -= base
    back /= gain
    bad = np.flatnonzero(back.view(np.uint32) != x.view(np.uint32)).astype(np.int32)
    if bad.size > x.size * _ADC_MAX_EXCEPTIONS:
        return None
    return [counts, bad, x.reshape(-1)[bad]], int(bad.size)


def _adc_decode(raw: memoryview, shape: tuple, dt: np.dtype, n: dict):
    try:
        gain = np.asarray(n["g"], dtype=np.float64).astype(np.float32)
        base = np.asarray(n["b"], dtype=np.float64).astype(np.float32)
        n_bad = int(n["n_bad"])
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"malformed ADC array node: {exc!r}") from None
    size = math.prod(shape)
    if (dt != np.float32 or len(shape) != 2 or gain.shape != (shape[1],)
            or base.shape != gain.shape or not np.all(np.isfinite(gain)) or np.any(gain == 0)
            or not np.all(np.isfinite(base)) or not 0 <= n_bad <= size
            or len(raw) != 2 * size + 8 * n_bad):
        raise StateError(f"ADC array of shape {shape} {dt} does not match its node or its "
                         f"{len(raw)} bytes")
    counts = np.frombuffer(raw, np.int16, size).reshape(shape)
    x = (counts.astype(np.float32) - base) / gain
    bad = np.frombuffer(raw, np.int32, n_bad, 2 * size)
    if n_bad and (bad.min() < 0 or bad.max() >= size):
        raise StateError("ADC array's exceptions point outside it")
    x.reshape(-1)[bad] = np.frombuffer(raw, np.float32, n_bad, 2 * size + 4 * n_bad)
    return x


def _bytes_view(a: np.ndarray) -> np.ndarray:
    """A C-contiguous array's bytes without a copy (memoryview.cast took ~50 us an array)."""
    return a.reshape(-1).view(np.uint8)


class _Writer:
    def __init__(self, externals: dict[int, str], adc: tuple[int, np.ndarray, np.ndarray]
                 | None = None) -> None:
        self.externals = externals
        self.adc = adc            # (id of the raw ring's array, gain, baseline) or None
        self.blobs: list = []     # bytes-like parts, joined once at the end
        self.memo: dict[int, int] = {}
        self.keep: list = []          # objects memoised by id stay alive until the dump ends

    def node(self, o, path: str):
        t = type(o)
        if o is None or t is bool or t is str or t is int:
            return o
        if t is float:
            return o if math.isfinite(o) else {"F": repr(o)}
        if t is bytes:
            return {"B": base64.b64encode(o).decode("ascii")}
        ref = self.externals.get(id(o))
        if ref is not None:
            return {"X": ref}
        if id(o) in self.memo:
            return {"R": self.memo[id(o)]}
        if isinstance(o, np.generic):
            if o.dtype.kind not in _DTYPE_KINDS:
                raise StateError(f"{path}: NumPy scalar of dtype {o.dtype} is not state")
            v = o.item()
            return {"N": o.dtype.str, "v": v if not isinstance(v, float) or math.isfinite(v)
                    else repr(v)}
        k = len(self.memo)
        self.memo[id(o)] = k
        self.keep.append(o)
        if t is np.ndarray:
            if o.dtype.kind not in _DTYPE_KINDS or o.dtype.hasobject:
                raise StateError(f"{path}: array of dtype {o.dtype} is not state")
            if o.base is not None and isinstance(o.base, np.ndarray) and id(o.base) in self.memo:
                raise StateError(f"{path}: a view of another array in the state (aliasing "
                                 "would be lost)")
            return self.array(o, k)
        if t is list:
            return {"L": [self.node(v, f"{path}[{i}]") for i, v in enumerate(o)], "id": k}
        if t is tuple:
            return {"T": [self.node(v, f"{path}[{i}]") for i, v in enumerate(o)], "id": k}
        if t is set or t is frozenset:
            items = sorted(o, key=repr)
            return {"S" if t is set else "FS": [self.node(v, path + "{}") for v in items],
                    "id": k}
        if t is dict:
            return {"D": [[self.node(a, path + ".key"), self.node(b, f"{path}[{a!r}]")]
                          for a, b in o.items()], "id": k}
        if t is collections.deque:
            return {"Q": [self.node(v, f"{path}[{i}]") for i, v in enumerate(o)],
                    "m": o.maxlen, "id": k}
        return self.obj(o, t, path, k)

    def array(self, o: np.ndarray, k: int) -> dict:
        a = np.ascontiguousarray(o)
        node = {"dt": o.dtype.str, "sh": list(o.shape), "id": k}
        rows = _zero_tail_rows(a)
        if a.ndim and rows < a.shape[0]:
            node["rows"] = rows
            a = a[:rows]
        if self.adc is not None and id(o) == self.adc[0] and a.size:
            enc = _adc_encode(a, self.adc[1], self.adc[2])
            if enc is not None:
                parts, n_bad = enc
                node["adc"] = {"g": self.adc[1].tolist(), "b": self.adc[2].tolist(),
                               "n_bad": n_bad}
                node["A"] = len(self.blobs)
                self.blobs.append(b"".join(_bytes_view(p) for p in parts))
                return node
        node["A"] = len(self.blobs)
        self.blobs.append(_bytes_view(a))
        return node

    def obj(self, o, t, path: str, k: int) -> dict:
        mod, qn = t.__module__, t.__qualname__
        if not any(mod.startswith(p) for p in ALLOWED_MODULES) or "<locals>" in qn:
            raise StateError(f"{path}: {mod}.{qn} is not plain runtime state; the worker "
                             "replays this bed from its stream start instead")
        out = {}
        for a, v in _attrs(o).items():
            if (mod, qn, a) in _FRESH:
                continue
            out[a] = self.node(v, f"{path}.{a}")
        return {"O": f"{mod}:{qn}", "d": out, "id": k}


class _Reader:
    def __init__(self, blobs: list[memoryview], externals: dict[str, object]) -> None:
        self.blobs = blobs
        self.externals = externals
        self.memo: dict[int, object] = {}

    def node(self, n):
        if n is None or type(n) in (bool, int, str, float):
            return n
        if type(n) is list:
            raise StateError("malformed snapshot: a bare list node")
        if "F" in n:
            return float(n["F"])
        if "B" in n:
            return base64.b64decode(n["B"], validate=True)
        if "X" in n:
            if n["X"] not in self.externals:
                raise StateError(f"snapshot refers to {n['X']!r}, which this worker lacks")
            return self.externals[n["X"]]
        if "R" in n:
            return self.memo[int(n["R"])]
        if "N" in n:
            dt = np.dtype(n["N"])
            if dt.kind not in _DTYPE_KINDS:
                raise StateError(f"scalar dtype {dt} refused")
            v = n["v"]
            return dt.type(float(v) if isinstance(v, str) else v)
        k = int(n["id"])
        if "A" in n:
            dt = np.dtype(n["dt"])
            if dt.kind not in _DTYPE_KINDS or dt.hasobject:
                raise StateError(f"array dtype {dt} refused")
            shape = tuple(int(s) for s in n["sh"])
            if any(s < 0 for s in shape):
                raise StateError(f"array shape {shape} refused")
            rows = int(n.get("rows", shape[0] if shape else 0))
            if not shape and "rows" in n or shape and not 0 <= rows <= shape[0]:
                raise StateError(f"array of shape {shape} cannot keep {rows} rows")
            kept = (rows, *shape[1:]) if shape else ()
            raw = self.blobs[int(n["A"])]
            if "adc" in n:
                body = _adc_decode(raw, kept, dt, n["adc"])
            elif len(raw) != dt.itemsize * math.prod(kept):
                raise StateError(f"array of shape {kept} {dt} does not match its "
                                 f"{len(raw)} bytes")
            else:
                body = np.frombuffer(raw, dtype=dt).reshape(kept)
            if kept == shape:
                a = body.copy() if "adc" not in n else body
            else:
                a = np.zeros(shape, dtype=dt)
                a[:rows] = body
            self.memo[k] = a
            return a
        if "L" in n:
            out = self.memo[k] = []
            out.extend(self.node(v) for v in n["L"])
            return out
        if "T" in n:
            out = self.memo[k] = tuple(self.node(v) for v in n["T"])
            return out
        if "S" in n or "FS" in n:
            items = [self.node(v) for v in n.get("S", n.get("FS"))]
            out = self.memo[k] = set(items) if "S" in n else frozenset(items)
            return out
        if "D" in n:
            out = self.memo[k] = {}
            for a, b in n["D"]:
                out[self.node(a)] = self.node(b)
            return out
        if "Q" in n:
            out = self.memo[k] = collections.deque(maxlen=n["m"])
            out.extend(self.node(v) for v in n["Q"])
            return out
        if "O" in n:
            mod, _, qn = str(n["O"]).partition(":")
            cls = _cls(mod, qn)
            o = object.__new__(cls)
            self.memo[k] = o
            for a, v in n["d"].items():
                object.__setattr__(o, a, self.node(v))
            for (m2, q2, a), make in _FRESH.items():
                if (m2, q2) == (mod, qn):
                    object.__setattr__(o, a, make(o))
            return o
        raise StateError(f"malformed snapshot node with keys {sorted(n)[:4]}")


def bundle_key(backend) -> str:
    """What a snapshot must be restored with: model version and variant of the bundle."""
    m = backend.manifest
    return f"{m.model_version}/{backend.variant.name}"


def _adc_hint(processor, meta: dict) -> tuple[int, np.ndarray, np.ndarray] | None:
    """The raw ring's array and the bed's gain and baseline from `meta["adc"]`
    (`{"gain": [...], "baseline": [...]}`, one per lead), when they fit it."""
    hint = meta.get("adc")
    data = getattr(getattr(processor, "raw", None), "_data", None)
    if not isinstance(hint, dict) or type(data) is not np.ndarray or data.dtype != np.float32 \
            or data.ndim != 2:
        return None
    gain = np.asarray(hint.get("gain", ()), dtype=np.float64).astype(np.float32)
    base = np.asarray(hint.get("baseline", ()), dtype=np.float64).astype(np.float32)
    if gain.shape != (data.shape[1],) or base.shape != gain.shape \
            or not np.all(np.isfinite(gain)) or np.any(gain == 0) or not np.all(np.isfinite(base)):
        return None
    return id(data), gain, base


def dump(processor, meta: dict | None = None) -> bytes:
    """`processor`'s state (and `meta`, plain JSON) as bytes. `meta["adc"]`, the bed's
    `{"gain": [...], "baseline": [...]}` per lead, lets the raw ring go as counts (exact)."""
    backend = processor.backend
    inner = getattr(backend, "inner", backend)
    externals = {id(backend): "backend", id(backend.manifest): "manifest"}
    if inner is not backend:
        externals[id(inner)] = "backend"
    meta = meta or {}
    w = _Writer(externals, _adc_hint(processor, meta))
    tree = w.node(processor, "processor")
    head = json.dumps({"bundle": bundle_key(backend), "meta": meta, "state": tree,
                       "blobs": [len(b) for b in w.blobs]}, separators=(",", ":"),
                      allow_nan=False).encode()
    # one join: the arrays are copied once, into the snapshot itself
    return b"".join([MAGIC, struct.pack("<Q", len(head)), head, *w.blobs])


def read_meta(data: bytes) -> dict:
    """The `meta` and bundle key of a snapshot without rebuilding its state."""
    head, _ = _split(data)
    return {"bundle": head.get("bundle"), **head.get("meta", {})}


def _split(data) -> tuple[dict, list[memoryview]]:
    mv = memoryview(bytes(data))
    if len(mv) < 12 or bytes(mv[:4]) not in _MAGICS:
        raise StateError("not a ward state snapshot (bad magic)")
    (n,) = struct.unpack_from("<Q", mv, 4)
    if 12 + n > len(mv):
        raise StateError("snapshot truncated in its header")
    try:
        head = json.loads(bytes(mv[12:12 + n]))
    except ValueError as exc:
        raise StateError(f"snapshot header is not JSON: {exc}") from None
    blobs, off = [], 12 + n
    for size in head.get("blobs", []):
        if off + int(size) > len(mv):
            raise StateError("snapshot truncated in its arrays")
        blobs.append(mv[off:off + int(size)])
        off += int(size)
    if off != len(mv):
        raise StateError(f"snapshot has {len(mv) - off} trailing bytes")
    return head, blobs


def load(data: bytes, backend) -> tuple[object, dict]:
    """`(processor, meta)` rebuilt from `dump`'s bytes, attached to `backend`. Refuses a
    snapshot taken with another bundle (`StateError`)."""
    head, blobs = _split(data)
    if head.get("bundle") != bundle_key(backend):
        raise StateError(f"snapshot was taken with bundle {head.get('bundle')!r}, this worker "
                         f"runs {bundle_key(backend)!r}")
    r = _Reader(blobs, {"backend": backend, "manifest": backend.manifest})
    try:
        proc = r.node(head["state"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StateError(f"malformed snapshot: {exc!r}") from None
    if type(proc).__name__ != "StreamProcessor":
        raise StateError(f"snapshot holds a {type(proc).__name__}, not a StreamProcessor")
    return proc, head.get("meta", {})
