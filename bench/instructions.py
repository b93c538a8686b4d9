#!/usr/bin/env python3
"""Instructions per request, counted by valgrind's callgrind: a measure of the server's own CPU
work that, unlike req/s on a shared 2-core VM, is the same from run to run (timings of one
binary varied by 30 % between runs in the eighth session; these counts by under 1 %).

Seeds a server as bench/run.py does (1,000 users), restarts it under callgrind with
instrumentation off, sends warm-up requests, then counts only the measured ones, one after
another on one keep-alive connection. Kernel work (TCP) is not counted.

    python3 bench/instructions.py --binary target/release/seatbridge --mode get --requests 1000
    python3 bench/instructions.py --binary A --binary B --mode post --backend postgres

Needs valgrind (apt-get install valgrind).
"""

import argparse
import glob
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402

USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def send(conn, token, mode, i, size):
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    if mode == "get":
        conn.request("GET", f"/scim/v2/Users/00000000-0000-7000-8000-{random.randint(1, size):012d}",
                     headers=headers)
    elif mode == "filter_user":
        conn.request("GET", f"/scim/v2/Users?filter=userName%20eq%20%22u{random.randint(1, size)}%22",
                     headers=headers)
    elif mode == "list":
        conn.request("GET", "/scim/v2/Users?count=100", headers=headers)
    elif mode == "post":
        name = f"counted-{i}"
        body = {"schemas": [USER], "userName": name, "active": True,
                "name": {"givenName": "New", "familyName": "User"},
                "emails": [{"value": f"{name}@example.com", "primary": True, "type": "work"}]}
        conn.request("POST", "/scim/v2/Users", body=json.dumps(body), headers=headers)
    else:
        sys.exit(f"unknown mode {mode}")
    resp = conn.getresponse()
    resp.read()
    if resp.status not in (200, 201):
        raise RuntimeError(f"{mode} answered {resp.status}")


def count(binary, mode, backend, requests, size, warmup, keep=None):
    with tempfile.TemporaryDirectory(prefix="sb-instr-") as work:
        sb = bench.Seatbridge(binary, backend, size, work)
        sb.seed()
        sb.server.stop()
        out = os.path.join(work, "callgrind.out")
        sb.server.cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                         "--instr-atstart=no", binary, "serve"]
        sb.server.start()
        pid = str(sb.server.proc.pid)
        host, port = sb.base.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        random.seed(1)
        for i in range(warmup):
            send(conn, sb.token, mode, i, size)
        subprocess.run(["callgrind_control", "-i", "on", pid], capture_output=True, check=True)
        for i in range(warmup, warmup + requests):
            send(conn, sb.token, mode, i, size)
        subprocess.run(["callgrind_control", "-i", "off", pid], capture_output=True, check=True)
        subprocess.run(["callgrind_control", "-d", pid], capture_output=True, check=True)
        conn.close()
        sb.server.stop()
        if backend == "postgres":
            bench.psql(bench.pg_url(), f"DROP DATABASE IF EXISTS {sb.db_name} WITH (FORCE)")
        if keep:
            os.makedirs(keep, exist_ok=True)
            for path in glob.glob(out + "*"):
                shutil.copy(path, keep)
        total = 0
        for path in glob.glob(out + "*"):
            with open(path) as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("totals:")), 0)
        return total / requests


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", action="append", required=True, help="a seatbridge binary; repeat to compare")
    p.add_argument("--mode", default="get", choices=["get", "filter_user", "list", "post"])
    p.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--keep", metavar="DIR", help="copy the callgrind output here, for callgrind_annotate")
    args = p.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("valgrind is not installed: apt-get install valgrind")
    for binary in args.binary:
        n = count(binary, args.mode, args.backend, args.requests, args.users, args.warmup, args.keep)
        print(f"{binary}: {args.mode} on {args.backend}: {n:,.0f} instructions per request "
              f"({args.requests} requests)", flush=True)


if __name__ == "__main__":
    main()
