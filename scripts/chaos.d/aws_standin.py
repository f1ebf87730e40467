"""A failing, recording stand-in for the `aws` CLI (scripts/chaos).

scripts/chaos copies this file as `aws` into a private bin directory, with a
first line `#!<absolute python> -SE` (the worker's sealed child has only the
CLI's own directory on PATH, so `/usr/bin/env python3` would not resolve),
and writes `aws.json` next to it:

  {"log": PATH, "fail_rate": 0.1, "min_ms": 50, "max_ms": 300}

Each call (except `aws --version`, the worker's start-up check, which answers
at once) sleeps 50-300 ms, then either fails (exit 255, an AWS-style error on
stderr, nothing "taken effect") with probability fail_rate, or succeeds (exit
0, `{}` on stdout). Either way it appends one JSON line to the log, with a
single write on an O_APPEND descriptor: argv, pid, ppid (the worker that ran
it), start and end time, exit code, ok. A call killed before it finished
(step timeout, the sealed child's process group killed) writes nothing, so
`ok: true` lines are exactly the calls that took effect.
"""

import json
import os
import random
import sys
import time


def main():
    argv = sys.argv[1:]
    if argv == ["--version"]:
        sys.stdout.write("aws-cli/chaos-standin Python/%d.%d\n" % sys.version_info[:2])
        return 0
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "aws.json")) as f:
        conf = json.load(f)
    start = time.time()
    ppid = os.getppid()
    rng = random.Random()  # seeded from os.urandom
    time.sleep(rng.uniform(conf.get("min_ms", 50), conf.get("max_ms", 300)) / 1000.0)
    fail = rng.random() < conf.get("fail_rate", 0.0)
    code = 255 if fail else 0
    record = {
        "argv": argv,
        "pid": os.getpid(),
        "ppid": ppid,
        "t0": round(start, 4),
        "t1": round(time.time(), 4),
        "exit": code,
        "ok": not fail,
        "profile": os.environ.get("AWS_PROFILE"),
    }
    line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    fd = os.open(conf["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    if fail:
        op = argv[1] if len(argv) > 1 else "unknown"
        sys.stderr.write(
            "\nAn error occurred (ServiceUnavailable) when calling the %s operation "
            "(reached max retries: 2): chaos stand-in: injected failure\n" % op
        )
        return code
    sys.stdout.write("{}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
