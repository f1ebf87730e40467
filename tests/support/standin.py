#!/usr/bin/env python3
"""Recording stand-in for aws / az / gcloud (a test double, never the executor).

Appends one JSON line per invocation to the file named by REMEDIATION_STANDIN_LOG:
{"argv": [...], "env": {NAME: value-or-null, ...}, "pid": N}. Then, if asked through its
environment: writes STANDIN_STDOUT / STANDIN_STDERR (repeated STANDIN_REPEAT times),
sleeps STANDIN_SLEEP seconds, and exits with STANDIN_EXIT_CODE (default 0).
"""
import json
import os
import sys
import time

WATCHED = [
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
]

log = os.environ.get("REMEDIATION_STANDIN_LOG")
if not log:
    sys.stderr.write("stand-in: REMEDIATION_STANDIN_LOG is not set\n")
    sys.exit(97)
record = {
    "argv": [os.path.basename(sys.argv[0])] + sys.argv[1:],
    "env": {name: os.environ.get(name) for name in WATCHED},
    "pid": os.getpid(),
}
with open(log, "a", encoding="utf-8") as f:
    f.write(json.dumps(record) + "\n")
repeat = int(os.environ.get("STANDIN_REPEAT", "1"))
if "STANDIN_STDOUT" in os.environ:
    sys.stdout.write(os.environ["STANDIN_STDOUT"] * repeat)
if "STANDIN_STDERR" in os.environ:
    sys.stderr.write(os.environ["STANDIN_STDERR"] * repeat)
sys.stdout.flush()
sys.stderr.flush()
time.sleep(float(os.environ.get("STANDIN_SLEEP", "0")))
sys.exit(int(os.environ.get("STANDIN_EXIT_CODE", "0")))
