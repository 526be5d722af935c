"""The bundle manifest: what an exported bundle holds, and the check the runtime trusts.

It lives on the runtime's side of the line (torch-free, stdlib only): the export stage writes
bundles with `write_manifest`, the runtime and the profiler read them with `load_bundle`, and
neither side imports the other for it.

A bundle is a directory with model files and `manifest.json`. The manifest records the format
version, the sha256 of every file, the signal contract, the tasks with their output names,
units and class labels, the routed experts, quantization, parity and metrics at export.
`load_bundle` refuses a bundle whose manifest or files do not match, naming what is wrong, and
one whose manifest is not signed by a key the deployment trusts (`edge_ecg.runtime.signing`:
Ed25519 over the manifest's exact bytes, so the signature covers every file it hashes).

The structure check is ~50 hand-written lines, not a pydantic or jsonschema model: every device
process runs it at start, and measured (Python 3.11) pydantic adds 8.3 MB to a 70.4-MB runtime
process and ~60 ms to its start, jsonschema's import 6.3 MB and ~60 ms (profiles/profile.py).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edge_ecg.errors import BundleError
from edge_ecg.runtime.signing import (
    SIGNATURE,
    SignatureCheck,
    TrustPolicy,
    UnsignedBundleWarning,
    check_signature,
    write_signature,
)

FORMAT = "edge-ecg-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
REQUIRED = ("format", "format_version", "model_version", "files", "signal", "tasks",
            "inputs", "variants", "default_variant")
BACKENDS = ("onnxruntime", "openvino")
# The bundle of the bundled model, shipped as package data: what `edge-ecg stream`, `demo`,
# `profile` and the ward's workers run when no bundle is named.
DEFAULT_BUNDLE = Path(__file__).resolve().parents[1] / "assets" / "default_bundle"


@dataclass(frozen=True)
class Variant:
    """One runnable model file of the bundle."""

    name: str            # e.g. "onnx-int8-routed"
    file: str            # path relative to the bundle ("model.onnx", "openvino/model.xml")
    backend: str         # onnxruntime | openvino
    precision: str       # fp32 | int8
    routed: bool         # True when only the selected experts are in the graph
    extra_files: tuple[str, ...] = ()   # e.g. the OpenVINO .bin beside the .xml


@dataclass(frozen=True)
class Manifest:
    model_version: str
    files: dict[str, dict]          # relpath -> {"sha256": hex, "bytes": int}
    signal: dict                    # SignalContract.to_dict()
    tasks: list[dict]               # TaskSpec.to_dict() + {"output": graph output name}
    inputs: list[str]               # graph input names, in order
    variants: dict[str, dict]       # name -> Variant fields
    default_variant: str
    routing: dict = field(default_factory=dict)       # per path: kept and total experts
    quantization: dict = field(default_factory=dict)
    parity: dict = field(default_factory=dict)        # per variant
    metrics: dict = field(default_factory=dict)       # per variant: {task: {metric: value}}
    training_data: str = "synthetic"
    notes: str = ""
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def variant(self, name: str | None = None) -> Variant:
        name = name or self.default_variant
        if name not in self.variants:
            raise BundleError(
                f"bundle has no variant {name!r}; it has: {', '.join(sorted(self.variants))}"
            )
        v = dict(self.variants[name])
        v["extra_files"] = tuple(v.get("extra_files", ()))
        return Variant(**v)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _inside(bundle: Path, rel: str) -> Path:
    """Resolve `rel` under `bundle`, refusing absolute paths, `..` and symlink escapes."""
    p = (bundle / rel).resolve()
    root = bundle.resolve()
    if Path(rel).is_absolute() or (p != root and root not in p.parents):
        raise BundleError(f"bundle {bundle}: file path {rel!r} escapes the bundle directory")
    return p


def write_manifest(bundle: str | Path, manifest_fields: dict) -> Manifest:
    """Hash every file now in `bundle` (but the manifest and its signature) and write
    `manifest.json`. The bundle is then unsigned: a signature of an earlier manifest is removed
    (it cannot cover this one); sign it with `sign_bundle`."""
    bundle = Path(bundle)
    (bundle / SIGNATURE).unlink(missing_ok=True)
    files = {}
    for p in sorted(bundle.rglob("*")):
        if p.is_file() and p.relative_to(bundle).as_posix() not in (MANIFEST, SIGNATURE):
            rel = p.relative_to(bundle).as_posix()
            files[rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    m = Manifest(files=files, **manifest_fields)
    _check_structure(m.__dict__, bundle)
    (bundle / MANIFEST).write_text(m.to_json())
    return m


# Top-level fields and the JSON type each must have (a manifest is untrusted input).
_FIELD_TYPES = {
    "format": str, "format_version": int, "model_version": str, "files": dict, "signal": dict,
    "tasks": list, "inputs": list, "variants": dict, "default_variant": str, "routing": dict,
    "quantization": dict, "parity": dict, "metrics": dict, "training_data": str, "notes": str,
}
_VARIANT_KEYS = {f for f in Variant.__dataclass_fields__ if f != "name"} | {"name"}


def checked_setting(doc, name: str, default, ranges: dict, where: str) -> dict:
    """The fields of a setting object in a bundle file (`name`: its key, e.g.
    "patient_adaptation"), each a finite number in its range: `ranges` maps a field to
    `(lo, hi, whole)`; a missing field takes `default`'s attribute. A bundle is untrusted
    data: anything else is refused with the field named."""
    import math

    if not isinstance(doc, dict):
        raise BundleError(f"{where}: '{name}' must be an object")
    unknown = sorted(set(doc) - set(ranges))
    if unknown:
        raise BundleError(f"{where}: unknown {name} field(s) {unknown}")
    out = {}
    for k, (lo, hi, whole) in ranges.items():
        v = doc.get(k, getattr(default, k))
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or not lo <= v <= hi or (whole and v != int(v)):
            raise BundleError(f"{where}: {name} {k} = {v!r} must be a "
                              f"{'whole ' if whole else ''}number in {lo:g}..{hi:g}")
        out[k] = int(v) if whole else float(v)
    return out


def _expect(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise BundleError(f"{where}: {msg}; re-export the bundle with `edge-ecg export`")


def _check_structure(doc: dict, bundle: Path) -> None:
    """Check every field's presence and JSON type before anything is used."""
    where = f"bundle {bundle}: {MANIFEST}"
    missing = [k for k in REQUIRED if k not in doc]
    _expect(not missing, where, f"lacks the field(s) {missing}")
    for key, typ in _FIELD_TYPES.items():
        if key in doc:
            ok = isinstance(doc[key], typ) and not (typ is int and isinstance(doc[key], bool))
            _expect(ok, where, f"field {key!r} must be a JSON {typ.__name__}, "
                               f"got {type(doc[key]).__name__}")
    _expect(doc["format"] == FORMAT, where, f"format is {doc['format']!r}, not {FORMAT!r}")
    if doc["format_version"] != FORMAT_VERSION:
        raise BundleError(
            f"{where}: format version {doc['format_version']} but this edge-ecg reads "
            f"version {FORMAT_VERSION}; re-export with a matching edge-ecg"
        )
    _expect(bool(doc["files"]), where, "'files' must list the bundle's files with their sha256")
    for rel, meta in doc["files"].items():
        _expect(isinstance(meta, dict) and isinstance(meta.get("sha256"), str)
                and isinstance(meta.get("bytes"), int) and "\0" not in rel,
                where, f"file entry {rel!r} must be {{'sha256': hex, 'bytes': int}}")
    _expect(bool(doc["tasks"]), where, "'tasks' is empty; a bundle must predict at least one task")
    for t in doc["tasks"]:
        _expect(isinstance(t, dict), where, f"each task must be an object, got {t!r}")
        for key in ("name", "kind", "output"):
            _expect(isinstance(t.get(key), str), where, f"a task lacks a string {key!r}: {t}")
    _expect(all(isinstance(n, str) for n in doc["inputs"]), where, "'inputs' must be names")
    _expect(doc["default_variant"] in doc["variants"], where,
            f"default variant {doc['default_variant']!r} is not listed")
    for name, v in doc["variants"].items():
        _expect(isinstance(v, dict), where, f"variant {name!r} must be an object")
        unknown = set(v) - _VARIANT_KEYS
        _expect(not unknown, where, f"variant {name!r} has unknown key(s) {sorted(unknown)}")
        for key, typ in (("file", str), ("backend", str), ("precision", str), ("routed", bool)):
            _expect(isinstance(v.get(key), typ), where,
                    f"variant {name!r} lacks {key!r} (a JSON {typ.__name__})")
        _expect(v["backend"] in BACKENDS, where,
                f"variant {name!r} has unknown backend {v['backend']!r}")
        extra = v.get("extra_files", [])
        _expect(isinstance(extra, list) and all(isinstance(e, str) for e in extra), where,
                f"variant {name!r}: 'extra_files' must be a list of paths")
        for rel in (v["file"], *extra):
            _expect(rel in doc["files"], where,
                    f"variant {name!r} file {rel!r} is not in 'files'")


