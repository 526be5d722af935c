"""The central station's web side, on aiohttp: HTTPS, a login, roles, pushed diffs.

    GET  /login                 the login page (public, as are /static/* and /healthz)
    POST /login                 {"user", "password"} -> a session cookie (HttpOnly, Secure,
                                SameSite=Strict) and {"user", "role", "token"}
    POST /logout
    GET  /                      the station page (logged in; else 303 to /login)
    GET  /api/whoami            who is logged in, with what role
    GET  /api/ward              every tile, the ward's counters, the model (JSON)
    GET  /api/beds/<unit.bed>   one tile; 404 with the reason for an unknown bed
    GET  /api/stream            server-sent events: `full` (the state) once, then `diff`
                                every push tick (per bed, only what changed)
    POST /api/beds/<key>/alarms/<code>/ack      clinician: acknowledge an active alarm
    POST /api/beds/<key>/silence {"seconds"}    clinician: silence the bed's alarms
    POST /api/beds/<key>/limits {"limits": {...}} | {"reset": true}
                                clinician: the bed's own alarm limits (bed_limits.py),
                                also sent to the bed's worker (commands.py)
    POST /api/beds/<key>/relearn                clinician: the bed's worker relearns the
                                patient's beat templates (commands.py); 503 if not sent

Limits, so that no client holds up another: a request's headers must arrive within
`header_timeout_s` (aiohttp's keep-alive timer runs from the connection's start until the
first request is parsed; a client sending a header a byte a second is cut off then, while
the others are served by the same loop meanwhile), the TLS handshake within the same time,
each header line and field at most 8190 bytes (a 100 kB header gets 400, not an exception),
at most 64 headers, bodies at most `max_body_bytes`, at most `max_streams` live pages.
Every JSON leaves through `station.dumps` (non-finite numbers become null, allow_nan=False).
Secrets: the TLS key is made at first start in the state dir (mode 0600), never shipped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import os
import socket
import ssl
import time
from pathlib import Path

from edge_ecg.ward import auth
from edge_ecg.ward.errors import WardError
from edge_ecg.ward.finite_json import dumps
from edge_ecg.ward.station_page import asset

log = logging.getLogger(__name__)

COOKIE = "edge_ecg_session"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
MAX_LOGIN_QUEUE = 16       # password checks waiting at once (each holds 64 MiB for ~50 ms)


class TlsError(WardError):
    """The station's certificate or key cannot be loaded or made."""


def self_signed(tls_dir: Path, host: str) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for this station (localhost, loopback, this host's
    name and the address it listens on), made once into `tls_dir`; the key is mode 0600."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    cert_p, key_p = tls_dir / "station.crt", tls_dir / "station.key"
    if cert_p.exists() and key_p.exists():
        return cert_p, key_p
    tls_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edge-ecg central station")])
    alt: list = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                 x509.IPAddress(ipaddress.ip_address("::1"))]
    hostname = socket.gethostname()
    if hostname and hostname != "localhost":
        alt.append(x509.DNSName(hostname))
    try:
        ip = ipaddress.ip_address(host)
        if not ip.is_unspecified and not ip.is_loopback:
            alt.append(x509.IPAddress(ip))
    except ValueError:
        if host and host != "localhost":
            alt.append(x509.DNSName(host))
    now = dt.datetime.now(dt.timezone.utc)
    pub = key.public_key()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(pub)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            # 397 days: what browsers accept for a server certificate's lifetime
            .not_valid_after(now + dt.timedelta(days=397))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(pub),
                           critical=False)
            .sign(key, hashes.SHA256()))
    fd = os.open(key_p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    cert_p.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    log.info("made a self-signed certificate for the station: %s", cert_p)
    return cert_p, key_p


def tls_context(opt) -> ssl.SSLContext | None:
    if not opt.tls:
        return None
    if bool(opt.tls_cert) != bool(opt.tls_key):
        raise TlsError("pass both --tls-cert and --tls-key, or neither (a self-signed pair is "
                       "then made in the state dir)")
    if opt.tls_cert:
        cert, key = Path(opt.tls_cert), Path(opt.tls_key)
    else:
        cert, key = self_signed(Path(opt.state_dir) / "tls", opt.host)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"cannot load the station's certificate {cert} / key {key}: {exc}") \
            from None
    return ctx


