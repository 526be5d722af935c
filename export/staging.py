"""The bundle put in place: the kept variants' files copied into a staging folder, the manifest
written and verified there (signed where a key is given), the folder moved to `out`, and the
installed bundle checked again.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from edge_ecg.runtime.bundle import (
    Manifest,
    check_integrity,
    sign_bundle,
    verify_bundle,
    write_manifest,
)

if TYPE_CHECKING:
    from export.variants import Built


def stage_files(variants_dir: Path, staging: Path, keep: list[Built]) -> str:
    """Copy the kept variants' files into `staging` (counting their bytes); returns the
    default variant (int8 routed first, then fp32)."""
    staging.mkdir()
    for b in keep:
        for rel in (b.file, *b.extra_files):
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(variants_dir / rel, staging / rel)
            b.bytes += (staging / rel).stat().st_size
    return next((n for n in ("onnx-int8-routed", "openvino-int8-routed",
                             "onnx-fp32-routed", "onnx-fp32")
                 if n in {b.name for b in keep}), keep[0].name)


def install_bundle(staging: Path, out: Path, fields: dict, sign_key: Path | None = None) -> None:
    """Write and verify the manifest in `staging` (the check the runtime will make), sign it
    with `sign_key` where given, then move the bundle to `out`, replacing what was there."""
    write_manifest(staging, fields)
    if sign_key is not None:
        sign_bundle(staging, sign_key)      # checks the files, signs, verifies with that key
    else:
        check_integrity(staging)            # unsigned: `edge-ecg bundle sign` it before use
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(staging), out)


def installed(out: Path, sign_key: Path | None) -> Manifest:
    """The bundle at `out` checked again after the move (it may have been copied across file
    systems): its files, and its signature by `sign_key` where one was asked for."""
    if sign_key is None:
        return check_integrity(out)[0]
    from edge_ecg.runtime.signing import TrustPolicy, public_key_of

    pinned = TrustPolicy((public_key_of(sign_key),), source=f"the signing key {sign_key}")
    return verify_bundle(out, trust=pinned)[0]