def read_bundle_json(bundle: str | Path, manifest: Manifest, name: str, max_bytes: int,
                     refit: str) -> tuple[object, str] | None:
    """A JSON file of the bundle that the manifest lists (a stack), as `(document, where)`, or
    None where it lists none. The bytes are read once, at most `max_bytes`, and must hash to the
    manifest's sha256: a file changed after the bundle was verified is refused, not applied.
    `refit`: the command that makes the file again, named in the errors."""
    meta = manifest.files.get(name)
    if meta is None:
        return None
    where = f"bundle {bundle}: {name}"
    try:
        with open(Path(bundle) / name, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise BundleError(f"{where}: cannot read it ({exc.strerror or exc})") from None
    if len(raw) > max_bytes:
        raise BundleError(f"{where}: larger than {max_bytes} bytes; not a file {refit} writes")
    if hashlib.sha256(raw).hexdigest() != meta.get("sha256"):
        raise BundleError(f"{where}: sha256 does not match the manifest (changed after the "
                          f"bundle was signed); refit with `{refit}` and re-sign")
    try:
        return json.loads(raw), where
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BundleError(f"{where}: not valid JSON ({exc})") from None


def check_integrity(bundle: str | Path, verify_hashes: bool = True) -> tuple[Manifest, bytes]:
    """Structure, every file present, sizes and sha256 match; no signature check.

    Returns the manifest and the exact bytes it was parsed from (what a signature covers).
    Raises `BundleError` naming the first problem. Use `load_bundle` to run a bundle.
    """
    bundle = Path(bundle)
    mpath = bundle / MANIFEST
    if not bundle.is_dir():
        raise BundleError(f"bundle {bundle} is not a directory; pass the folder `edge-ecg export` wrote")
    if not mpath.is_file():
        raise BundleError(f"bundle {bundle} has no {MANIFEST}; it is incomplete or not a bundle")
    _inside(bundle, MANIFEST)  # a manifest symlinked from elsewhere is not this bundle's
    # read once: the bytes parsed here are the bytes the signature is checked against
    raw = mpath.read_bytes()
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"bundle {bundle}: {MANIFEST} is not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise BundleError(f"bundle {bundle}: {MANIFEST} is nested too deeply to be a manifest") \
            from exc
    if not isinstance(doc, dict):
        raise BundleError(f"bundle {bundle}: {MANIFEST} must hold a JSON object")
    _check_structure(doc, bundle)
    for rel, meta in doc["files"].items():
        p = _inside(bundle, rel)
        if not p.is_file():
            raise BundleError(f"bundle {bundle}: file {rel} listed in the manifest is missing")
        size = p.stat().st_size
        if size != meta.get("bytes"):
            raise BundleError(
                f"bundle {bundle}: file {rel} is {size} bytes, the manifest says "
                f"{meta.get('bytes')} (truncated or replaced)"
            )
        if verify_hashes and sha256_file(p) != meta.get("sha256"):
            raise BundleError(
                f"bundle {bundle}: sha256 of {rel} does not match the manifest (tampered or "
                "corrupted); re-export or re-copy the bundle"
            )
    known = set(Manifest.__dataclass_fields__)
    extra = set(doc) - known
    if extra:
        raise BundleError(f"bundle {bundle}: {MANIFEST} has unknown fields {sorted(extra)}")
    return Manifest(**doc), raw


def verify_bundle(bundle: str | Path, verify_hashes: bool = True,
                  trust: TrustPolicy | None = None) -> tuple[Manifest, SignatureCheck]:
    """`check_integrity`, then the manifest's signature against `trust` (default:
    `TrustPolicy.resolve()`: EDGE_ECG_TRUSTED_KEYS or the shipped key, unsigned refused).

    A bundle accepted without a trusted signature (the policy allows it) raises an
    `UnsignedBundleWarning`, shown on stderr once per process by Python's default filters.
    """
    manifest, raw = check_integrity(bundle, verify_hashes)
    check = check_signature(bundle, raw, trust if trust is not None else TrustPolicy.resolve())
    if not check.trusted:
        warnings.warn(UnsignedBundleWarning(f"bundle {bundle}: {check.describe()}"),
                      stacklevel=2)
    return manifest, check


def load_bundle(bundle: str | Path, verify_hashes: bool = True,
                trust: TrustPolicy | None = None) -> Manifest:
    """Read and verify a bundle: structure, every file present, sizes and sha256 match, and
    the manifest signed by a trusted key (`verify_bundle`).

    Raises `BundleError` naming the first problem; nothing of a refused bundle is used.
    """
    return verify_bundle(bundle, verify_hashes, trust)[0]


def sign_bundle(bundle: str | Path, key_path: str | Path,
                signer: str | None = None) -> SignatureCheck:
    """Check the bundle's integrity, sign its manifest with `key_path` (`manifest.sig`), and
    verify the result with that key. A tampered bundle is refused, never blessed; an existing
    signature is replaced."""
    from edge_ecg.runtime.signing import public_key_of

    _, raw = check_integrity(bundle)
    write_signature(bundle, raw, key_path, signer)
    pinned = TrustPolicy((public_key_of(key_path, signer),),
                         source=f"the signing key {key_path}")
    return verify_bundle(bundle, trust=pinned)[1]


__all__ = ["BACKENDS", "DEFAULT_BUNDLE", "FORMAT", "FORMAT_VERSION", "MANIFEST", "REQUIRED",
           "Manifest", "Variant", "check_integrity", "checked_setting", "load_bundle",
           "read_bundle_json",
           "sha256_file", "sign_bundle",
           "verify_bundle", "write_manifest"]
