#!/usr/bin/env python3
"""A counting HTTP reverse proxy on loopback, in front of moto (scripts/bench-calls).

Every request is forwarded unchanged to the upstream (moto) and counted by
service and action, so a benchmark can tell how many AWS API calls a worker
made:

* JSON protocol: ``X-Amz-Target: AmazonSQS.ReceiveMessage`` -> ``sqs.ReceiveMessage``
* query protocol: ``Action=...`` in the form body or the query string, the
  service taken from the SigV4 credential scope (``.../us-east-1/iam/aws4_request``)
* anything else: ``<service>.<METHOD>``, or ``other.<METHOD>``

For SQS it also counts the messages a ``ReceiveMessage`` returned (and the
receives that returned none) and the entries of each ``*Batch`` call.

Control endpoints (not forwarded, not counted):

* ``GET /__counts``  -> ``{"counts": {"sqs.ReceiveMessage": 12, ...}, "total": N,
  "by_service": {...}, "sqs_received_messages": N, "sqs_empty_receives": N,
  "batch_entries": {"sqs.DeleteMessageBatch": N, ...}}``
* ``POST /__reset`` -> zeroes the counters

    counting_proxy.py --upstream http://127.0.0.1:5000 [--port 0]

Prints ``listening on PORT`` on stdout once it accepts connections. Threaded,
keep-alive on both sides (one upstream connection per proxy thread).
"""

import argparse
import http.client
import json
import re
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
}
SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/,\s]+/([^/,\s]+)/aws4_request")
TARGET_PREFIX = {"AmazonSQS": "sqs", "DynamoDB_20120810": "dynamodb"}


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.counts = {}
            self.received = 0
            self.empty_receives = 0
            self.batch_entries = {}

    def add(self, key, received=None, entries=None):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            if received is not None:
                self.received += received
                if received == 0:
                    self.empty_receives += 1
            if entries is not None:
                self.batch_entries[key] = self.batch_entries.get(key, 0) + entries

    def snapshot(self):
        with self.lock:
            by_service = {}
            for key, n in self.counts.items():
                service = key.split(".", 1)[0]
                by_service[service] = by_service.get(service, 0) + n
            return {
                "counts": dict(sorted(self.counts.items())),
                "total": sum(self.counts.values()),
                "by_service": dict(sorted(by_service.items())),
                "sqs_received_messages": self.received,
                "sqs_empty_receives": self.empty_receives,
                "batch_entries": dict(sorted(self.batch_entries.items())),
            }


def classify(method, path, headers, body):
    """(service, action, json_body_or_None, form_or_None) of one AWS request."""
    target = headers.get("X-Amz-Target")
    if target and "." in target:
        prefix, action = target.rsplit(".", 1)
        service = TARGET_PREFIX.get(prefix)
        if service is None:
            service = prefix.split("_", 1)[0].lower()
        try:
            parsed = json.loads(body) if body else {}
        except ValueError:
            parsed = None
        return service, action, parsed, None
    scope = SCOPE.search(headers.get("Authorization", ""))
    service = scope.group(1) if scope else None
    form = {}
    query = urllib.parse.urlsplit(path).query
    if query:
        form.update(urllib.parse.parse_qs(query))
    ctype = headers.get("Content-Type", "")
    if body and "x-www-form-urlencoded" in ctype:
        form.update(urllib.parse.parse_qs(body.decode("utf-8", "replace")))
    action = form.get("Action", [None])[0]
    if action:
        if service is None:
            service = "sqs" if "Queue" in action or "Message" in action else "other"
        return service, action, None, form
    return service or "other", method, None, None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "counting-proxy"

    def log_message(self, *args):  # quiet
        pass

    def _read_body(self):
        length = self.headers.get("Content-Length")
        if length is not None:
            return self.rfile.read(int(length)) if int(length) > 0 else b""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def _reply(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _upstream(self):
        local = self.server.local
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(
                self.server.upstream_host, self.server.upstream_port, timeout=120
            )
            local.conn = conn
        return conn

    def _forward(self):
        body = self._read_body()
        if self.path == "/__counts" and self.command == "GET":
            return self._reply(200, self.server.counters.snapshot())
        if self.path == "/__reset" and self.command == "POST":
            self.server.counters.reset()
            return self._reply(200, {"reset": True})

        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        status, reason, resp_headers, data = None, None, None, None
        for attempt in (1, 2):
            conn = self._upstream()
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                status, reason, resp_headers = resp.status, resp.reason, resp.getheaders()
                break
            except (http.client.HTTPException, OSError) as e:
                conn.close()
                self.server.local.conn = None
                if attempt == 2:
                    return self._reply(502, {"proxy_error": str(e)})

        if not self.path.startswith("/moto-api"):
            service, action, parsed, form = classify(self.command, self.path, self.headers, body)
            key = f"{service}.{action}"
            received = entries = None
            if service == "sqs" and action == "ReceiveMessage" and status == 200:
                received = count_received(data)
            if action.endswith("Batch"):
                if isinstance(parsed, dict) and isinstance(parsed.get("Entries"), list):
                    entries = len(parsed["Entries"])
                elif form is not None:
                    entries = len({k.split(".")[1] for k in form if k.count(".") >= 2 and k.split(".")[1].isdigit()})
            self.server.counters.add(key, received=received, entries=entries)

        self.send_response(status, reason)
        for k, v in resp_headers:
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def count_received(data):
    """Messages in a ReceiveMessage response (JSON or XML)."""
    text = data.decode("utf-8", "replace")
    if text.lstrip().startswith("{"):
        try:
            return len(json.loads(text).get("Messages", []) or [])
        except ValueError:
            return 0
    return text.count("<Message>")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream", required=True, help="http://HOST:PORT of moto")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    up = urllib.parse.urlsplit(args.upstream)
    server = Server((args.host, args.port), Handler)
    server.upstream_host = up.hostname
    server.upstream_port = up.port or 80
    server.counters = Counters()
    server.local = threading.local()
    print(f"listening on {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
