"""Which filter kernel runs is visible (issue 28). edge_ecg.signal.filters loads scipy's
compiled sosfilt kernel alone and checks it against a numpy reference at import; without it
the public scipy.signal.sosfilt filters instead (correct, but ~30 us a call slower and +76 MB
resident, half the runtime's memory budget). The stream's start status event names the
kernel, a fallback is a warning on stderr, and a scipy that pyproject's bound admits must keep
the compiled kernel (the bound exists for it: the kernel is private API)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]


def _stream(out: Path) -> str:
    return ("from edge_ecg.cli import main\n"
            "raise SystemExit(main(['stream', '--source', 'synth:sinus_rhythm?seconds=11', "
            f"'--speed', 'max', '--output', 'jsonl:{out}']))\n")


def _start_info(out: Path) -> dict:
    first = json.loads(out.read_text().splitlines()[0])
    assert first["type"] == "status" and first["state"] == "start"
    return first["info"]


def test_scipy_is_bounded_and_the_scipy_installed_keeps_the_compiled_kernel():
    import scipy

    try:
        import tomllib
    except ModuleNotFoundError:             # Python 3.10
        import tomli as tomllib
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    req = next(Requirement(d) for d in deps if Requirement(d).name == "scipy")
    assert [s for s in req.specifier if s.operator in ("<", "<=")], f"{req}: no upper bound"
    assert req.specifier.contains(scipy.__version__), f"scipy {scipy.__version__} not in {req}"
    from edge_ecg.signal import filters

    # no skip: within the bound the compiled kernel must be found, load and pass its check
    assert filters.KERNEL == "compiled", filters.KERNEL_NOTE
    assert "verified" in filters.KERNEL_NOTE


def test_the_start_status_event_names_the_kernel_in_use(tmp_path):
    out = tmp_path / "ev.jsonl"
    res = subprocess.run([sys.executable, "-c", _stream(out)], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    info = _start_info(out)
    assert info["filter_kernel"] == "compiled" and "verified" in info["filter_kernel_note"]
    assert "public scipy.signal.sosfilt" not in res.stderr


def test_a_scipy_without_the_compiled_kernel_is_seen_in_the_status_event_and_on_stderr(tmp_path):
    out = tmp_path / "ev.jsonl"
    # a scipy whose kernel moved: its scipy.signal._sosfilt has no _sosfilt in it. Taken out
    # again once the filters are imported, so the fallback's `import scipy.signal` is real.
    code = ("import sys, types\n"
            "sys.modules['scipy.signal._sosfilt'] = types.ModuleType('scipy.signal._sosfilt')\n"
            "import edge_ecg.signal.filters\n"
            "del sys.modules['scipy.signal._sosfilt']\n" + _stream(out))
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    info = _start_info(out)
    assert info["filter_kernel"] == "public"
    assert "has no _sosfilt" in info["filter_kernel_note"]
    assert "filtering with the public scipy.signal.sosfilt instead" in res.stderr
    assert sum(json.loads(x)["type"] == "beat" for x in out.read_text().splitlines()) > 5
