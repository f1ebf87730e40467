#!/usr/bin/env python3
"""A fault-injecting HTTP/1.1 reverse proxy for the chaos run (scripts/chaos).

It stands between the workers and moto for SQS and DynamoDB. Each request is
routed by service (the `X-Amz-Target` header, else the SigV4 credential scope
in `Authorization`) to that service's upstream, and with probability
`--fault-rate` it gets one fault, picked by weight:

  500          answer 500 (an AWS-shaped InternalFailure) without forwarding
  stall        sleep 2-4 s (`--stall MIN-MAX`), then forward normally
  drop_before  close the connection without forwarding and without answering
  drop_after   forward to moto (the request takes effect), read moto's answer,
               then close the connection without answering

Every request is logged as one JSON line (`--log`): time, service, action
(`X-Amz-Target` suffix for the JSON protocols, `Action=` for the query
protocol), fault, status and duration. The first stdout line is
`listening PORT`; nothing else goes to stdout.

Standard library only; runs under any Python 3.8+.
"""

import argparse
import http.client
import json
import random
import re
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("500", "stall", "drop_before", "drop_after")
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "date",
    "server",
}


def parse_range(text):
    """`2-4` -> (2.0, 4.0); `3` -> (3.0, 3.0)."""
    lo, _, hi = text.partition("-")
    lo = float(lo)
    hi = float(hi) if hi else lo
    if hi < lo or lo < 0:
        raise argparse.ArgumentTypeError(f"bad range {text!r}")
    return lo, hi


def parse_weights(text):
    """`500=1,stall=1,drop_before=0.5,drop_after=0.5` -> dict."""
    weights = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in FAULTS:
            raise argparse.ArgumentTypeError(f"unknown fault {name!r} (one of {', '.join(FAULTS)})")
        weights[name] = float(value)
    if sum(weights.values()) <= 0:
        raise argparse.ArgumentTypeError("fault weights sum to 0")
    return weights


def classify(headers, body):
    """(service, action) of one AWS request."""
    target = headers.get("X-Amz-Target", "")
    if target:
        prefix, _, action = target.rpartition(".")
        low = prefix.lower()
        if low.startswith("dynamodb"):
            return "dynamodb", action
        if low.startswith("amazonsqs"):
            return "sqs", action
        return low or "unknown", action
    service = "unknown"
    auth = headers.get("Authorization", "")
    marker = "Credential="
    if marker in auth:
        scope = auth.split(marker, 1)[1].split(",", 1)[0].split("/")
        if len(scope) >= 4:
            service = scope[3]
    action = ""
    ctype = headers.get("Content-Type", "")
    if body and "x-www-form-urlencoded" in ctype:
        try:
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
            action = form.get("Action", [""])[0]
        except ValueError:
            pass
    return service, action


SQS_TRACKED = ("ReceiveMessage", "DeleteMessage", "DeleteMessageBatch")
ALERT_ID = re.compile(r'"alertId":"([^"]+)"')


def track_sqs(action, body, data):
    """For forensics: which receipt handle went with which alert (JSON protocol only).

    ReceiveMessage: `got` = [[alertId or message id, receipt handle]] from moto's answer
    (also when the answer was dropped); deletes: `handles` = the receipt handles asked for.
    """
    try:
        if action == "ReceiveMessage":
            if not data:
                return {}
            msgs = json.loads(data).get("Messages", [])
            got = []
            for m in msgs:
                found = ALERT_ID.search(m.get("Body", ""))
                got.append([found.group(1) if found else m.get("MessageId"), m.get("ReceiptHandle")])
            return {"got": got}
        req = json.loads(body or b"{}")
        if action == "DeleteMessage":
            return {"handles": [req.get("ReceiptHandle")]}
        return {"handles": [e.get("ReceiptHandle") for e in req.get("Entries", [])],
                "answer": (data or b"")[:2000].decode("utf-8", "replace") if data else None}
    except (ValueError, AttributeError, TypeError):
        return {}


