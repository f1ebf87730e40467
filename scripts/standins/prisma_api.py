#!/usr/bin/env python3
"""A Prisma Cloud API stand-in for benchmarks (scripts/bench-calls).

Implements the documented behaviour the remediation workers rely on, on
plain http on loopback:

* ``POST /login`` ``{"username", "password"[, "customerName"]}`` ->
  ``{"token": ..., "message": "login_successful"}`` (a JWT-shaped token that
  lives ``--token-ttl`` seconds; 401 ``login_failed`` for other credentials)
* ``GET /auth_token/extend`` (header ``x-redlock-auth``) -> a fresh token
* ``POST /api/v1/permission/alert/remediation`` ``{"alerts": [ids]}`` with
  header ``x-redlock-auth`` -> ``{"alertIdVsCliScript": {id: script},
  "cliDescription": ..., "scriptImpact": ...}``
* 401 ``token_expired`` (body and ``x-redlock-status``) for an expired
  token, 401 ``invalid_token`` for an unknown one
* a token-bucket rate limit on the remediation endpoint (``--rate`` per
  second, ``--burst`` capacity): every answer carries ``X-RateLimit-Remaining``,
  ``X-RateLimit-Replenish-Rate``, ``X-RateLimit-Burst-Capacity``,
  ``X-RateLimit-Requested-Tokens``; over the limit: 429 with ``Retry-After``
* a ``--error-rate`` fraction of remediation calls answered 500
* ``--latency-ms`` per remediation call (the real API is not instant)

The script for alert ID is the documented IAM remediation for user
``user-ID``: create a deny-all policy ``deny-user-ID`` and attach it
(``--script deny``, default), or ``--script detach``: detach
AdministratorAccess from the user. Commands are joined with ``--joiner``
(`` && ``: runs under a shell too).

Control endpoints: ``GET /__counts`` (remediation calls by status, ids per
answered call, logins, extends), ``POST /__reset``.

    prisma_api.py [--port 0] [--token-ttl 600] [--rate 5 --burst 10]
                  [--error-rate 0.02] [--latency-ms 200] [--seed N]

Prints ``listening on PORT`` on stdout once it accepts connections.
"""

