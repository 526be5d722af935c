"""What the potassium output says on real ECGs, which carry no potassium labels here.

    python bench/potassium_real.py [--bundle DIR ...]

The potassium head learned from synthetic ECGs only. On held-out real ECGs (fold 0 of PTB-XL,
the first 300 CinC 2017 recordings of fold 0, MIT-BIH fold 0), most patients have a normal
potassium, yet nothing here says which: this prints the share of windows each bundle calls
"abnormal" and the median probability. A share far from the few per cent of abnormal potassium
in an ECG population means the output carries no information on real patients. Not a test.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_ecg.data.dataset import load_dataset
from edge_ecg.data.tasks import DEFAULT_TASKS
from edge_ecg.runtime.backends import open_backend
from edge_ecg.signal.contract import SignalContract

DATA = REPO.parent / "shared" / "data"
SPECS = (f"ptbxl:{DATA}/ptbxl?folds=0", f"cinc2017:{DATA}/cinc2017?folds=0&limit=300",
         f"mitdb:{DATA}/mitdb?folds=0")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", action="append",
                    default=None, help="bundle (repeatable; default: the bundled one)")
    args = ap.parse_args()
    bundles = args.bundle or [str(REPO / "edge_ecg" / "assets" / "default_bundle")]
    print("bundle | data | windows | called abnormal | median probability")
    for b in bundles:
        be = open_backend(Path(b))
        c = SignalContract.from_dict(be.manifest.signal)
        for spec in SPECS:
            ds = load_dataset(spec, c, DEFAULT_TASKS, progress=False)
            n = len(ds.inputs["x"])
            p = np.concatenate([np.ravel(be.run({k: v[i:i + 64] for k, v in ds.inputs.items()})
                                         ["potassium"]) for i in range(0, n, 64)])
            name = spec.split(":")[0]
            print(f"{Path(b).name} | {name} | {n} | {(p >= 0.5).mean():.1%} | "
                  f"{np.median(p):.3f}")
        be.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