class _BadRequests(logging.Filter):
    """aiohttp answers a malformed request (a 100 kB header, a broken request line) with 400
    and then logs it at ERROR with a traceback: anyone could fill the log. Here each is
    counted and logged as one WARNING line naming the client and the reason."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            self.count += 1
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            first = record.getMessage()
            record.msg = "%s: refused (%s %s)"
            record.args = (first, exc.code, str(exc.message).splitlines()[0][:120])
            record.exc_info = record.exc_text = None
        return True


class Web:
    """The station's HTTPS server. `start()` listens; `close()` stops."""

    def __init__(self, station) -> None:
        self.st = station
        opt = station.opt
        self.users = auth.Users(opt.users_path)            # AuthError when absent or empty
        self.sessions = auth.Sessions(opt.session_s)
        self.throttle = auth.LoginThrottle()
        self.audit = auth.AuditLog(Path(opt.state_dir) / "audit.log")
        self.ssl = tls_context(opt)
        self.port = opt.port
        self.streams = 0
        self.refused_streams = 0
        self._login_sem = asyncio.Semaphore(2)
        self._login_waiting = 0
        self._runner = None
        self._server = None
        self._http_log = log.getChild("http")
        self._bad = _BadRequests()
        self._http_log.addFilter(self._bad)

    def stats(self) -> dict:
        return {"refused_logins": self.throttle.refused, "throttled_logins":
                self.throttle.throttled, "streams": self.streams,
                "refused_streams": self.refused_streams, "bad_requests": self._bad.count,
                "dropped_streams": self.st.dropped_streams}

    # --- server --------------------------------------------------------------------------
    def app(self):
        from aiohttp import web

        app = web.Application(client_max_size=self.st.opt.max_body_bytes)
        app.router.add_get("/", self.index)
        app.router.add_get("/login", self.login_page)
        app.router.add_post("/login", self.login)
        app.router.add_post("/logout", self.logout)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/static/{name}", self.static)
        app.router.add_get("/api/whoami", self.whoami)
        app.router.add_get("/api/ward", self.ward)
        app.router.add_get("/api/stream", self.stream)
        app.router.add_get("/api/beds/{key}", self.bed)
        app.router.add_post("/api/beds/{key}/alarms/{code}/ack", self.ack)
        app.router.add_post("/api/beds/{key}/silence", self.silence)
        app.router.add_post("/api/beds/{key}/limits", self.limits)
        app.router.add_post("/api/beds/{key}/relearn", self.relearn)
        app.on_response_prepare.append(self._headers)
        return app

    async def start(self) -> None:
        from aiohttp import web

        opt = self.st.opt
        self._runner = web.AppRunner(
            self.app(), handle_signals=False, access_log=None,
            keepalive_timeout=opt.header_timeout_s, max_line_size=8190, max_field_size=8190,
            max_headers=64, logger=self._http_log)
        await self._runner.setup()
        loop = asyncio.get_running_loop()
        kw = {"ssl_handshake_timeout": opt.header_timeout_s} if self.ssl else {}
        try:
            self._server = await loop.create_server(self._runner.server, opt.host, opt.port,
                                                    ssl=self.ssl, backlog=128, **kw)
        except OSError as exc:
            await self._runner.cleanup()
            raise WardError(f"the station cannot listen on {opt.host}:{opt.port}: "
                            f"{exc.strerror}; pick another --port") from None
        self.port = self._server.sockets[0].getsockname()[1]
        scheme = "https" if self.ssl else "http"
        log.info("station at %s://%s:%d/", scheme, opt.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._runner is not None:
            await self._runner.shutdown()
            await self._runner.cleanup()
        self.audit.close()
        self._http_log.removeFilter(self._bad)

    async def _headers(self, request, resp) -> None:
        h = resp.headers
        h.setdefault("Content-Security-Policy", CSP)
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "no-referrer")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Cache-Control", "no-store")
        if self.ssl is not None:
            h.setdefault("Strict-Transport-Security", "max-age=31536000")

    # --- helpers -------------------------------------------------------------------------
    @staticmethod
    def _json(obj, status: int = 200):
        from aiohttp import web

        return web.Response(text=dumps(obj), status=status, content_type="application/json")

    def _token(self, request) -> str | None:
        h = request.headers.get("Authorization", "")
        if h.startswith("Bearer "):
            return h[7:].strip()
        return request.cookies.get(COOKIE)

    def _user(self, request) -> auth.User | None:
        return self.sessions.get(self._token(request))

    def _require(self, request, action: str) -> auth.User:
        from aiohttp import web

        u = self._user(request)
        if u is None:
            raise web.HTTPUnauthorized(text=dumps({"error": "log in first: POST /login with "
                                                   "{\"user\", \"password\"}"}),
                                       content_type="application/json")
        if not u.may(action):
            raise web.HTTPForbidden(text=dumps({"error": f"{u.name} ({u.role}) may not "
                                                f"{action}: a clinician may"}),
                                    content_type="application/json")
        return u

    async def _body(self, request) -> dict:
        """A JSON object body, from this site only: a cross-site form cannot send
        application/json, and a cross-site Origin is refused (with the SameSite cookie,
        no other page can act in a clinician's name)."""
        from aiohttp import web

        origin = request.headers.get("Origin")
        if origin is not None and origin.split("://", 1)[-1] != request.host:
            raise web.HTTPForbidden(text=dumps({"error": f"cross-site request from {origin}"}),
                                    content_type="application/json")
        if request.content_type != "application/json":
            raise web.HTTPUnsupportedMediaType(
                text=dumps({"error": "send Content-Type: application/json"}),
                content_type="application/json")
        try:
            body = await request.json()
        except ValueError:
            body = None
        if body is None and request.can_read_body is False:
            body = {}
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text=dumps({"error": "the body must be a JSON object"}),
                                     content_type="application/json")
        return body

    # --- pages ---------------------------------------------------------------------------
    async def healthz(self, request):
        return self._json({"ok": True})

    async def static(self, request):
        from aiohttp import web

        a = asset(request.match_info["name"])
        if a is None:
            raise web.HTTPNotFound(text="no such asset")
        body, ctype = a
        return web.Response(body=body, content_type=ctype,
                            headers={"Cache-Control": "no-cache"})

    async def login_page(self, request):
        from aiohttp import web

        body, ctype = asset("login.html")
        return web.Response(body=body, content_type=ctype)

    async def index(self, request):
        from aiohttp import web

        if self._user(request) is None:
            raise web.HTTPSeeOther("/login")
        body, ctype = asset("station.html")
        return web.Response(body=body, content_type=ctype)

    async def login(self, request):

        body = await self._body(request)
        name, pw = body.get("user"), body.get("password")
        client = request.remote or "?"
        shown = str(name)[:64]
        if self.throttle.blocked(client):
            self.throttle.fail(client)
            self.throttle.throttled += 1
            log.warning("refused login for %r from %s: too many refusals (%d refused so far)",
                        shown, client, self.throttle.refused)
            self.audit.write(shown, "login_refused", client=client, reason="throttled")
            return self._json({"error": "too many refused logins from this address; wait "
                               f"{self.throttle.window_s / 60:.0f} minutes"}, 429)
        if self._login_waiting >= MAX_LOGIN_QUEUE:
            return self._json({"error": "busy: too many logins at once; retry"}, 503)
        self._login_waiting += 1
        try:
            async with self._login_sem:
                user = await asyncio.get_running_loop().run_in_executor(
                    None, self.users.verify, name, pw)
        finally:
            self._login_waiting -= 1
        if user is None:
            self.throttle.fail(client)
            log.warning("refused login for %r from %s (%d refused so far)", shown, client,
                        self.throttle.refused)
            self.audit.write(shown, "login_refused", client=client, reason="wrong user or "
                             "password")
            return self._json({"error": "wrong user name or password"}, 401)
        token = self.sessions.new(user)
        self.audit.write(user.name, "login", client=client, role=user.role)
        resp = self._json({"user": user.name, "role": user.role, "token": token})
        resp.set_cookie(COOKIE, token, httponly=True, secure=True, samesite="Strict",
                        path="/", max_age=int(self.st.opt.session_s))
        return resp

    async def logout(self, request):
        u = self._user(request)
        self.sessions.end(self._token(request))
        if u is not None:
            self.audit.write(u.name, "logout", client=request.remote or "?")
        resp = self._json({"ok": True})
        resp.del_cookie(COOKIE, path="/")
        return resp

    # --- api -----------------------------------------------------------------------------
    async def whoami(self, request):
        u = self._require(request, "view")
        return self._json({"user": u.name, "role": u.role,
                           "may": sorted(auth.PERMISSIONS[u.role])})

    async def ward(self, request):
        self._require(request, "view")
        return self._json(self.st.state())

    async def bed(self, request):
        self._require(request, "view")
        key = request.match_info["key"]
        t = self.st.tiles.get(key)
        if t is None:
            return self._json({"error": f"unknown bed {key[:100]!r}: no publisher registered "
                               f"it; known: {sorted(self.st.tiles)[:200]}"}, 404)
        return self._json(t.to_json(time.time()))

    async def ack(self, request):
        u = self._require(request, "acknowledge")
        await self._body(request)
        key, code = request.match_info["key"], request.match_info["code"]
        try:
            rec = self.st.acknowledge(key, code, u.name)
        except KeyError as exc:
            return self._json({"error": str(exc.args[0])}, 404)
        except LookupError as exc:
            return self._json({"error": str(exc)}, 409)
        self.audit.write(u.name, "acknowledge", bed=key, alarm=code, text=rec["text"],
                         client=request.remote or "?")
        return self._json(rec)

    async def silence(self, request):
        u = self._require(request, "silence")
        body = await self._body(request)
        key = request.match_info["key"]
        try:
            rec = self.st.silence(key, body.get("seconds"), u.name)
        except KeyError as exc:
            return self._json({"error": str(exc.args[0])}, 404)
        except (ValueError, TypeError) as exc:
            return self._json({"error": str(exc)}, 400)
        self.audit.write(u.name, "silence", bed=key, seconds=rec["seconds"],
                         client=request.remote or "?")
        return self._json(rec)

    async def limits(self, request):
        from edge_ecg.runtime.alarm_settings import AlarmSettingsError

        u = self._require(request, "set_limits")
        body = await self._body(request)
        key = request.match_info["key"]
        reset = body.get("reset") is True
        if not reset and not isinstance(body.get("limits"), dict):
            return self._json({"error": "send {\"limits\": {\"tachy_bpm\": 130, ...}} or "
                               "{\"reset\": true}"}, 400)
        try:
            rec = self.st.set_limits(key, body.get("limits"), u.name, reset=reset)
        except KeyError as exc:
            return self._json({"error": str(exc.args[0])}, 404)
        except AlarmSettingsError as exc:
            return self._json({"error": str(exc)}, 400)
        # the worker runs VF's timing from the signal: it gets the same limits, in the bed's
        # stream; the station's own engine already runs them whatever the bus does
        rec["worker"] = await self.st.send_limits(key, u.name)
        self.audit.write(u.name, "set_limits", bed=key,
                         **({"reset": True} if reset else {"changes": body["limits"]}),
                         alarm_limits=rec["alarm_limits"], worker=rec["worker"],
                         client=request.remote or "?")
        return self._json(rec)

    async def relearn(self, request):
        from edge_ecg.ward.commands import CommandNotSent

        u = self._require(request, "relearn")
        await self._body(request)
        key = request.match_info["key"]
        try:
            rec = await self.st.relearn(key, u.name)
        except KeyError as exc:
            return self._json({"error": str(exc.args[0])}, 404)
        except CommandNotSent as exc:
            self.audit.write(u.name, "relearn_not_sent", bed=key, error=str(exc),
                             client=request.remote or "?")
            return self._json({"error": f"{exc}; send it again"}, 503)
        self.audit.write(u.name, "relearn", bed=key, stream_seq=rec["stream_seq"],
                         client=request.remote or "?")
        return self._json(rec)

    async def stream(self, request):
        from aiohttp import web

        self._require(request, "view")
        token = self._token(request)
        if self.streams >= self.st.opt.max_streams:
            self.refused_streams += 1
            return self._json({"error": f"{self.streams} pages are live, the most this "
                               "station serves; close one"}, 503)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        q, full = self.st.subscribe()
        self.streams += 1
        try:
            await resp.write(b"event: full\ndata: " + dumps(full).encode() + b"\n\n")
            while True:
                try:
                    data = await asyncio.wait_for(q.get(), 15.0)
                except asyncio.TimeoutError:
                    await resp.write(b": keep-alive\n\n")
                    continue
                if data is None or self.sessions.get(token) is None:
                    break           # station stopping, page too slow, or logged out
                await resp.write(b"event: diff\ndata: " + data.encode() + b"\n\n")
        except ConnectionError:         # the page went away
            pass
        finally:
            self.st.unsubscribe(q)
            self.streams -= 1
        return resp
