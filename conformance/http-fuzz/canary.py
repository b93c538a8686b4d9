#!/usr/bin/env python3
"""Canary resources for the HTTP fuzz run.

  canary.py seed   --base URL --token T --out FILE   creates users and groups in the canary tenant
                                                      and records every response body byte for byte
  canary.py verify --base URL --token T --in FILE    reads the same URLs again; exits 1 on any change

The canary tenant's token is never given to the fuzzers; they only know the canary ids, and aim
reads and writes at them with their own tenant's token (which must not reach them).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
SEATBRIDGE = "urn:ietf:params:scim:schemas:extension:seatbridge:2.0:User"


def call(base: str, token: str, method: str, path: str, body=None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/scim+json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def users() -> list[dict]:
    out = []
    for i in range(8):
        doc = {
            "schemas": [USER],
            "userName": f"canary{i}@example.com",
            "externalId": f"ext-canary-{i}",
            "active": i % 3 != 0,
            "displayName": f"Canary Ünïcødé {i} 😀",
            "name": {"givenName": f"Can{i}", "familyName": "Ary", "formatted": f"Can{i} Ary"},
            "emails": [{"value": f"canary{i}@example.com", "type": "work", "primary": True},
                       {"value": f"c{i}@home.example", "type": "home"}],
            "phoneNumbers": [{"value": f"+1-555-010{i}", "type": "work"}],
            "title": "Canary",
        }
        if i % 2 == 0:
            doc["schemas"].append(ENTERPRISE)
            doc[ENTERPRISE] = {"employeeNumber": str(1000 + i), "department": "Mines"}
        if i == 5:
            doc["schemas"].append(SEATBRIDGE)
            doc[SEATBRIDGE] = {"seatType": "default"}
        out.append(doc)
    return out


def seed(args) -> int:
    ids: dict[str, list[str]] = {"users": [], "groups": []}
    for doc in users():
        status, body = call(args.base, args.token, "POST", "/Users", doc)
        if status != 201:
            print(f"canary: creating {doc['userName']} answered {status}: {body[:300]!r}", file=sys.stderr)
            return 1
        ids["users"].append(json.loads(body)["id"])
    for g in range(3):
        members = [{"value": u} for u in ids["users"][g: g + 4]]
        doc = {"schemas": [GROUP], "displayName": f"Canary group {g}", "members": members}
        status, body = call(args.base, args.token, "POST", "/Groups", doc)
        if status != 201:
            print(f"canary: creating group {g} answered {status}: {body[:300]!r}", file=sys.stderr)
            return 1
        ids["groups"].append(json.loads(body)["id"])
    # A manager reference between canaries.
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
             "Operations": [{"op": "add", "path": f"{ENTERPRISE}:manager", "value": {"value": ids["users"][0]}}]}
    status, body = call(args.base, args.token, "PATCH", f"/Users/{ids['users'][2]}", patch)
    if status not in (200, 204):
        print(f"canary: manager patch answered {status}: {body[:300]!r}", file=sys.stderr)
        return 1
    snapshot = {}
    for path in urls(ids):
        status, body = call(args.base, args.token, "GET", path)
        snapshot[path] = {"status": status, "body": body.decode("utf-8")}
    with open(args.out, "w") as f:
        json.dump({"ids": ids, "snapshot": snapshot}, f, indent=1)
    with open(args.out + ".ids", "w") as f:
        json.dump(ids, f)
    print(f"canary: {len(ids['users'])} users, {len(ids['groups'])} groups, {len(snapshot)} URLs recorded")
    return 0


def urls(ids: dict[str, list[str]]) -> list[str]:
    return ([f"/Users/{u}" for u in ids["users"]] + [f"/Groups/{g}" for g in ids["groups"]]
            + ["/Users?count=1000&sortBy=userName", "/Groups?count=1000&sortBy=displayName",
               "/Users?filter=userName%20sw%20%22canary%22&sortBy=userName"])


def verify(args) -> int:
    with open(args.inp) as f:
        recorded = json.load(f)
    changed = 0
    for path, want in recorded["snapshot"].items():
        status, body = call(args.base, args.token, "GET", path)
        if status != want["status"] or body.decode("utf-8", "replace") != want["body"]:
            changed += 1
            print(f"canary CHANGED: GET {path}\n  before {want['status']}: {want['body'][:400]}\n"
                  f"  after  {status}: {body[:400].decode('utf-8', 'replace')}", file=sys.stderr)
    if changed:
        print(f"canary: {changed} of {len(recorded['snapshot'])} URLs changed", file=sys.stderr)
        return 1
    print(f"canary: all {len(recorded['snapshot'])} URLs byte-identical")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["seed", "verify"])
    ap.add_argument("--base", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--out")
    ap.add_argument("--in", dest="inp")
    args = ap.parse_args()
    return seed(args) if args.cmd == "seed" else verify(args)


if __name__ == "__main__":
    sys.exit(main())
