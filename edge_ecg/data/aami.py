"""AAMI EC57 beat classes from MIT-BIH beat symbols.

EC57 groups the MIT-BIH beat labels into five classes (as ../shared/data/README.md and de Chazal
et al. 2004 do):

- N (normal and bundle branch block): N L R e j
- S (supraventricular ectopic): A a J S
- V (ventricular ectopic): V E
- F (fusion of ventricular and normal): F
- Q (paced, fusion of paced and normal, unclassifiable): / f Q

Other beat symbols (B, r, n, ?) are left unlabelled, never guessed. The paced records 102, 104,
107 and 217 are left out of beat classification, as is usual: their beats carry no class here.
A `.beat` file (records without `.atr`) labels V and "any other" (Q there): only its V is a
class, its Q could be anything and stays unlabelled.
"""

from __future__ import annotations

import numpy as np

AAMI_CLASSES: tuple[str, ...] = ("N", "S", "V", "F", "Q")

SYMBOL_TO_AAMI: dict[str, str] = {
    **dict.fromkeys("NLRej", "N"),
    **dict.fromkeys("AaJS", "S"),
    **dict.fromkeys("VE", "V"),
    "F": "F",
    **dict.fromkeys("/fQ", "Q"),
}

PACED_RECORDS: frozenset[str] = frozenset({"102", "104", "107", "217"})


def aami_class(symbol: str) -> str | None:
    """The EC57 class of one MIT-BIH beat symbol, or None where EC57 gives none."""
    return SYMBOL_TO_AAMI.get(symbol)


def aami_indices(symbols, record: str = "", annotation: str = "atr") -> np.ndarray:
    """Class indices (into `AAMI_CLASSES`) of a record's beat symbols, -1 = no class.

    `record` is the MIT-BIH record name: a paced record gets -1 throughout. `annotation` is
    the file the symbols came from: a `.beat` file's Q means "not V", not a class.
    """
    out = np.full(len(symbols), -1, dtype=np.int64)
    if record in PACED_RECORDS:
        return out
    for i, s in enumerate(symbols):
        c = SYMBOL_TO_AAMI.get(s)
        if c is None or (annotation == "beat" and c != "V"):
            continue
        out[i] = AAMI_CLASSES.index(c)
    return out


__all__ = ["AAMI_CLASSES", "PACED_RECORDS", "SYMBOL_TO_AAMI", "aami_class", "aami_indices"]
