"""The on-device packages must import without torch or peft (tablets and monitors)."""

import subprocess
import sys

import pytest

ON_DEVICE = ["edge_ecg.signal", "edge_ecg.runtime", "firmware_bridge", "profiles", "edge_ecg.cli"]


@pytest.mark.parametrize("module", ON_DEVICE)
def test_on_device_module_imports_without_torch(module):
    code = (
        "import importlib, pkgutil, sys\n"
        f"pkg = importlib.import_module({module!r})\n"
        "for info in pkgutil.walk_packages(getattr(pkg, '__path__', []), pkg.__name__ + '.'):\n"
        "    importlib.import_module(info.name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'peft'))\n"
        "assert not bad, bad[:5]\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_cli_help_lists_subcommands():
    res = subprocess.run([sys.executable, "-m", "edge_ecg", "--help"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())          # argparse wraps the epilog
    assert "Not a diagnostic device" in text and "synthetic ECGs only" in text
