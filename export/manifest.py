"""Moved: the bundle manifest lives in `edge_ecg.runtime.bundle` (the runtime's side).

Re-exported here for code written against the old path (export/stage.py); import from
`edge_ecg.runtime.bundle`.
"""

from edge_ecg.runtime.bundle import (  # noqa: F401
    BACKENDS,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    REQUIRED,
    Manifest,
    Variant,
    load_bundle,
    sha256_file,
    write_manifest,
)
