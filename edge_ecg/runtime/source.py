"""Moved: `Source` and `SourceSpec` live in `edge_ecg.signal.source`, beside `Chunk`.

Re-exported here for code written against the old path; import from `edge_ecg.signal.source`.
"""

from edge_ecg.signal.source import SOURCE_KINDS, Source, SourceSpec

__all__ = ["SOURCE_KINDS", "Source", "SourceSpec"]
