"""Fuzz targets shared by the hypothesis tests (tests/reliability/test_rel_fuzz.py) and the
long runs (bench/fuzz.py, hypothesis or atheris).

Each target takes bytes from the fuzzer. The property: the code under test either returns a
valid object or raises the project's specific error (an `EdgeECGError` subclass); any other
exception escapes the target and is a finding. The decoder must not raise at all: it counts
and skips what it cannot use.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from edge_ecg.errors import BundleError, EdgeECGError, FrameError, ProfileError

REPO = Path(__file__).resolve().parents[2]
LOCAL_PROFILE = REPO / "profiles" / "local.toml"


class Finding(AssertionError):
    """A property violation that is not an exception of the code under test."""


# --- frame decoder ------------------------------------------------------------------------
def decoder_target(data: bytes) -> None:
    """Feed `data` in chunks whose sizes come from the data itself; then in one piece.

    Properties: no exception; bytes add up (in == accepted + discarded + pending); the
    chunking does not change the messages; every DATA frame has the layout it announced.
    """
    from firmware_bridge.decoder import StreamDecoder
    from firmware_bridge.protocol import DataFrame

    whole = StreamDecoder()
    ref = whole.feed(data)
    dec = StreamDecoder()
    got, pos, k = [], 0, 0
    while pos < len(data):
        n = 1 + (data[k % len(data)] % 97)
        got += dec.feed(data[pos:pos + n])
        pos, k = pos + n, k + 1
    for d in (whole, dec):
        if d.bytes_in != d.bytes_accepted + d.discarded_bytes + d.pending():
            raise Finding(f"bytes do not add up: {d.stats()} pending {d.pending()}")
    if len(got) != len(ref) or any(_msg_key(a) != _msg_key(b) for a, b in zip(got, ref)):
        raise Finding(f"chunking changed the messages: {len(got)} vs {len(ref)}")
    for m in ref:
        if isinstance(m, DataFrame) and (m.samples.ndim != 2 or m.samples.shape[0] < 1):
            raise Finding(f"DATA frame with samples of shape {m.samples.shape}")


def _msg_key(m):
    import numpy as np

    d = dict(vars(m)) if hasattr(m, "__dict__") else {"m": m}
    return {k: (v.tobytes() if isinstance(v, np.ndarray) else v) for k, v in d.items()}


def device_info_target(data: bytes) -> None:
    """A DEVICE_INFO body: DeviceInfo or FrameError."""
    from firmware_bridge.protocol import DeviceInfo, parse_device_info

    try:
        info = parse_device_info(data)
    except FrameError:
        return
    if not isinstance(info, DeviceInfo):
        raise Finding(f"parse_device_info returned {type(info).__name__}")


def device_info_stream_target(data: bytes) -> None:
    """A CRC-valid DEVICE_INFO with a fuzzed body followed by DATA frames: the decoder must
    not raise (it counts a malformed message), whatever the announced rate or layout."""
    import numpy as np

    from firmware_bridge.decoder import StreamDecoder
    from firmware_bridge.protocol import MsgType, SampleFormat, encode_data, envelope

    frames = b"".join(encode_data(s, s * 20_000, np.zeros((10, 1), np.int32), SampleFormat.INT16)
                      for s in range(3))
    StreamDecoder().feed(envelope(MsgType.DEVICE_INFO, bytes(data[:4096])) + frames)


# --- bundle manifest ----------------------------------------------------------------------
class BundleSandbox:
    """A copy of a real bundle whose manifest.json the fuzzer overwrites each call."""

    def __init__(self, bundle: Path) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="edge-ecg-fuzz-bundle-")
        self.dir = Path(self._tmp.name) / "bundle"
        shutil.copytree(bundle, self.dir, symlinks=False)
        self.valid = json.loads((self.dir / "manifest.json").read_text())

    def load(self, manifest_bytes: bytes):
        from edge_ecg.runtime.bundle import Manifest, load_bundle

        (self.dir / "manifest.json").write_bytes(manifest_bytes)
        try:
            m = load_bundle(self.dir)
        except BundleError:
            return None
        if not isinstance(m, Manifest):
            raise Finding(f"load_bundle returned {type(m).__name__}")
        try:
            m.variant()       # a loaded manifest must name a usable default variant
        except BundleError:
            pass
        return m

    def close(self) -> None:
        self._tmp.cleanup()


def mutate_json(doc, path: list, value, delete: bool):
    """Replace (or delete) the entry at a path of keys/indices chosen by the fuzzer."""
    doc = json.loads(json.dumps(doc))
    node = doc
    for step in path[:-1]:
        if isinstance(node, dict) and node:
            node = node[sorted(node)[step % len(node)]]
        elif isinstance(node, list) and node:
            node = node[step % len(node)]
        else:
            break
    last = path[-1]
    if isinstance(node, dict) and node:
        key = sorted(node)[last % len(node)]
        if delete:
            del node[key]
        else:
            node[key] = value
    elif isinstance(node, list) and node:
        node[last % len(node)] = value
    return doc


# --- profiles -----------------------------------------------------------------------------
def profile_text_target(data: bytes, scratch: Path) -> None:
    """Bytes as a profile file: Profile or ProfileError."""
    from profiles.profile import Profile, read_profile

    p = scratch / "fuzz_profile.toml"
    p.write_bytes(data)
    try:
        prof = read_profile(p)
    except ProfileError:
        return
    if not isinstance(prof, Profile):
        raise Finding(f"read_profile returned {type(prof).__name__}")


def profile_doc_target(doc: dict) -> None:
    """A parsed TOML document: Profile or ProfileError."""
    from profiles.profile import Profile, parse_profile

    try:
        prof = parse_profile(doc, where="<fuzz>")
    except ProfileError:
        return
    if not isinstance(prof, Profile):
        raise Finding(f"parse_profile returned {type(prof).__name__}")


def check_only_project_errors(fn, *args) -> None:
    """Run `fn`; an EdgeECGError is an accepted answer, anything else propagates."""
    try:
        fn(*args)
    except EdgeECGError:
        pass
