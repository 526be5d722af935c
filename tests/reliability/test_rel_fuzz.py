"""Fuzzing (hypothesis, brief here; long runs: `python bench/fuzz.py --minutes N`).

Properties: the frame decoder never raises, its bytes add up and its output does not depend on
the chunking, and a corrupted stream never yields a sample that was not sent; the manifest and
profile loaders return a valid object or raise their own EdgeECGError subclass, nothing else.
Examples are derandomized so CI runs the same inputs every time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import fuzz_targets as ft
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

try:
    import tomllib
except ModuleNotFoundError:      # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
FAST = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


def _valid_stream(seed: int, n_frames: int = 6) -> tuple[bytes, list[np.ndarray]]:
    from firmware_bridge.protocol import DeviceInfo, SampleFormat, encode_data, encode_device_info

    rng = np.random.default_rng(seed)
    info = DeviceInfo(fs_hz=500.0, leads=("I", "II", "V1"), gain=(1000.0,) * 3,
                      baseline=(0,) * 3, fmt=SampleFormat.INT24, samples_per_frame=5,
                      firmware=(1, 0, 0))
    frames = [rng.integers(-2**23, 2**23, size=(5, 3)).astype(np.int32) for _ in range(n_frames)]
    data = encode_device_info(info) + b"".join(
        encode_data(k, k * 10_000, f, SampleFormat.INT24) for k, f in enumerate(frames))
    return data, frames


@FAST
@given(st.binary(max_size=2048))
def test_decoder_random_bytes(data):
    ft.decoder_target(data)


@FAST
@given(seed=st.integers(0, 2**16), edits=st.lists(
    st.tuples(st.integers(0, 10**6), st.integers(0, 255), st.sampled_from(["flip", "del", "ins"])),
    min_size=1, max_size=8))
def test_decoder_corrupted_valid_stream_never_emits_a_sample_not_sent(seed, edits):
    """Bit flips, deletions and insertions in a valid stream: every emitted frame's samples
    are exactly one of the sent frames (the CRC guards them), and bytes add up."""
    from firmware_bridge.decoder import StreamDecoder
    from firmware_bridge.protocol import DataFrame

    data, frames = _valid_stream(seed)
    buf = bytearray(data)
    for pos, val, op in edits:
        p = pos % (len(buf) + 1)
        if op == "flip" and p < len(buf):
            buf[p] ^= 1 << (val % 8)
        elif op == "del" and p < len(buf):
            del buf[p]
        else:
            buf.insert(p, val)
    ft.decoder_target(bytes(buf))
    dec = StreamDecoder()
    sent = {f.tobytes() for f in frames}
    for m in dec.feed(bytes(buf)):
        if isinstance(m, DataFrame):
            assert m.samples.astype(np.int32).tobytes() in sent


@FAST
@given(st.binary(max_size=512))
def test_device_info_body_parser(data):
    ft.device_info_target(data)


@FAST
@example(b"\x00\x00\x00\x00\x01\x02\x05\x01\x00\x00\x00\x01I\x00\x00zD\x00\x00\x00\x00")
@given(st.binary(max_size=256))
def test_decoder_with_fuzzed_device_info_then_data(data):
    ft.device_info_stream_target(data)


# --- manifest loader ----------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=8)


@pytest.fixture(scope="module")
def sandbox(rel_bundle):
    box = ft.BundleSandbox(rel_bundle)
    yield box
    box.close()


_mutate = ft.mutate_json


@FAST
@given(path=st.lists(st.integers(0, 50), min_size=1, max_size=4), value=json_values,
       delete=st.booleans())
def test_manifest_loader_structured(sandbox, path, value, delete):
    doc = _mutate(sandbox.valid, path, value, delete)
    sandbox.load(json.dumps(doc).encode())


@FAST
@given(st.binary(max_size=512))
def test_manifest_loader_random_bytes(sandbox, data):
    sandbox.load(data)


@FAST
@given(cut=st.integers(0, 10**6), flip=st.integers(0, 10**6))
def test_manifest_loader_truncated_or_flipped(sandbox, cut, flip):
    raw = bytearray(json.dumps(sandbox.valid, indent=1).encode())
    raw[flip % len(raw)] ^= 0x20
    sandbox.load(bytes(raw[: cut % (len(raw) + 1)]))


# --- profile loader -----------------------------------------------------------------------
toml_values = st.recursive(
    st.booleans() | st.integers(min_value=-2**63, max_value=2**63 - 1)
    | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3), max_leaves=6)


@FAST
@given(path=st.lists(st.integers(0, 50), min_size=1, max_size=2), value=toml_values,
       delete=st.booleans())
def test_profile_loader_structured(path, value, delete):
    doc = tomllib.loads(ft.LOCAL_PROFILE.read_text())
    ft.profile_doc_target(_mutate(doc, path, value, delete))


@FAST
@given(st.binary(max_size=512))
def test_profile_loader_random_bytes(tmp_path, data):
    ft.profile_text_target(data, tmp_path)


@FAST
@given(cut=st.integers(0, 10**6), flip=st.integers(0, 10**6), bit=st.integers(0, 6))
def test_profile_loader_truncated_or_flipped(tmp_path, cut, flip, bit):
    raw = bytearray(ft.LOCAL_PROFILE.read_bytes())
    raw[flip % len(raw)] ^= 1 << bit
    ft.profile_text_target(bytes(raw[: cut % (len(raw) + 1)]), tmp_path)


# --- atheris (coverage-guided), briefly -----------------------------------------------------
def test_atheris_smoke_run_of_the_decoder():
    """A short coverage-guided run through bench/fuzz.py (skipped where atheris is absent)."""
    pytest.importorskip("atheris", reason="atheris not installed (pip install atheris)")
    r = subprocess.run([sys.executable, str(REPO / "bench" / "fuzz.py"), "--engine", "atheris",
                        "--target", "decoder", "--runs", "3000"],
                       capture_output=True, text=True, timeout=120, cwd=REPO, check=False)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "decoder" in r.stdout and "findings 0" in r.stdout
