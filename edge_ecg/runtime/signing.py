"""Ed25519 signatures over a bundle's manifest, and the public keys a deployment trusts.

`manifest.json` lists the sha256 and size of every other file of the bundle, so one signature
over its exact bytes covers the whole bundle: a changed task scale breaks the signature, and so
does a replaced model file whose new hash was written into the manifest. The signature lives
beside the manifest in `manifest.sig` (JSON): the key id (sha256 of the raw 32-byte public
key), the public key itself (so that `edge-ecg bundle verify` can name an untrusted signer) and
the signature. Trust never comes from that file: a deployment pins the key ids it trusts.

Where the trusted keys come from, the first one given: the `trusted_keys` argument
(`--trusted-keys PATH`), the environment variable EDGE_ECG_TRUSTED_KEYS, else the public key of
the bundled model's signer shipped in `edge_ecg/assets/trusted_keys/`. A path is a `.pub` file
(one or more PEM public keys) or a folder of `.pub` files. A bundle that is unsigned, or signed
by a key not pinned, is refused unless the caller allows it (`--allow-unsigned`, or
EDGE_ECG_ALLOW_UNSIGNED=1), and then a warning says so. A signature that does not verify is
refused always: that manifest was changed after signing.

`cryptography` (maintained, OpenSSL- and Rust-backed) is imported only to verify a signature
or to sign: measured on the CI-class box, importing it and verifying one signature in a process
that already holds numpy and onnxruntime costs +7.5 MB RSS (47.1 -> 54.6 MB) and ~10 ms warm.
Public keys are parsed with the stdlib instead (an Ed25519 SubjectPublicKeyInfo is a fixed
12-byte DER prefix and the 32-byte key, RFC 8410), so resolving trust, and refusing an unsigned
or untrusted bundle, never import it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from edge_ecg.errors import BundleError

SIGNATURE = "manifest.sig"
SIG_FORMAT = "edge-ecg-manifest-signature"
SIG_VERSION = 1
ALGORITHM = "ed25519"
# What is signed is this prefix and then the manifest's bytes: a key made for bundles then
# signs nothing that another protocol could take for its own message (domain separation).
DOMAIN = b"edge-ecg manifest signature v1\n"
ENV_TRUSTED_KEYS = "EDGE_ECG_TRUSTED_KEYS"
ENV_ALLOW_UNSIGNED = "EDGE_ECG_ALLOW_UNSIGNED"
# The public key of whoever signed the bundled default bundle (package data, never a private key)
SHIPPED_KEYS = Path(__file__).resolve().parents[1] / "assets" / "trusted_keys"
# DER of an Ed25519 SubjectPublicKeyInfo up to the raw key: SEQUENCE { SEQUENCE { OID
# 1.3.101.112 }, BIT STRING (33 bytes, 0 unused bits) } (RFC 8410 section 4)
_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
_PEM = re.compile(r"-----BEGIN PUBLIC KEY-----\s*([A-Za-z0-9+/=\s]+?)-----END PUBLIC KEY-----")
_MAX_SIG_BYTES = 64 * 1024   # a signature file is ~400 bytes; refuse to parse a huge one


class UnsignedBundleWarning(UserWarning):
    """A bundle was accepted without a signature from a trusted key (allowed explicitly)."""


def key_id(raw_public_key: bytes) -> str:
    """The id a deployment pins: sha256 of the raw 32-byte Ed25519 public key, hex."""
    return hashlib.sha256(raw_public_key).hexdigest()


def public_key_pem(raw_public_key: bytes) -> str:
    """The PEM SubjectPublicKeyInfo of a raw key (what `openssl pkey -pubout` writes)."""
    b64 = base64.b64encode(_SPKI_PREFIX + raw_public_key).decode()
    return "-----BEGIN PUBLIC KEY-----\n" + b64 + "\n-----END PUBLIC KEY-----\n"


def parse_public_keys(text: str, where: str) -> list[bytes]:
    """The raw Ed25519 keys of every PEM public key block in `text`."""
    blocks = _PEM.findall(text)
    if not blocks:
        raise BundleError(f"{where}: no PEM public key (-----BEGIN PUBLIC KEY-----) found; "
                          "pass the .pub file `edge-ecg bundle keygen` wrote")
    keys = []
    for b in blocks:
        try:
            der = base64.b64decode("".join(b.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BundleError(f"{where}: a public key block is not valid base64 ({exc})") from exc
        if len(der) != len(_SPKI_PREFIX) + 32 or not der.startswith(_SPKI_PREFIX):
            raise BundleError(f"{where}: a public key is not an Ed25519 key; bundles are signed "
                              "with Ed25519 (`edge-ecg bundle keygen`)")
        keys.append(der[len(_SPKI_PREFIX):])
    return keys


@dataclass(frozen=True)
class TrustedKey:
    key_id: str
    name: str        # the .pub file's stem: whom the deployment takes the key for
    path: str


def load_trusted_keys(path: str | Path) -> tuple[TrustedKey, ...]:
    """The keys of a `.pub` file, or of every `.pub` file in a folder (not recursive)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.glob("*.pub") if p.is_file())
        if not files:
            raise BundleError(f"trusted keys folder {path} holds no .pub file; put the public "
                              "key of each signer you trust there")
    elif path.is_file():
        files = [path]
    else:
        raise BundleError(f"trusted keys {path} not found; pass a .pub file or a folder of them "
                          f"(--trusted-keys or {ENV_TRUSTED_KEYS})")
    out = []
    for f in files:
        try:
            text = f.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise BundleError(f"trusted key {f} cannot be read as a PEM file ({exc})") from exc
        raws = parse_public_keys(text, f"trusted key {f}")
        for i, raw in enumerate(raws):
            name = f.stem if len(raws) == 1 else f"{f.stem}[{i}]"
            out.append(TrustedKey(key_id(raw), name, str(f)))
    return tuple(out)


