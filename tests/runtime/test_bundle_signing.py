"""Signed bundles: the manifest is signed with Ed25519 and the runtime runs only bundles signed
by a key the deployment pins (issue 26's attacks: a task's scale changed in manifest.json, a
model file replaced with its new hash written into the manifest, an unsigned bundle, one signed
by another key). Keys are made in each test's temporary folder.

tests/conftest.py allows unsigned bundles for the rest of the suite; every test here clears
that, so the policy under test is the one a deployment gets.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from edge_ecg.cli import main
from edge_ecg.errors import BundleError
from edge_ecg.runtime.bundle import (
    DEFAULT_BUNDLE,
    MANIFEST,
    check_integrity,
    load_bundle,
    sha256_file,
    sign_bundle,
    verify_bundle,
    write_manifest,
)
from edge_ecg.runtime.signing import (
    ENV_ALLOW_UNSIGNED,
    ENV_TRUSTED_KEYS,
    SHIPPED_KEYS,
    SIGNATURE,
    TrustPolicy,
    UnsignedBundleWarning,
    generate_keypair,
    load_private_key,
    parse_public_keys,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def deployment_policy(monkeypatch):
    """What a device gets: no unsigned bundles, the shipped key unless a test names others."""
    monkeypatch.delenv(ENV_ALLOW_UNSIGNED, raising=False)
    monkeypatch.delenv(ENV_TRUSTED_KEYS, raising=False)


@pytest.fixture
def bundle(tmp_path) -> Path:
    """A small unsigned bundle: a model file and a manifest that passes every structure check
    (the signature covers bytes, whatever the model; `real_unsigned` runs one)."""
    b = tmp_path / "bundle"
    b.mkdir()
    (b / "model.onnx").write_bytes(bytes(range(256)) * 64)
    (b / "REPORT.md").write_text("# fixture\n")
    write_manifest(b, {
        "model_version": "fixture-0",
        "signal": {"fs_hz": 500.0},
        "tasks": [{"name": "rr_interval", "kind": "regression", "output": "rr_interval",
                   "unit": "ms", "scale": 1000.0}],
        "inputs": ["x"],
        "variants": {"onnx-fp32": {"name": "onnx-fp32", "file": "model.onnx",
                                   "backend": "onnxruntime", "precision": "fp32",
                                   "routed": False}},
        "default_variant": "onnx-fp32",
    })
    return b


@pytest.fixture
def real_unsigned(tmp_path) -> Path:
    """The shipped bundle with its signature removed: a real model nothing vouches for."""
    if not (DEFAULT_BUNDLE / MANIFEST).is_file():
        pytest.skip("the bundled default bundle is not exported yet")
    b = Path(shutil.copytree(DEFAULT_BUNDLE, tmp_path / "real"))
    (b / SIGNATURE).unlink(missing_ok=True)
    return b


@pytest.fixture
def keys(tmp_path):
    """Two key pairs: `a` the deployment trusts, `b` it does not."""
    a = generate_keypair(tmp_path / "keys", "site-a")
    b = generate_keypair(tmp_path / "other", "site-b")
    return {"a": a, "b": b}


def _edit_manifest(b: Path, edit) -> None:
    doc = json.loads((b / MANIFEST).read_text())
    edit(doc)
    (b / MANIFEST).write_text(json.dumps(doc, indent=2, sort_keys=True))


def test_keygen_writes_a_private_key_only_its_owner_reads(keys, tmp_path):
    key, pub, kid = keys["a"]
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert "PRIVATE KEY" in key.read_text() and "PRIVATE" not in pub.read_text()
    # the key id is sha256 of the raw 32-byte public key, recomputed here from the PEM's DER
    der = base64.b64decode("".join(pub.read_text().splitlines()[1:-1]))
    assert len(der) == 44 and kid == hashlib.sha256(der[-32:]).hexdigest()
    assert parse_public_keys(pub.read_text(), "t") == [der[-32:]]
    with pytest.raises(BundleError, match="never overwrites"):
        generate_keypair(tmp_path / "keys", "site-a")
    key.chmod(0o644)
    with pytest.raises(BundleError, match="chmod 600"):
        load_private_key(key)


def test_fresh_key_signs_and_its_public_key_verifies(bundle, keys, recwarn):
    key, pub, kid = keys["a"]
    check = sign_bundle(bundle, key)
    assert (check.status, check.key_id, check.signer) == ("trusted", kid, "site-a")
    m, check = verify_bundle(bundle, trust=TrustPolicy.resolve(pub))
    assert check.trusted and check.key_id == kid and m.model_version == "fixture-0"
    # a folder of .pub files, named by the environment, works the same
    os.environ[ENV_TRUSTED_KEYS] = str(pub.parent)
    assert verify_bundle(bundle)[1].signer == "site-a"
    assert not [w for w in recwarn if issubclass(w.category, UnsignedBundleWarning)]


def test_changed_task_scale_in_manifest_is_refused(bundle, keys):
    key, pub, _ = keys["a"]
    sign_bundle(bundle, key)

    def double_rr_scale(doc):
        t = next(t for t in doc["tasks"] if t["name"] == "rr_interval")
        assert t["scale"] == 1000.0
        t["scale"] = 2000.0
    _edit_manifest(bundle, double_rr_scale)
    check_integrity(bundle)          # every hash still matches: only the signature catches it
    for allow in (False, True):      # a broken signature is refused even where unsigned is allowed
        with pytest.raises(BundleError, match="manifest.json was changed after it was signed.*"
                                              "re-copy the bundle"):
            verify_bundle(bundle, trust=TrustPolicy.resolve(pub, allow_unsigned=allow))


def test_replaced_model_with_its_hash_updated_is_refused(bundle, keys, tmp_path):
    key, pub, _ = keys["a"]
    sign_bundle(bundle, key)
    model = bundle / "model.onnx"
    evil = bytearray(model.read_bytes())
    evil[-1] ^= 0x01
    model.write_bytes(bytes(evil))

    def rehash(doc):
        doc["files"]["model.onnx"] = {"sha256": sha256_file(model), "bytes": model.stat().st_size}
    _edit_manifest(bundle, rehash)
    check_integrity(bundle)
    with pytest.raises(BundleError, match="changed after it was signed"):
        load_bundle(bundle, trust=TrustPolicy.resolve(pub))


def test_forged_signature_over_the_same_manifest_is_refused(bundle, keys):
    key, pub, _ = keys["a"]
    sign_bundle(bundle, key)
    doc = json.loads((bundle / SIGNATURE).read_text())
    sig = bytearray(base64.b64decode(doc["signature"]))
    sig[0] ^= 0x01
    doc["signature"] = base64.b64encode(bytes(sig)).decode()
    (bundle / SIGNATURE).write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="signature is invalid"):
        load_bundle(bundle, trust=TrustPolicy.resolve(pub))
    (bundle / SIGNATURE).write_text("{not json")
    with pytest.raises(BundleError, match="manifest.sig is not valid JSON.*re-sign"):
        load_bundle(bundle, trust=TrustPolicy.resolve(pub))


def test_unsigned_bundle_is_refused_by_default_and_by_the_runtime(bundle, real_unsigned):
    with pytest.raises(BundleError, match=r"unsigned \(no manifest.sig\).*edge-ecg bundle sign"
                                          r".*--allow-unsigned"):
        load_bundle(bundle)
    from edge_ecg.runtime.backends import open_backend

    with pytest.raises(BundleError, match="unsigned"):
        open_backend(real_unsigned)


def test_bundle_signed_by_another_key_is_refused(bundle, keys):
    sign_bundle(bundle, keys["b"][0])
    with pytest.raises(BundleError, match=rf"signed by key {keys['b'][2][:16]}.*'site-b'.*"
                                          "does not trust.*site-a"):
        load_bundle(bundle, trust=TrustPolicy.resolve(keys["a"][1]))
    with pytest.raises(BundleError, match="does not trust"):   # nor by the shipped key
        load_bundle(bundle)


def test_allow_unsigned_accepts_with_a_warning(bundle, keys):
    with pytest.warns(UnsignedBundleWarning, match="UNSIGNED: accepted only because"):
        _, check = verify_bundle(bundle, trust=TrustPolicy.resolve(allow_unsigned=True))
    assert check.status == "unsigned" and not check.trusted
    os.environ[ENV_ALLOW_UNSIGNED] = "1"     # the environment's switch, as the suite uses it
    with pytest.warns(UnsignedBundleWarning):
        load_bundle(bundle)
    sign_bundle(bundle, keys["b"][0])
    with pytest.warns(UnsignedBundleWarning, match="UNTRUSTED KEY"):
        _, check = verify_bundle(bundle, trust=TrustPolicy.resolve(keys["a"][1]))
    assert (check.status, check.signer) == ("untrusted", "site-b")


def test_rewriting_the_manifest_drops_the_old_signature(bundle, keys):
    sign_bundle(bundle, keys["a"][0])
    doc = json.loads((bundle / MANIFEST).read_text())
    (bundle / MANIFEST).unlink()
    write_manifest(bundle, {k: v for k, v in doc.items()
                            if k not in ("files", "format", "format_version")})
    assert not (bundle / SIGNATURE).exists()
    assert SIGNATURE not in json.loads((bundle / MANIFEST).read_text())["files"]


def test_shipped_bundle_verifies_with_the_shipped_key():
    if not (DEFAULT_BUNDLE / MANIFEST).is_file():
        pytest.skip("the bundled default bundle is not exported yet")
    _, check = verify_bundle(DEFAULT_BUNDLE)
    assert check.trusted and check.signer == "edge-ecg-bundled"
    shipped = sorted(SHIPPED_KEYS.glob("*.pub"))
    assert [p.name for p in shipped] == ["edge-ecg-bundled.pub"]
    raw = parse_public_keys(shipped[0].read_text(), "shipped")[0]
    assert check.key_id == hashlib.sha256(raw).hexdigest()


def test_no_private_key_is_in_the_repository():
    """Only public keys ship; a private key found in a tracked file fails the suite."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    res = subprocess.run(["git", "grep", "-l", "-I", "BEGIN PRIVATE KEY", "--", ".",
                          ":!tests/runtime/test_bundle_signing.py",
                          ":!edge_ecg/runtime/signing.py"],
                         cwd=REPO, capture_output=True, text=True, check=False)
    assert res.returncode == 1 and res.stdout == "", res.stdout