class Chaos:
    """The shared fault decision, upstreams and log."""

    def __init__(self, args):
        self.rate = args.fault_rate
        self.weights = args.weights
        self.stall = args.stall
        self.upstreams = args.upstreams
        self.services = set(args.fault_services.split(",")) if args.fault_services else None
        self.rng = random.Random(args.seed)
        self.lock = threading.Lock()
        self.log = open(args.log, "a", buffering=1) if args.log else None
        self.log_lock = threading.Lock()

    def decide(self, service):
        """None (forward untouched) or one of FAULTS, and the stall length."""
        with self.lock:
            roll = self.rng.random()
            pick = self.rng.random() * sum(self.weights.values())
            stall = self.rng.uniform(*self.stall)
        if self.services is not None and service not in self.services:
            return None, 0.0
        if roll >= self.rate:
            return None, 0.0
        for name in FAULTS:
            w = self.weights.get(name, 0.0)
            if pick < w:
                return name, stall
            pick -= w
        return FAULTS[-1], stall

    def upstream(self, service):
        return self.upstreams.get(service) or self.upstreams.get("default")

    def record(self, **fields):
        if self.log is None:
            return
        line = json.dumps(fields, separators=(",", ":"))
        with self.log_lock:
            self.log.write(line + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "chaos-proxy"
    chaos = None  # set by main

    def log_message(self, fmt, *args):  # quiet
        pass

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size_line = self.rfile.readline()
                if not size_line:
                    raise ConnectionError("eof in chunked body")
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # trailers up to the empty line
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def drop(self):
        """Close the client's connection without an answer."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def forward(self, service, body):
        host, port = self.chaos.upstream(service)
        conn = http.client.HTTPConnection(host, port, timeout=120)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["Content-Length"] = str(len(body))
            headers["Connection"] = "close"
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.reason, resp.getheaders(), data
        finally:
            conn.close()

    def answer(self, status, reason, headers, data):
        self.send_response(status, reason)
        for k, v in headers:
            if k.lower() not in HOP_BY_HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def handle_any(self):
        start = time.time()
        try:
            body = self.read_body()
        except (ConnectionError, ValueError, OSError):
            self.close_connection = True
            return
        service, action = classify(self.headers, body)
        fault, stall = self.chaos.decide(service)
        status = None
        try:
            if fault == "500":
                if self.headers.get("X-Amz-Target"):
                    data = json.dumps(
                        {"__type": "InternalFailure", "message": "chaos proxy: injected 500"}
                    ).encode()
                    ctype = "application/x-amz-json-1.0"
                else:
                    data = (
                        b"<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code>"
                        b"<Message>chaos proxy: injected 500</Message></Error>"
                        b"<RequestId>chaos</RequestId></ErrorResponse>"
                    )
                    ctype = "text/xml"
                status = 500
                self.answer(500, "Internal Server Error", [("Content-Type", ctype)], data)
            elif fault == "drop_before":
                self.drop()
            else:
                if fault == "stall":
                    time.sleep(stall)
                try:
                    status, reason, headers, data = self.forward(service, body)
                except (OSError, http.client.HTTPException) as e:
                    # moto itself failed: tell the client as a 502, mark it.
                    status = 502
                    self.answer(502, "Bad Gateway", [("Content-Type", "text/plain")],
                                f"chaos proxy: upstream error {e}".encode())
                    fault = (fault or "") + "+upstream_error"
                else:
                    if fault == "drop_after":
                        self.drop()
                    else:
                        self.answer(status, reason, headers, data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            extra = {}
            if service == "sqs" and action in SQS_TRACKED:
                extra = track_sqs(action, body, locals().get("data"))
            self.chaos.record(
                t=round(start, 3),
                svc=service,
                action=action,
                fault=fault or "none",
                status=status,
                ms=int((time.time() - start) * 1000),
                **extra,
            )

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def parse_upstream(text):
    name, _, url = text.partition("=")
    if not url:
        name, url = "default", text
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "http" or not parsed.hostname or not parsed.port:
        raise argparse.ArgumentTypeError(f"upstream must be [SERVICE=]http://HOST:PORT, not {text!r}")
    return name, (parsed.hostname, parsed.port)


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0: any free port)")
    p.add_argument("--upstream", action="append", type=parse_upstream, required=True,
                   help="[SERVICE=]http://HOST:PORT (repeatable; SERVICE sqs, dynamodb, default)")
    p.add_argument("--fault-rate", type=float, default=0.15)
    p.add_argument("--weights", type=parse_weights,
                   default=parse_weights("500=1,stall=1,drop_before=0.5,drop_after=0.5"),
                   help="relative weights of the faults (default 500=1,stall=1,drop_before=0.5,drop_after=0.5)")
    p.add_argument("--stall", type=parse_range, default=(2.0, 4.0), help="stall seconds MIN-MAX")
    p.add_argument("--fault-services", default="", help="only these services get faults (comma list)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--log", default=None, help="append one JSON line per request here")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.upstreams = dict(args.upstream)
    host, _, port = args.listen.rpartition(":")
    Handler.chaos = Chaos(args)
    server = Server((host or "127.0.0.1", int(port)), Handler)
    print(f"listening {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
