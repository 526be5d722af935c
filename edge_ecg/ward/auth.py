"""Who may use the central station: a users file, Argon2id password hashes, sessions, an
append-only audit log.

    users file (JSON)   {"format": 1, "users": {"<name>": {"role": "viewer" | "clinician",
                                                        "hash": "$argon2id$...", "added": <t>}}}
    roles               viewer: sees the ward; clinician: also acknowledges and silences alarms,
                        sets a bed's alarm limits, relearns its beat templates
    sessions            a random 256-bit token per login, held in memory only (a station
                        restart logs everyone out), sent as an HttpOnly, Secure, SameSite=Strict
                        cookie or as `Authorization: Bearer <token>`
    audit log           one JSON object per line, appended and flushed: who did what, when

Passwords are hashed with argon2-cffi's Argon2id defaults (RFC 9106's second recommended
profile: 3 passes, 64 MiB); the file holds no password. Hashing and checking take ~50 ms of
CPU, so the station runs them off its event loop.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from edge_ecg.ward.errors import WardError

log = logging.getLogger(__name__)

ROLES = ("viewer", "clinician")
# what each role may do: a clinician may do everything a viewer may
PERMISSIONS = {"viewer": frozenset({"view"}),
               "clinician": frozenset({"view", "acknowledge", "silence", "set_limits",
                                        "relearn"})}
MIN_PASSWORD = 10          # characters: NIST SP 800-63B asks for at least 8; a ward asks more
_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")


class AuthError(WardError):
    """A users file cannot be read or written, or a user cannot be added as asked."""


def _hasher():
    try:
        from argon2 import PasswordHasher
    except ImportError:
        raise AuthError("argon2-cffi is not installed: pip install edge-ecg[ward]") from None
    return PasswordHasher()


def check_name(name: str) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= 64 or not set(name) <= _NAME_OK:
        raise AuthError(f"user name {name!r}: 1-64 letters, digits or . _ - @")
    return name


@dataclass(frozen=True)
class User:
    name: str
    role: str

    def may(self, action: str) -> bool:
        return action in PERMISSIONS.get(self.role, ())


class Users:
    """The users file, read once at start (`reload` re-reads it)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._ph = _hasher()
        self.users: dict[str, dict] = {}
        self.reload()
        # a hash to check unknown names against, so a refusal takes as long for a name that
        # does not exist as for a wrong password (no user enumeration by timing)
        self._dummy = self._ph.hash(secrets.token_hex(16))

    def reload(self) -> None:
        self.users = read_users(self.path)
        if not self.users:
            raise AuthError(f"{self.path} holds no user: add one with `edge-ecg ward adduser "
                            f"--users {self.path} --name NAME --role clinician`")

    def verify(self, name: str, password: str) -> User | None:
        """The user when the password is theirs; None otherwise (blocking: ~50 ms)."""
        from argon2.exceptions import InvalidHashError, VerificationError

        rec = self.users.get(name) if isinstance(name, str) else None
        if not isinstance(password, str) or len(password) > 1024:
            return None
        try:
            self._ph.verify(rec["hash"] if rec else self._dummy, password)
        except (VerificationError, InvalidHashError):
            return None
        if rec is None or rec.get("role") not in ROLES:
            return None
        return User(name, rec["role"])


def read_users(path: str | Path) -> dict[str, dict]:
    path = Path(path)
    if not path.exists():
        raise AuthError(f"no users file at {path}: create it with `edge-ecg ward adduser "
                        f"--users {path} --name NAME --role clinician`")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        users = doc["users"]
        if not isinstance(users, dict):
            raise TypeError("'users' is not an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise AuthError(f"{path} is not an edge-ecg users file ({exc}); recreate it with "
                        "`edge-ecg ward adduser`") from None
    bad = [n for n, u in users.items() if not isinstance(u, dict) or u.get("role") not in ROLES
           or not str(u.get("hash", "")).startswith("$argon2")]
    if bad:
        raise AuthError(f"{path}: users {bad} have no role in {ROLES} or no Argon2 hash; "
                        "re-add them with `edge-ecg ward adduser`")
    return users


def add_user(path: str | Path, name: str, password: str, role: str) -> None:
    """Add or replace a user (the file is rewritten atomically, mode 0600)."""
    check_name(name)
    if role not in ROLES:
        raise AuthError(f"role {role!r}: one of {ROLES}")
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"the password must have at least {MIN_PASSWORD} characters")
    path = Path(path)
    users = read_users(path) if path.exists() else {}
    users[name] = {"role": role, "hash": _hasher().hash(password), "added": round(time.time())}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"format": 1, "users": users}, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


@dataclass
class Session:
    user: User
    expires: float


class Sessions:
    """Login sessions in memory, each with an absolute lifetime; bounded in number (the
    oldest goes first) so that logins in a loop cannot grow the station."""

    def __init__(self, lifetime_s: float = 12 * 3600.0, max_sessions: int = 1000) -> None:
        self.lifetime_s, self.max_sessions = lifetime_s, max_sessions
        self._s: dict[str, Session] = {}

    def new(self, user: User) -> str:
        now = time.time()
        for k in [k for k, s in self._s.items() if s.expires <= now]:
            del self._s[k]
        while len(self._s) >= self.max_sessions:
            del self._s[next(iter(self._s))]
        token = secrets.token_urlsafe(32)
        self._s[token] = Session(user, now + self.lifetime_s)
        return token

    def get(self, token: str | None) -> User | None:
        s = self._s.get(token) if isinstance(token, str) else None
        if s is None:
            return None
        if s.expires <= time.time():
            del self._s[token]
            return None
        return s.user

    def end(self, token: str | None) -> None:
        if isinstance(token, str):
            self._s.pop(token, None)


class LoginThrottle:
    """Refused logins counted per client address; after `limit` within `window_s` the address
    is refused without a password check until the window passes (slows guessing; bounded)."""

    def __init__(self, limit: int = 10, window_s: float = 300.0, max_clients: int = 10000):
        self.limit, self.window_s, self.max_clients = limit, window_s, max_clients
        self._fails: dict[str, list[float]] = {}
        self.refused = 0          # every refused login, wrong password or throttled
        self.throttled = 0

    def blocked(self, client: str) -> bool:
        now = time.time()
        f = [t for t in self._fails.get(client, ()) if t > now - self.window_s]
        if f:
            self._fails[client] = f
        else:
            self._fails.pop(client, None)
        return len(f) >= self.limit

    def fail(self, client: str) -> None:
        self.refused += 1
        if client not in self._fails and len(self._fails) >= self.max_clients:
            del self._fails[next(iter(self._fails))]
        self._fails.setdefault(client, []).append(time.time())


class AuditLog:
    """Append-only JSON Lines: one line per action, flushed and fsynced before the action is
    reported done (an acknowledgement the log lost would be one nobody can account for)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._f = os.fdopen(fd, "a", encoding="utf-8")

    def write(self, user: str, action: str, **detail) -> dict:
        rec = {"t": round(time.time(), 3),
               "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "user": user, "action": action, **detail}
        self._f.write(json.dumps(rec, separators=(",", ":"), allow_nan=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        return rec

    def close(self) -> None:
        self._f.close()