def test_bundle_cli_keygen_sign_verify(bundle, tmp_path, capsys):
    keydir = tmp_path / "cli-keys"
    assert main(["bundle", "keygen", "--out", str(keydir), "--name", "ward7"]) == 0
    assert "key id" in capsys.readouterr().out
    assert main(["bundle", "keygen", "--out", str(keydir), "--name", "ward7"]) == 1
    assert "never overwrites" in capsys.readouterr().err
    key, pub = keydir / "ward7.key", keydir / "ward7.pub"

    assert main(["bundle", "verify", str(bundle), "--trusted-keys", str(pub)]) == 1
    assert "unsigned" in capsys.readouterr().err
    assert main(["bundle", "verify", str(bundle), "--allow-unsigned"]) == 0
    assert "ACCEPTED WITHOUT TRUST, UNSIGNED" in capsys.readouterr().out

    assert main(["bundle", "sign", str(bundle), "--key", str(key)]) == 0
    assert "signed by ward7" in capsys.readouterr().out
    assert main(["bundle", "verify", str(bundle), "--trusted-keys", str(pub)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"bundle {bundle}: OK, signed by ward7") and "sha256 verified" in out
    assert main(["bundle", "verify", str(bundle)]) == 1           # shipped key only
    assert "does not trust" in capsys.readouterr().err


def test_stream_refuses_unsigned_and_says_so_when_allowed(real_unsigned):
    """The stream command: refused without a flag; with --allow-unsigned, loud on stderr and in
    the status event."""
    cmd = [sys.executable, "-m", "edge_ecg", "stream", "--bundle", str(real_unsigned),
           "--source", "synth:sinus_rhythm?seconds=11", "--speed", "max", "--no-beats"]
    env = {k: v for k, v in os.environ.items() if k != ENV_ALLOW_UNSIGNED}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert res.returncode == 1 and "unsigned" in res.stderr and res.stdout == ""
    res = subprocess.run(cmd + ["--allow-unsigned"], capture_output=True, text=True, env=env,
                         timeout=120, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "WARNING: bundle" in res.stderr and "UNSIGNED" in res.stderr
    start = json.loads(res.stdout.splitlines()[0])
    assert start["type"] == "status" and start["info"]["signature"]["status"] == "unsigned"
    assert start["info"]["signature"]["trusted"] is False
