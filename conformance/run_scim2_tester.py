#!/usr/bin/env python3
"""Runs scim2-tester (https://pypi.org/project/scim2-tester/) against a live SCIM server.

scim2-tester has no command line of its own: its entry point is the Python function
`scim2_tester.check_server(client)`, which discovers the server (/ServiceProviderConfig,
/ResourceTypes, /Schemas) and then runs CRUD, attribute-projection and PATCH add/remove/
replace checks on every resource type it found. This script builds the scim2-client
(httpx2 engine) it needs, runs every check, prints one line per check and applies
conformance/allowlist.json (see gate.py).

    SCIM_TOKEN=sbt_… python run_scim2_tester.py --url http://127.0.0.1:8080/scim/v2

Exit status: 0 if every check passed or is allow-listed, 1 otherwise, 2 if the run crashed.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Any

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import BaseModel, Mutability
from scim2_tester import CheckResult, Status, check_server

import gate

SUITE = "scim2-tester"

STATUS_MAP = {
    Status.SUCCESS: gate.PASS,
    Status.COMPLIANT: gate.PASS,
    Status.ACCEPTABLE: gate.PASS,
    Status.DEVIATION: gate.WARN,
    Status.ERROR: gate.FAIL,
    Status.CRITICAL: gate.FAIL,
    Status.SKIPPED: gate.SKIP,
}

READ_ONLY_NOTE = "[differs from what was sent only in read-only sub-attributes the server assigns]"


def _same_but_read_only(expected: Any, actual: Any) -> bool:
    """Is `actual` `expected` plus values of read-only sub-attributes the client left empty?

    scim2-tester compares the value it PATCHed with the value it reads back, field by field.
    A read-only sub-attribute such as `members.display` is the server's to fill in (RFC 7643
    §2.2, §7), so a difference there alone is not a failed PATCH.
    """
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(_same_but_read_only(e, a) for e, a in zip(expected, actual))
    if isinstance(expected, BaseModel) and type(expected) is type(actual):
        model = type(expected)
        for name in model.model_fields:
            want, got = getattr(expected, name), getattr(actual, name)
            if want == got:
                continue
            if want is None and model.get_field_annotation(name, Mutability) == Mutability.read_only:
                continue
            return False
        return True
    return bool(expected == actual)


def _note(r: CheckResult) -> str:
    """The reason, plus READ_ONLY_NOTE when a PATCH check failed only on read-only values."""
    reason = r.reason or ""
    data = r.data if isinstance(r.data, dict) else {}
    if r.status in (Status.ERROR, Status.CRITICAL) and "expected" in data:
        actual = data.get("modify_actual", data.get("actual"))
        if actual is not None and _same_but_read_only(data["expected"], actual):
            reason = f"{reason} {READ_ONLY_NOTE}"
    return reason


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="SCIM base URL, e.g. http://127.0.0.1:8080/scim/v2")
    parser.add_argument("--token", default=os.environ.get("SCIM_TOKEN"), help="bearer token (default: $SCIM_TOKEN)")
    parser.add_argument("--json-out", help="write every result (with debugging data) to this JSON file")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout in seconds")
    args = parser.parse_args()
    if not args.token:
        parser.error("a bearer token is needed: --token or $SCIM_TOKEN")

    http = httpx2.Client(
        base_url=args.url.rstrip("/"),
        headers={"Authorization": f"Bearer {args.token}"},
        timeout=args.timeout,
    )
    client = SyncSCIMClient(http)
    try:
        results = check_server(client)
    except Exception:  # check_server catches check failures itself; this is a crash
        traceback.print_exc()
        print(f"{SUITE}: the run crashed before producing results", file=sys.stderr)
        return 2
    finally:
        http.close()

    checks = [
        gate.Check(
            suite=SUITE,
            name=r.title or "?",
            status=STATUS_MAP.get(r.status, gate.FAIL),
            raw_status=r.status.name,
            resource_type=r.resource_type,
            reason=_note(r),
            detail=gate.detail_text(r.data) if r.status not in (Status.SUCCESS, Status.COMPLIANT) else "",
        )
        for r in results
    ]
    if not checks:
        print(f"{SUITE}: no check ran", file=sys.stderr)
        return 1
    return gate.gate(SUITE, checks, args.json_out)


if __name__ == "__main__":
    sys.exit(main())