def _env_flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class TrustPolicy:
    """The keys a deployment pins, and whether it accepts a bundle none of them signed."""

    keys: tuple[TrustedKey, ...] = ()
    allow_unsigned: bool = False
    source: str = ""             # where the keys came from, for messages

    @classmethod
    def resolve(cls, trusted_keys: str | Path | None = None, allow_unsigned: bool | None = None,
                env: Mapping[str, str] | None = None) -> TrustPolicy:
        """From the arguments, else the environment, else the shipped key (module docstring).
        `allow_unsigned=None` means: as EDGE_ECG_ALLOW_UNSIGNED says (default no)."""
        env = os.environ if env is None else env
        if trusted_keys is not None and str(trusted_keys) != "":
            src, where = Path(trusted_keys), f"--trusted-keys {trusted_keys}"
        elif env.get(ENV_TRUSTED_KEYS):
            src, where = Path(env[ENV_TRUSTED_KEYS]), f"{ENV_TRUSTED_KEYS}={env[ENV_TRUSTED_KEYS]}"
        else:
            src, where = SHIPPED_KEYS, f"the shipped keys in {SHIPPED_KEYS}"
        allow = _env_flag(env.get(ENV_ALLOW_UNSIGNED)) if allow_unsigned is None \
            else bool(allow_unsigned)
        return cls(load_trusted_keys(src), allow, where)

    def find(self, kid: str) -> TrustedKey | None:
        return next((k for k in self.keys if k.key_id == kid), None)


@dataclass(frozen=True)
class SignatureCheck:
    """What the signature check found about a bundle it did not refuse."""

    status: str               # "trusted" | "untrusted" (signed, key not pinned) | "unsigned"
    key_id: str = ""
    signer: str = ""          # trusted: the pinned key's name; untrusted: the name it claims
    policy_source: str = ""

    @property
    def trusted(self) -> bool:
        return self.status == "trusted"

    def describe(self) -> str:
        if self.status == "trusted":
            return (f"signed by {self.signer} (ed25519 key {self.key_id[:16]}..., trusted from "
                    f"{self.policy_source})")
        if self.status == "untrusted":
            return (f"SIGNED BY AN UNTRUSTED KEY {self.key_id[:16]}... (claims to be "
                    f"{self.signer!r}; not in {self.policy_source}): accepted only because "
                    f"unsigned bundles are allowed (--allow-unsigned / {ENV_ALLOW_UNSIGNED})")
        return (f"UNSIGNED: accepted only because unsigned bundles are allowed "
                f"(--allow-unsigned / {ENV_ALLOW_UNSIGNED}); nothing vouches for this model, "
                "do not use it on patients")

    def to_dict(self) -> dict:
        """For the stream's status event."""
        return {"status": self.status, "trusted": self.trusted, "key_id": self.key_id,
                "signer": self.signer, "detail": self.describe()}


