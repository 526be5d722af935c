"""Installing a fitted stack file into a bundle, for `edge-ecg stack` and `edge-ecg stack
--beats` alike: the file written, the manifest rehashed from the one verified before fitting,
the bundle signed."""

from __future__ import annotations

import sys
from pathlib import Path


def install_stack(bundle: Path, manifest, name: str, write, metrics_key: str, metrics: dict,
                  sign_key: Path | None, note: str = "") -> None:
    """Write a fitted stack file `name` into the bundle (`write(path)`), its figures under
    `metrics[metrics_key]`, the manifest rehashed, and the bundle signed with `sign_key`."""
    from dataclasses import asdict

    from edge_ecg.runtime.bundle import sign_bundle, write_manifest

    write(bundle / name)
    # the manifest verified before fitting, not re-read: the stack file just written (a refit
    # of one the manifest lists) no longer matches its old size and hash
    fields = {k: v for k, v in asdict(manifest).items() if k != "files"}
    fields["metrics"] = {**fields.get("metrics", {}), metrics_key: metrics}
    write_manifest(bundle, fields)
    print(f"wrote {bundle / name}{note} and rehashed the manifest")
    if sign_key:
        check = sign_bundle(bundle, sign_key)
        print(f"signed by {check.signer} (ed25519 key {check.key_id})")
    else:
        print(f"the bundle is now UNSIGNED: sign it with `edge-ecg bundle sign {bundle} "
              "--key KEY`", file=sys.stderr)