import argparse
import base64
import json
import math
import random
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ACCOUNT = "123456789012"
REMEDIATION = "/api/v1/permission/alert/remediation"
DENY_DOC = '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}'


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def script_for(alert_id, kind, joiner, account):
    user = f"user-{alert_id}"
    if kind == "detach":
        return (
            f"aws iam detach-user-policy --user-name {user} "
            "--policy-arn arn:aws:iam::aws:policy/AdministratorAccess"
        )
    policy = f"deny-{user}"
    return (
        f"aws iam create-policy --policy-name {policy} --policy-document '{DENY_DOC}'"
        f"{joiner}aws iam attach-user-policy --user-name {user} "
        f"--policy-arn arn:aws:iam::{account}:policy/{policy}"
    )


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.rng = random.Random(args.seed)
        self.tokens = {}  # token -> expiry (monotonic)
        self.bucket = float(args.burst)
        self.bucket_at = time.monotonic()
        self.reset()

    def reset(self):
        with self.lock:
            self.calls = 0
            self.by_status = {}
            self.ids_answered = 0
            self.max_ids = 0
            self.distinct = set()
            self.logins = 0
            self.login_failures = 0
            self.extends = 0
            self.first_call = None
            self.last_call = None

    def issue(self):
        now = time.time()
        payload = {"sub": self.args.username, "iat": int(now), "exp": int(now + self.args.token_ttl),
                   "jti": secrets.token_hex(8)}
        token = ".".join([
            b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()),
            b64(json.dumps(payload).encode()),
            b64(secrets.token_bytes(32)),
        ])
        with self.lock:
            self.tokens[token] = time.monotonic() + self.args.token_ttl
        return token

    def check(self, token):
        """None if valid, else the 401 reason."""
        with self.lock:
            expiry = self.tokens.get(token or "")
        if expiry is None:
            return "invalid_token"
        if time.monotonic() >= expiry:
            return "token_expired"
        return None

    def take(self):
        """(allowed, remaining, retry_after_seconds) from the token bucket."""
        a = self.args
        with self.lock:
            now = time.monotonic()
            if a.rate > 0:
                self.bucket = min(float(a.burst), self.bucket + (now - self.bucket_at) * a.rate)
            self.bucket_at = now
            if a.rate <= 0:
                return True, a.burst, 0
            if self.bucket >= 1.0:
                self.bucket -= 1.0
                return True, int(self.bucket), 0
            return False, 0, (1.0 - self.bucket) / a.rate


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "prisma-api-standin"

    def log_message(self, *args):
        pass

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _reply(self, status, payload, headers=()):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _unauthorized(self, reason):
        status = json.dumps([{"i18nKey": reason, "severity": "error", "subject": None}])
        self._reply(401, {"message": reason}, [("x-redlock-status", status)])

    def do_GET(self):
        st = self.server.state
        if self.path == "/__counts":
            with st.lock:
                ok = st.by_status.get("200", 0)
                span = (st.last_call - st.first_call) if st.first_call else 0.0
                return self._reply(200, {
                    "remediation_calls": st.calls,
                    "by_status": dict(sorted(st.by_status.items())),
                    "ids_answered": st.ids_answered,
                    "distinct_ids": len(st.distinct),
                    "ids_per_answered_call": (st.ids_answered / ok) if ok else 0.0,
                    "max_ids_per_call": st.max_ids,
                    "login_calls": st.logins,
                    "login_failures": st.login_failures,
                    "extend_calls": st.extends,
                    "remediation_span_seconds": round(span, 3),
                })
        if self.path == "/auth_token/extend":
            self._body()
            with st.lock:
                st.extends += 1
            reason = st.check(self.headers.get("x-redlock-auth"))
            if reason:
                return self._unauthorized(reason)
            return self._reply(200, {"token": st.issue(), "message": "login_successful"})
        self._reply(404, {"message": "not_found"})

    def do_POST(self):
        st = self.server.state
        a = st.args
        raw = self._body()
        if self.path == "/__reset":
            st.reset()
            return self._reply(200, {"reset": True})
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return self._reply(400, {"message": "invalid_json"})
        if self.path == "/login":
            with st.lock:
                st.logins += 1
            if body.get("username") != a.username or body.get("password") != a.password:
                with st.lock:
                    st.login_failures += 1
                return self._unauthorized("login_failed")
            return self._reply(200, {"token": st.issue(), "message": "login_successful",
                                     "customerNames": [{"customerName": "bench", "tosAccepted": True}]})
        if self.path != REMEDIATION:
            return self._reply(404, {"message": "not_found"})

        now = time.monotonic()
        ids = body.get("alerts") if isinstance(body, dict) else None

        def done(status):
            with st.lock:
                st.calls += 1
                st.by_status[str(status)] = st.by_status.get(str(status), 0) + 1
                st.first_call = st.first_call or now
                st.last_call = now

        reason = st.check(self.headers.get("x-redlock-auth"))
        if reason:
            done(401)
            return self._unauthorized(reason)
        allowed, remaining, wait = st.take()
        limits = [
            ("X-RateLimit-Remaining", str(remaining)),
            ("X-RateLimit-Replenish-Rate", f"{a.rate:g}"),
            ("X-RateLimit-Burst-Capacity", str(a.burst)),
            ("X-RateLimit-Requested-Tokens", "1"),
        ]
        if not allowed:
            done(429)
            return self._reply(429, {"message": "rate_limit_exceeded"},
                               limits + [("Retry-After", str(max(1, math.ceil(wait))))])
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
            done(400)
            return self._reply(400, {"message": "invalid_alert_ids"}, limits)
        if a.latency_ms > 0:
            time.sleep(a.latency_ms / 1000.0)
        with st.lock:
            fail = st.rng.random() < a.error_rate
        if fail:
            done(500)
            return self._reply(500, {"message": "internal_error"}, limits)
        done(200)
        with st.lock:
            st.ids_answered += len(ids)
            st.max_ids = max(st.max_ids, len(ids))
            st.distinct.update(ids)
        scripts = {i: script_for(i, a.script, a.joiner, a.account) for i in ids}
        self._reply(200, {
            "alertIdVsCliScript": scripts,
            "cliDescription": "Denies everything to the risky IAM user." if a.script == "deny"
            else "Detaches AdministratorAccess from the IAM user.",
            "scriptImpact": None,
        }, limits)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--username", default="bench-access-key-id")
    ap.add_argument("--password", default="bench-secret-key")
    ap.add_argument("--token-ttl", type=float, default=600.0, help="token lifetime, seconds (10 min)")
    ap.add_argument("--rate", type=float, default=5.0, help="remediation calls per second (0: no limit)")
    ap.add_argument("--burst", type=int, default=10, help="rate-limit bucket capacity")
    ap.add_argument("--error-rate", type=float, default=0.0, help="fraction of remediation calls answered 500")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="delay before answering a remediation call")
    ap.add_argument("--script", choices=["deny", "detach"], default="deny")
    ap.add_argument("--joiner", default=" && ", help="between the commands of a script")
    ap.add_argument("--account", default=ACCOUNT)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    server = Server((args.host, args.port), Handler)
    server.state = State(args)
    print(f"listening on {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