def _sig_path(bundle: Path) -> Path:
    p = bundle / SIGNATURE
    # a signature symlinked from elsewhere is not this bundle's
    if p.is_symlink() or (p.exists() and p.resolve().parent != bundle.resolve()):
        raise BundleError(f"bundle {bundle}: {SIGNATURE} is a link; copy the real file into "
                          "the bundle")
    return p


def _read_signature(bundle: Path, p: Path) -> dict:
    where = f"bundle {bundle}: {SIGNATURE}"
    fix = (f"re-sign the bundle (`edge-ecg bundle sign {bundle} --key KEY`) or re-copy it "
           "from its source")
    if p.stat().st_size > _MAX_SIG_BYTES:
        raise BundleError(f"{where} is {p.stat().st_size} bytes, not a signature; {fix}")
    try:
        doc = json.loads(p.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{where} is not valid JSON ({exc}); {fix}") from exc
    ok = (isinstance(doc, dict) and doc.get("format") == SIG_FORMAT
          and doc.get("version") == SIG_VERSION and doc.get("algorithm") == ALGORITHM
          and all(isinstance(doc.get(k), str) for k in
                  ("key_id", "public_key", "signature", "manifest_sha256", "signer")))
    if not ok:
        raise BundleError(f"{where} is not an {SIG_FORMAT} v{SIG_VERSION} ({ALGORITHM}) "
                          f"signature; {fix}")
    try:
        doc["_raw_key"] = base64.b64decode(doc["public_key"], validate=True)
        doc["_sig"] = base64.b64decode(doc["signature"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BundleError(f"{where}: key or signature is not valid base64; {fix}") from exc
    if len(doc["_raw_key"]) != 32 or len(doc["_sig"]) != 64:
        raise BundleError(f"{where}: an Ed25519 key is 32 bytes and a signature 64; {fix}")
    if key_id(doc["_raw_key"]) != doc["key_id"]:
        raise BundleError(f"{where}: its key id is not the sha256 of its public key; {fix}")
    return doc


def check_signature(bundle: str | Path, manifest_bytes: bytes,
                    policy: TrustPolicy) -> SignatureCheck:
    """Check `manifest.sig` against the exact manifest bytes the caller verified.

    Returns a `SignatureCheck` or raises `BundleError`: unsigned or untrusted (unless the
    policy allows them), and a signature that does not verify (always).
    """
    bundle = Path(bundle)
    p = _sig_path(bundle)
    if not p.is_file():
        if policy.allow_unsigned:
            return SignatureCheck("unsigned", policy_source=policy.source)
        raise BundleError(
            f"bundle {bundle} is unsigned (no {SIGNATURE}) and this deployment runs only bundles "
            f"signed by a key it trusts ({policy.source}); sign it with `edge-ecg bundle sign "
            f"{bundle} --key KEY` with a trusted key, or, for development only, pass "
            f"--allow-unsigned (or set {ENV_ALLOW_UNSIGNED}=1)")
    doc = _read_signature(bundle, p)
    kid, claimed = doc["key_id"], doc["signer"]
    pinned = policy.find(kid)
    if pinned is None and not policy.allow_unsigned:
        trusted = ", ".join(f"{k.name} {k.key_id[:16]}..." for k in policy.keys) or "none"
        raise BundleError(
            f"bundle {bundle} is signed by key {kid[:16]}... (it claims to be {claimed!r}), "
            f"which this deployment does not trust (trusted, from {policy.source}: {trusted}); "
            "if you trust that signer, add its .pub file to the trusted keys (--trusted-keys or "
            f"{ENV_TRUSTED_KEYS}), else get the bundle signed by a trusted key")
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(doc["_raw_key"]).verify(doc["_sig"],
                                                                   DOMAIN + manifest_bytes)
    except InvalidSignature:
        if hashlib.sha256(manifest_bytes).hexdigest() != doc["manifest_sha256"]:
            why = ("manifest.json was changed after it was signed (tampered with, or edited and "
                   "not re-signed)")
        else:
            why = "the signature is invalid (the signature file was forged or corrupted)"
        raise BundleError(
            f"bundle {bundle}: {why}; do not use it: re-copy the bundle from its source, or, "
            f"if you changed it on purpose, re-sign it (`edge-ecg bundle sign {bundle} "
            "--key KEY`)") from None
    if pinned is None:
        return SignatureCheck("untrusted", kid, claimed, policy.source)
    return SignatureCheck("trusted", kid, pinned.name, policy.source)


# --- keys and signing (the export side and `edge-ecg bundle keygen|sign`) ---

def generate_keypair(out_dir: str | Path, name: str = "bundle-signing") -> tuple[Path, Path, str]:
    """Write `NAME.key` (PKCS#8 PEM, mode 0600) and `NAME.pub` in `out_dir` (made 0700).

    Refuses to overwrite either file: replacing a signing key orphans every bundle it signed.
    Returns (private key path, public key path, key id).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise BundleError(f"key name {name!r}: use letters, digits, '.', '_' or '-'")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_path, pub_path = out / f"{name}.key", out / f"{name}.pub"
    for p in (key_path, pub_path):
        if p.exists():
            raise BundleError(f"{p} exists; keygen never overwrites a key (bundles signed with "
                              "it would no longer verify): pick another --name or folder")
    priv = Ed25519PrivateKey.generate()
    pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    raw = priv.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)
    # O_EXCL: no race with another writer; the mode is set at creation, never readable by others
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
    finally:
        os.close(fd)
    pub_path.write_text(public_key_pem(raw), encoding="ascii")
    return key_path, pub_path, key_id(raw)


def load_private_key(path: str | Path):
    """An Ed25519 private key from a PEM file no one else may read (as ssh insists)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    if not path.is_file():
        raise BundleError(f"signing key {path} not found; make one with "
                          "`edge-ecg bundle keygen --out DIR`")
    mode = stat.S_IMODE(path.stat().st_mode)
    if os.name == "posix" and mode & 0o077:
        raise BundleError(f"signing key {path} is readable by others (mode {mode:o}); "
                          f"`chmod 600 {path}` first")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise BundleError(f"signing key {path} is not an unencrypted PEM private key ({exc}); "
                          "use the .key file `edge-ecg bundle keygen` wrote") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"signing key {path} is not an Ed25519 key; make one with "
                          "`edge-ecg bundle keygen`")
    return key


def public_key_of(key_path: str | Path, name: str | None = None) -> TrustedKey:
    """The public half of a private key file, as a key to trust (its own signature check)."""
    from cryptography.hazmat.primitives import serialization

    raw = load_private_key(key_path).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return TrustedKey(key_id(raw), name or Path(key_path).stem, str(key_path))


def write_signature(bundle: str | Path, manifest_bytes: bytes, key_path: str | Path,
                    signer: str | None = None) -> str:
    """Sign the exact `manifest_bytes` and write `manifest.sig` (atomically); the key id."""
    from cryptography.hazmat.primitives import serialization

    bundle = Path(bundle)
    priv = load_private_key(key_path)
    raw = priv.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)
    kid = key_id(raw)
    doc = {"format": SIG_FORMAT, "version": SIG_VERSION, "algorithm": ALGORITHM,
           "manifest": "manifest.json",
           "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
           "key_id": kid, "signer": signer or Path(key_path).stem,
           "public_key": base64.b64encode(raw).decode(),
           "signature": base64.b64encode(priv.sign(DOMAIN + manifest_bytes)).decode()}
    p = _sig_path(bundle)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, p)
    return kid


__all__ = ["ALGORITHM", "DOMAIN", "ENV_ALLOW_UNSIGNED", "ENV_TRUSTED_KEYS", "SHIPPED_KEYS",
           "SIGNATURE", "SIG_FORMAT", "SIG_VERSION", "SignatureCheck", "TrustPolicy", "TrustedKey",
           "UnsignedBundleWarning", "check_signature", "generate_keypair", "key_id",
           "load_private_key", "load_trusted_keys", "parse_public_keys", "public_key_of",
           "public_key_pem", "write_signature"]
