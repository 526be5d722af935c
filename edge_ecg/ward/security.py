"""The ward's secrets, made at deployment: a CA, certificates, one credential per role.

    <dir>/ca.pem, ca.key              the ward's own CA (ECDSA P-256); the key signs the
                                      others and is needed again only to add a bed
    <dir>/server.pem, server.key      nats-server's certificate: 127.0.0.1, ::1, localhost and
                                      the LAN names/addresses given
    <dir>/roles/<user>.json           one credential per client: URL, user, password, inbox
                                      prefix, CA, and its own client certificate/key
                                      (<dir>/roles/<user>.pem/.key) for mutual TLS

Keys are generated here (the `cryptography` package) and written 0600; nothing here is ever
committed (tests make theirs in a temporary directory). Passwords are random 192-bit tokens,
in plain text only in each role's own 0600 credential file; nats-server's 0600 config holds
their bcrypt hashes (`password_hash`).
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from edge_ecg.ward.errors import WardError

CERT_DAYS = 825          # the longest lifetime browsers and TLS stacks still accept for a leaf
# bcrypt's work factor for the passwords in nats.conf. The passwords are 192-bit random tokens:
# no work factor changes what guessing one costs (2**192 tries), so the hash is there to keep
# the config from disclosing them, not to slow a dictionary attack. nats-server pays the
# factor at every connection (measured on the 2-core machine: cost 11, the usual default,
# 0.65 s a check, against an auth timeout of 2 s and every client reconnecting at once after
# a broker restart; cost 4, bcrypt's least, 9 ms).
BCRYPT_COST = 4
ROLES = ("admin", "publisher", "worker", "station", "viewer")


@dataclass(frozen=True)
class RoleConfig:
    """How one client connects: what `bus.connect` needs, as one JSON file per credential."""

    url: str
    user: str | None = None
    password: str | None = None
    role: str = "admin"
    ca_file: str | None = None
    cert_file: str | None = None       # client certificate, for mutual TLS
    key_file: str | None = None
    inbox_prefix: str | None = None    # its reply subjects: the only ones it may subscribe to
    beds: tuple[str, ...] = ()         # a publisher's beds ("<unit>.<bed>")

    @property
    def tls(self) -> bool:
        return self.ca_file is not None

    @classmethod
    def load(cls, path: str | Path) -> RoleConfig:
        """A credential file written by `edge-ecg ward broker --dir`; paths in it are relative
        to the file."""
        p = Path(path)
        try:
            d = json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            raise WardError(f"cannot read the ward credential {p}: {exc}; write one with "
                            "`edge-ecg ward broker --dir DIR` (DIR/roles/*.json)") from None
        if not isinstance(d, dict) or "url" not in d:
            raise WardError(f"{p} is not a ward credential (no 'url'): use a file from "
                            "DIR/roles/ written by `edge-ecg ward broker --dir DIR`")
        known = set(cls.__dataclass_fields__)
        d = {k: v for k, v in d.items() if k in known}
        for k in ("ca_file", "cert_file", "key_file"):
            if d.get(k):
                d[k] = str((p.parent / d[k]).resolve())
        d["beds"] = tuple(d.get("beds") or ())
        return cls(**d)

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        d = asdict(self)
        d["beds"] = list(self.beds)
        for k in ("ca_file", "cert_file", "key_file"):   # relative: the folder can move
            if d[k]:
                d[k] = os.path.relpath(d[k], p.parent)
        _write_secret(p, json.dumps(d, indent=1).encode())
        return p


def _write_secret(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn: str):
    from cryptography.x509.oid import NameOID
    from cryptography import x509

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edge-ecg ward"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _now():
    return _dt.datetime.now(_dt.timezone.utc)


class CertificateAuthority:
    """The ward's CA: signs the server's and the clients' certificates."""

    def __init__(self, key, cert) -> None:
        self.key, self.cert = key, cert

    @classmethod
    def create(cls, cn: str = "edge-ecg ward CA") -> CertificateAuthority:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        key = _key()
        now = _now()
        cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - _dt.timedelta(minutes=5))
                .not_valid_after(now + _dt.timedelta(days=10 * 365))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                             False), critical=True)
                .sign(key, hashes.SHA256()))
        return cls(key, cert)

    @classmethod
    def load(cls, folder: str | Path) -> CertificateAuthority:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        d = Path(folder)
        try:
            key = serialization.load_pem_private_key((d / "ca.key").read_bytes(), None)
            cert = x509.load_pem_x509_certificate((d / "ca.pem").read_bytes())
        except (OSError, ValueError) as exc:
            raise WardError(f"cannot read the ward CA in {d} (ca.pem, ca.key): {exc}") from None
        return cls(key, cert)

    def save(self, folder: str | Path) -> None:
        from cryptography.hazmat.primitives import serialization

        d = Path(folder)
        _write_secret(d / "ca.key", _pem_key(self.key))
        (d / "ca.pem").write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, cn: str, path_stem: Path, server_names: tuple[str, ...] = ()) -> tuple[Path, Path]:
        """A leaf certificate for `cn` (a server when `server_names` are given, else a client);
        writes `<stem>.pem` and `<stem>.key` (0600) and returns their paths."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509.oid import ExtendedKeyUsageOID

        key = _key()
        now = _now()
        b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(self.cert.subject)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - _dt.timedelta(minutes=5))
             .not_valid_after(now + _dt.timedelta(days=CERT_DAYS))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
        if server_names:
            alt = []
            for n in server_names:
                try:
                    alt.append(x509.IPAddress(ipaddress.ip_address(n)))
                except ValueError:
                    alt.append(x509.DNSName(n))
            b = (b.add_extension(x509.SubjectAlternativeName(alt), critical=False)
                 .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                                critical=False))
        else:
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                                critical=False)
        cert = b.sign(self.key, hashes.SHA256())
        pem, kf = path_stem.with_suffix(".pem"), path_stem.with_suffix(".key")
        pem.parent.mkdir(parents=True, exist_ok=True)
        pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_secret(kf, _pem_key(key))
        return pem, kf


def new_password() -> str:
    return secrets.token_urlsafe(24)


def password_hash(password: str, cost: int = BCRYPT_COST) -> str:
    """The bcrypt form nats-server takes in place of a password (`$2a$<cost>$...`)."""
    try:
        import bcrypt
    except ImportError:
        raise WardError("the ward's broker needs the bcrypt package: pip install "
                        "edge-ecg[ward]") from None
    if not password:
        raise WardError("a ward credential without a password: write it again with "
                        "`edge-ecg ward broker --dir DIR` (delete its file in DIR/roles first)")
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost, prefix=b"2a")).decode()


def user_name(role: str, beds: tuple[str, ...] = (), name: str | None = None) -> str:
    """`worker`, `station`, ..., `publisher-<unit>-<bed>` for one bed's bridge, or
    `publisher-<name>` for a bridge of several beds."""
    if role == "publisher":
        tail = name or (beds[0].replace(".", "-") if len(beds) == 1 else None)
        if tail is None:
            raise WardError("a publisher of several beds needs a name")
        return f"publisher-{tail}"
    return name or role
