"""Shared by the suite drivers: normalises check results, applies allowlist.json, prints them.

Every check a suite reports ends up as one `Check`. A check that did not pass (failed,
warned or was skipped) must match an entry of `allowlist.json`, otherwise the driver exits 1.

Allow-list entries have a `kind`:
  - `not-applicable`: the check tests something seatbridge does not offer, and need not;
  - `tool-wrong`:     the check expects something the RFCs do not require;
  - `seatbridge-bug`: a real seatbridge deviation, reported and not yet fixed. These are
                      printed as KNOWN BUG and refused when CONFORMANCE_STRICT=1.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ALLOWLIST_PATH = Path(__file__).with_name("allowlist.json")
KINDS = ("not-applicable", "tool-wrong", "seatbridge-bug")

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"


@dataclass
class Check:
    suite: str
    name: str
    status: str  # one of PASS, FAIL, WARN, SKIP
    raw_status: str  # the suite's own status word
    resource_type: str | None = None
    reason: str = ""
    detail: str = ""  # debugging data, only printed for checks that did not pass
    allowed_by: str | None = None  # id of the matching allow-list entry
    allowed_kind: str | None = None


@dataclass
class Entry:
    id: str
    check: str | list[str]
    status: list[str]
    kind: str
    rfc: str
    why: str
    resource_type: str | None = None
    reason_regex: str | None = None
    latent: bool = False  # expected to match only in other configurations or after a fix
    note: str | None = None
    matched: int = field(default=0)

    def matches(self, c: Check) -> bool:
        names = [self.check] if isinstance(self.check, str) else self.check
        if c.name not in names or c.raw_status not in self.status:
            return False
        if self.resource_type is not None and c.resource_type != self.resource_type:
            return False
        if self.reason_regex is not None and not re.search(self.reason_regex, c.reason or "", re.S):
            return False
        return True


def load_allowlist(suite: str, path: Path = ALLOWLIST_PATH) -> list[Entry]:
    data = json.loads(path.read_text(encoding="utf-8"))
    entries = []
    for raw in data.get(suite, []):
        known = {k: raw[k] for k in raw if k in Entry.__dataclass_fields__ and k != "matched"}
        entry = Entry(**known)
        if entry.kind not in KINDS:
            raise ValueError(f"allowlist.json: {entry.id}: unknown kind '{entry.kind}'")
        entries.append(entry)
    return entries


def _one_line(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def gate(suite: str, checks: list[Check], json_out: str | None = None) -> int:
    """Prints every check, then the verdict; returns the exit code (0 = nothing unexpected)."""
    strict = os.environ.get("CONFORMANCE_STRICT", "") not in ("", "0")
    entries = load_allowlist(suite)
    unexpected: list[Check] = []
    for c in checks:
        if c.status == PASS:
            continue
        entry = next((e for e in entries if e.matches(c)), None)
        if entry is not None:
            entry.matched += 1
            c.allowed_by, c.allowed_kind = entry.id, entry.kind
        if entry is None or (strict and entry.kind == "seatbridge-bug"):
            unexpected.append(c)
    unexpected_ids = {id(c) for c in unexpected}

    has_rt = any(c.resource_type for c in checks)
    width = max((len(c.resource_type or "-") for c in checks), default=1) if has_rt else 0
    print(f"--- {suite}: {len(checks)} checks " + "-" * 40)
    for c in checks:
        rt = f"{c.resource_type or '-':<{width}}  " if has_rt else ""
        label = c.status.upper()
        if c.status != PASS:
            if id(c) in unexpected_ids:
                label += "  UNEXPECTED"
            elif c.allowed_kind == "seatbridge-bug":
                label += f"  KNOWN BUG {c.allowed_by}"
            else:
                label += f"  allowed {c.allowed_by}"
        print(f"{label:<22} {rt}{c.name}: {_one_line(c.reason or '', 220)}")
        if c.status != PASS and c.detail:
            print(f"{'':<22} {'':<{width + 2 if has_rt else 0}}  detail: {_one_line(c.detail, 600)}")

    for e in entries:
        if e.matched == 0 and not e.latent:
            print(f"note: allow-list entry {e.id} ({e.check}) matched nothing; remove it if the cause is gone")

    counts = {s: sum(1 for c in checks if c.status == s) for s in (PASS, FAIL, WARN, SKIP)}
    allowed = sum(1 for c in checks if c.status != PASS and id(c) not in unexpected_ids)
    known_bugs = sum(1 for c in checks if c.allowed_kind == "seatbridge-bug")
    summary = {
        "suite": suite,
        "total": len(checks),
        "passed": counts[PASS],
        "failed": counts[FAIL],
        "warnings": counts[WARN],
        "skipped": counts[SKIP],
        "allow_listed": allowed,
        "known_seatbridge_bugs": known_bugs,
        "unexpected": len(unexpected),
        "strict": strict,
    }
    print(
        f"{suite}: {counts[PASS]} passed, {counts[FAIL]} failed, {counts[WARN]} warnings, "
        f"{counts[SKIP]} skipped; {allowed} allow-listed ({known_bugs} known seatbridge bugs), "
        f"{len(unexpected)} unexpected"
    )
    if json_out:
        Path(json_out).write_text(
            json.dumps({"summary": summary, "checks": [asdict(c) for c in checks]}, indent=2, default=str),
            encoding="utf-8",
        )
    if unexpected:
        print(f"{suite}: FAILED — {len(unexpected)} result(s) not in conformance/allowlist.json:")
        for c in unexpected:
            print(f"  {c.status.upper()} {c.resource_type or '-'} {c.name}: {_one_line(c.reason, 300)}")
        return 1
    return 0


def detail_text(data: Any) -> str:
    if data is None:
        return ""
    if isinstance(data, (dict, list)):
        try:
            return json.dumps(data, default=repr)
        except (TypeError, ValueError):
            pass
    return repr(data)
