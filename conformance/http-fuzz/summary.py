#!/usr/bin/env python3
"""Prints the HTTP fuzz summary: requests by route and status class as the server counted them
(/metrics), the SCIM fuzzer's own counts by status, and the totals. Exits 1 on any 5xx the server
counted (apart from 501 on /scim/v2/Me, RFC 7644 §3.11) or any SCIM fuzzer failure."""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys

LINE = re.compile(r'^seatbridge_http_requests_total\{(?P<labels>.*)\}\s+(?P<value>[0-9.e+]+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def allowed(route: str, status: int) -> bool:
    return status == 501 and route.rstrip("/").endswith("/scim/v2/Me")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--scim", required=True)
    ap.add_argument("--schemathesis-requests", type=int, default=0)
    ap.add_argument("--schemathesis-seconds", type=int, default=0)
    ap.add_argument("--scim-seconds", type=int, default=0)
    ap.add_argument("--total-seconds", type=int, default=0)
    args = ap.parse_args()
    rc = 0

    rows: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
    server_5xx = []
    try:
        text = open(args.metrics).read()
    except OSError:
        text = ""
    for line in text.splitlines():
        m = LINE.match(line.strip())
        if not m:
            continue
        labels = dict(LABEL.findall(m["labels"]))
        n = int(float(m["value"]))
        route, method, status = labels.get("route", "?"), labels.get("method", "?"), int(labels.get("status", "0"))
        rows[(route, method)][f"{status // 100}xx"] += n
        if status >= 500:
            rows[(route, method)][str(status)] += n
            if not allowed(route, status):
                server_5xx.append((route, method, status, n))
    if not text:
        print("summary: no /metrics snapshot (server dead?)")
        rc = 1

    print("\nRequests by route and status class, as counted by the server (/metrics):")
    print(f"  {'route':<52} {'method':<8} {'2xx':>7} {'3xx':>6} {'4xx':>7} {'5xx':>5}  note")
    total = collections.Counter()
    for (route, method), c in sorted(rows.items()):
        total.update({k: v for k, v in c.items() if k.endswith("xx")})
        note = ", ".join(f"{k}: {v}" for k, v in c.items() if not k.endswith("xx"))
        print(f"  {route[:52]:<52} {method[:8]:<8} {c['2xx']:>7} {c['3xx']:>6} {c['4xx']:>7} {c['5xx']:>5}  {note}")
    server_total = sum(total.values())
    print(f"  {'all':<52} {'':<8} {total['2xx']:>7} {total['3xx']:>6} {total['4xx']:>7} {total['5xx']:>5}")

    scim = {}
    try:
        scim = json.load(open(args.scim))
    except (OSError, ValueError):
        print("summary: no SCIM fuzzer report")
        rc = 1
    if scim:
        print("\nSCIM fuzzer, by status as the client saw it:")
        print("  " + ", ".join(f"{k}: {v}" for k, v in scim["by_status"].items()))
        if scim.get("non_scim_error_bodies"):
            print("  4xx answers without a SCIM error body (not fatal; mostly rejected before routing):")
            for k, v in scim["non_scim_error_bodies"].items():
                print(f"    {v:>6}  {k}")
        if scim["failures"]:
            rc = 1

    scim_n = scim.get("requests", 0)
    print("\nTotals:")
    print(f"  schemathesis (admin OpenAPI):  {args.schemathesis_requests:>8} requests in {args.schemathesis_seconds} s")
    print(f"  SCIM fuzzer:                   {scim_n:>8} requests in {args.scim_seconds} s")
    print(f"  both:                          {args.schemathesis_requests + scim_n:>8} requests "
          f"(server counted {server_total} routed requests, canary and checks included); run {args.total_seconds} s")
    print(f"  5xx counted by the server:     {sum(n for *_, n in server_5xx)} (501 on /Me excluded)")
    print(f"  SCIM fuzzer failures:          {len(scim.get('failures', []))} "
          f"(connection errors: {scim.get('connection_errors', 0)})")
    for route, method, status, n in server_5xx:
        print(f"  SERVER ERROR: {method} {route} -> {status} x{n}")
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
