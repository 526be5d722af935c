"""A record replay reads its plain WFDB record without wfdb (issue 27: `import wfdb` is a
quarter of a second of a stream's start-up, and pandas): the replay's reader is
edge_ecg.data.wfdb_reader; FLAC records still go through wfdb (tests/data/test_wfdb_reader.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "edge_ecg" / "assets" / "demo" / "mitdb_223_excerpt"


def test_a_record_replay_imports_no_wfdb_nor_pandas():
    probe = ("import json, sys\n"
             "from edge_ecg.runtime.sources import open_source\n"
             f"src = open_source('record:{DEMO}?speed=max')\n"
             "src.open()\nc = src.read()\n"
             "print(json.dumps([c.n_samples, sorted(sys.modules)]))")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, cwd=str(REPO))
    n, mods = json.loads(res.stdout.strip().splitlines()[-1])
    assert n > 0 and "edge_ecg.data.wfdb_reader" in mods
    assert [m for m in ("wfdb", "pandas") if m in mods] == []
