#!/usr/bin/env python3
"""Runs scim-sanity's live probe (https://pypi.org/project/scim-sanity/) against a SCIM server.

The probe is scim-sanity's own CLI, `scim-sanity probe URL --token T --i-accept-side-effects
--json-output` (strict mode, its default). This script runs it from the same virtualenv,
reads its JSON report, prints one line per check and applies conformance/allowlist.json
(see gate.py). scim-sanity's own exit status (1 on any failure) is not used: the gate decides.

    SCIM_TOKEN=sbt_… python run_scim_sanity.py --url http://127.0.0.1:8080/scim/v2

Exit status: 0 if every check passed or is allow-listed, 1 otherwise, 2 if the run crashed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import gate

SUITE = "scim-sanity"

STATUS_MAP = {"pass": gate.PASS, "warn": gate.WARN, "skip": gate.SKIP, "fail": gate.FAIL, "error": gate.FAIL}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="SCIM base URL, e.g. http://127.0.0.1:8080/scim/v2")
    parser.add_argument("--token", default=os.environ.get("SCIM_TOKEN"), help="bearer token (default: $SCIM_TOKEN)")
    parser.add_argument("--json-out", help="write every result to this JSON file")
    parser.add_argument("--timeout", type=int, default=30, help="per-request timeout in seconds")
    args = parser.parse_args()
    if not args.token:
        parser.error("a bearer token is needed: --token or $SCIM_TOKEN")

    exe = Path(sys.executable).parent / "scim-sanity"
    cmd = [str(exe) if exe.exists() else (shutil.which("scim-sanity") or "scim-sanity")]
    cmd += ["probe", args.url, "--token", args.token, "--i-accept-side-effects", "--json-output"]
    cmd += ["--strict", "--timeout", str(args.timeout)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    try:
        report = json.loads(proc.stdout)
        results = report["results"]
    except (ValueError, KeyError, TypeError):
        print(f"{SUITE}: could not read the probe's JSON report (exit {proc.returncode})", file=sys.stderr)
        print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n", file=sys.stderr)
        return 2
    if proc.stderr.strip():
        print(proc.stderr.strip(), file=sys.stderr)

    checks = []
    for r in results:
        status = STATUS_MAP.get(r.get("status", ""), gate.FAIL)
        checks.append(
            gate.Check(
                suite=SUITE,
                name=r.get("name", "?"),
                status=status,
                raw_status=r.get("status", "?"),
                resource_type=None,
                reason=r.get("message") or "",
                detail=(r.get("details") or "") if status != gate.PASS else "",
            )
        )
    for issue in report.get("issues", []):
        print(f"scim-sanity fix summary [{issue.get('priority')}]: {issue.get('title')}")
    if not checks:
        print(f"{SUITE}: no check ran", file=sys.stderr)
        return 1
    if args.json_out:
        Path(args.json_out).with_suffix(".raw.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return gate.gate(SUITE, checks, args.json_out)


if __name__ == "__main__":
    sys.exit(main())
