#!/usr/bin/env python3
"""SCIM 2.0 HTTP fuzzer for seatbridge.

Sends malformed and edge-case requests to every SCIM endpoint of a live server (plus a few valid
creates so there is state to hit) from several worker threads, each with its own keep-alive
connection, and counts the answers by endpoint and status. Any 5xx (except the 501 that RFC 7644
§3.11 prescribes for /Me) or a connection that fails or closes without an answer is a failure.

Usage: scim_fuzz.py --base http://127.0.0.1:PORT --token SBT [--requests N] [--workers W]
                    [--seed S] [--foreign-ids FILE] [--json-out FILE]

`--foreign-ids` names a JSON file of ids that belong to another tenant (the canaries): the fuzzer
aims reads and writes at them with its own token, and every one of those must fail with 404.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import string
import sys
import threading
import time
import urllib.parse

from rawhttp import Conn, ConnectionFailed, build

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
SEATBRIDGE = "urn:ietf:params:scim:schemas:extension:seatbridge:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SCIM_CT = "application/scim+json"

# --- random building blocks ------------------------------------------------------------------

ATTRS = [
    "userName", "displayName", "active", "externalId", "id", "title", "nickName", "locale", "timezone",
    "name", "name.givenName", "name.familyName", "name.formatted", "emails", "emails.value", "emails.type",
    "emails.primary", "phoneNumbers.value", "addresses.country", "groups", "groups.value", "groups.display",
    "members", "members.value", "members.display", "members.type", "meta", "meta.created",
    "meta.lastModified", "meta.resourceType", "meta.version", "meta.location", "schemas", "password",
    "roles.value", "entitlements.value", "x509Certificates.value", "userType", "preferredLanguage",
    f"{ENTERPRISE}:employeeNumber", f"{ENTERPRISE}:manager.value", f"{ENTERPRISE}:manager", f"{ENTERPRISE}:department",
    f"{SEATBRIDGE}:seatType", f"{SEATBRIDGE}:entitled", f"{SEATBRIDGE}:seatPool", f"{USER}:userName",
    f"{USER}:name.givenName", f"{GROUP}:displayName", "urn:x:y:z:attr", "unknownAttr", "a.b.c", "", ".", "..",
    "name.", ".name", "emails[type eq \"work\"].value", "üñí", "$ref", "members.$ref",
]
OPS = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr", "EQ", "Eq", "xx", "==", "", "eqq"]
LOGIC = ["and", "or", "AND", "Or", "not", "andd", "&&", "||"]
WEIRD_STRINGS = [
    "", " ", "\t", "\x00", "\x7f", "\u202e", "\u200b", "\ufeff", "😀" * 3, "ß", "İ", "ǅ", "ﬀ",
    "a" * 300, "x" * 5000, "\\", "\"", "'", "%", "%00", "%ff", "../../etc/passwd", "null", "true", "0",
    "-1", "1e309", "NaN", "2024-13-45T99:99:99Z", "2024-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999+14:00",
    "urn:ietf:params:scim:schemas:core:2.0:User", "<script>", "' OR 1=1 --", "%s%s%s%n", "${jndi:x}",
    "\ud83d", "W/\"1\"", "*", "bulkId:x", "Users/abc", "/scim/v2/Users",
]
WEIRD_NUMBERS = [0, -1, 1, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64,
                 10**30, 1.5, -0.0, 1e308, -1e308, 5e-324]
WEIRD_IDS = [
    "0", "-1", "null", "undefined", "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "00000000-0000-7000-8000-000000000001", "a" * 36, "a" * 4000, "%00", "%ff%fe", "%C0%AF", "%2e%2e", "..", ".",
    "%2F", "%252F", "😀", "%F0%9F%98%80", "id;x=1", "id%20with%20space", "%0d%0aX-Injected:%201", "~", "%",
    "%zz", "'", "%22", "\\", "{id}", "*", ".search", "%2Esearch", "bulkId:a", "1e10", "0x10",
]
QUERY_KEYS = ["filter", "Filter", "FILTER", "startIndex", "startindex", "count", "COUNT", "sortBy", "sortOrder",
              "attributes", "excludedAttributes", "excludedattributes", "cursor", "x", "", "filter[]"]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT", "FOO", "get", "PROPFIND"]
CONTENT_TYPES = [
    SCIM_CT, "application/json", "application/scim+json; charset=utf-8", "application/json;charset=latin1",
    "APPLICATION/SCIM+JSON", "text/plain", "application/xml", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x", "", "application/scim+json; charset=\"", ";;;", "application/",
    "application/json\x01", "*/*", "application/merge-patch+json", "application/json-patch+json",
]
ACCEPTS = ["*/*", SCIM_CT, "application/json", "text/html", "application/xml", "", "*/*;q=0", "application/*",
           "text/*, application/scim+json;q=0.1", "\x00", "a" * 2000, "application/json;q=abc"]


def rstr(r: random.Random, n: int | None = None, alphabet: str = string.ascii_letters + string.digits) -> str:
    n = r.randint(1, 12) if n is None else n
    return "".join(r.choice(alphabet) for _ in range(n))


def weird_string(r: random.Random) -> str:
    c = r.random()
    if c < 0.5:
        return r.choice(WEIRD_STRINGS)
    if c < 0.7:
        n = r.randint(1, 40)
        return "".join(map(chr, (r.getrandbits(14) for _ in range(n))))
    if c < 0.8:
        return r.choice(WEIRD_STRINGS) * r.randint(2, 200)
    return rstr(r, r.randint(0, 64), string.printable)


def weird_value(r: random.Random, depth: int = 0):
    c = r.random()
    if c < 0.12:
        return None
    if c < 0.2:
        return r.choice([True, False])
    if c < 0.35:
        return r.choice(WEIRD_NUMBERS)
    if c < 0.65 or depth > 4:
        return weird_string(r)
    if c < 0.8:
        return [weird_value(r, depth + 1) for _ in range(r.randint(0, 4))]
    if c < 0.9:
        return {weird_key(r): weird_value(r, depth + 1) for _ in range(r.randint(0, 4))}
    return nested(r, r.randint(1, 140))


def weird_key(r: random.Random) -> str:
    c = r.random()
    if c < 0.6:
        return r.choice(ATTRS).split(".")[0] if r.random() < 0.5 else r.choice(ATTRS)
    if c < 0.8:
        return r.choice(["schemas", "id", "meta", "externalId", "members", "groups", "Operations", "value", "op",
                         "path", "USERNAME", "username", "userName ", "$ref", ENTERPRISE, SEATBRIDGE, USER])
    return weird_string(r)


def nested(r: random.Random, depth: int):
    v = weird_value(r, 5)
    for _ in range(depth):
        v = [v] if r.random() < 0.5 else {"a": v}
    return v


def mutate(doc, r: random.Random, rounds: int = 1):
    """Replaces, deletes or adds random nodes of a JSON tree (in place where possible)."""
    for _ in range(rounds):
        if not isinstance(doc, (dict, list)) or not doc or r.random() < 0.05:
            return weird_value(r)
        node = doc
        for _ in range(r.randint(0, 3)):
            children = list(node.values()) if isinstance(node, dict) else node
            children = [c for c in children if isinstance(c, (dict, list)) and c]
            if not children:
                break
            node = r.choice(children)
        if isinstance(node, dict):
            c = r.random()
            if c < 0.4 and node:
                node[r.choice(list(node))] = weird_value(r)
            elif c < 0.6 and node:
                del node[r.choice(list(node))]
            else:
                node[weird_key(r)] = weird_value(r)
        elif isinstance(node, list):
            c = r.random()
            if c < 0.4 and node:
                node[r.randrange(len(node))] = weird_value(r)
            elif c < 0.6 and node:
                node.pop(r.randrange(len(node)))
            else:
                node.append(weird_value(r))
    return doc


def dumps(doc) -> bytes:
    return json.dumps(doc, ensure_ascii=r_ascii.random() < 0.5, allow_nan=True).encode("utf-8", "surrogatepass")


r_ascii = random.Random(0)


def text_mutate(body: bytes, r: random.Random) -> bytes:
    """Damages JSON text: truncation, bad bytes, duplicate keys, literals JSON does not allow."""
    c = r.random()
    if c < 0.2 and body:
        return body[: r.randrange(len(body))]
    if c < 0.35:
        i = r.randrange(len(body) + 1)
        return body[:i] + bytes(r.randrange(256) for _ in range(r.randint(1, 8))) + body[i:]
    if c < 0.45:
        return r.choice([b"\xef\xbb\xbf", b"\xff\xfe", b"\x00", b" \n\t"]) + body
    if c < 0.55:
        return body + r.choice([b"garbage", b"}", b"]", b"\x00", b"{}", b"\n\n"])
    if c < 0.7 and body.startswith(b"{") and len(body) > 2:
        # duplicate keys: the same attribute twice with different values
        key = r.choice([b'"userName"', b'"displayName"', b'"schemas"', b'"active"', b'"members"', b'"Operations"',
                        b'"id"', b'"UserName"', b'"emails"'])
        dup = key + b":" + dumps(weird_value(r)) + b","
        return b"{" + dup + body[1:-1] + b"," + key + b":" + dumps(weird_value(r)) + b"}"
    if c < 0.8:
        return body.replace(b":", b":" + r.choice([b"NaN,", b"Infinity", b"-Infinity", b"'x'", b"undefined", b"01",
                                                    b"1.", b".5", b"+1", b"0x1F", b"1e99999", b"\"\\ud800\""]), 1)
    if c < 0.9 and body:
        # invalid UTF-8 inside a string
        i = body.find(b'"') + 1
        return body[:i] + r.choice([b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xff", b"\xc3"]) + body[i:]
    if r.random() < 0.1:
        return r.choice([b"[" * 200_000, b"{\"a\":" * 50_000, b"\"" + b"a" * 100_000])
    return r.choice([b"", b"null", b"0", b"\"str\"", b"[]", b"{", b"[" * 127 + b"]" * 127, b"[" * 129 + b"]" * 129,
                     b"{}" * 3, b"{\"a\":" * 200 + b"1" + b"}" * 200])


def filter_expr(r: random.Random, depth: int = 0) -> str:
    c = r.random()
    if depth > 3 or c < 0.45:
        attr = r.choice(ATTRS)
        op = r.choice(OPS)
        if op.lower() == "pr":
            return f"{attr} {op}"
        return f"{attr} {op} {filter_value(r)}"
    if c < 0.65:
        return f"{filter_expr(r, depth + 1)} {r.choice(LOGIC)} {filter_expr(r, depth + 1)}"
    if c < 0.75:
        return f"not ({filter_expr(r, depth + 1)})"
    if c < 0.85:
        return f"({filter_expr(r, depth + 1)})"
    return f"{r.choice(['emails', 'members', 'groups', 'addresses', 'name', 'x'])}[{filter_expr(r, depth + 1)}]"


def filter_value(r: random.Random) -> str:
    c = r.random()
    if c < 0.35:
        return json.dumps(r.choice(["alice", "fz", "work", "", "2024-01-01T00:00:00Z", "x" * 100]))
    if c < 0.5:
        return r.choice(["true", "false", "null", "TRUE", "Null"])
    if c < 0.65:
        return str(r.choice(WEIRD_NUMBERS))
    if c < 0.8:
        return json.dumps(weird_string(r))
    return r.choice(['"unterminated', '"\\u12"', '"\\x"', "'single'", "bare", '"a" "b"', "[", "]", "(", ")",
                     '"\\ud800"', '"\\\\"', "1e999999", "-", "+1", "0x1", ".5", '"\\/"'])


def weird_filter(r: random.Random) -> str:
    c = r.random()
    if c < 0.55:
        f = filter_expr(r)
    elif c < 0.65:
        n = r.choice([5, 31, 32, 33, 64, 257, 1000, 5000])
        f = "(" * n + "userName eq \"a\"" + ")" * n
    elif c < 0.7:
        n = r.choice([31, 32, 33, 300, 3000])
        f = "not (" * n + "userName pr" + ")" * n
    elif c < 0.75:
        n = r.choice([100, 255, 256, 257, 600, 2000])
        f = " and ".join(f"userName eq \"{i}\"" for i in range(n))
    elif c < 0.8:
        f = "emails[" * r.randint(2, 50) + "value pr" + "]" * r.randint(0, 50)
    else:
        f = filter_expr(r)
        if f:
            i = r.randrange(len(f) + 1)
            f = f[:i] + r.choice(["(", ")", "[", "]", "\"", " ", "and", "\\", "\x00", "", "not", "."]) + f[i:]
    if r.random() < 0.1:
        f = f[: r.randrange(len(f) + 1)]
    return f


def qs(pairs: list[tuple[str, str]], r: random.Random) -> str:
    if r.random() < 0.1:
        # hand-made, possibly invalid percent-encoding
        return "&".join(f"{k}={v}" for k, v in pairs).replace(" ", r.choice(["+", "%20", " ", "%2"]))
    return urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote, errors="surrogatepass")


def list_params(r: random.Random) -> list[tuple[str, str]]:
    pairs = []
    for _ in range(r.randint(0, 5)):
        k = r.choice(QUERY_KEYS)
        kl = k.lower()
        if "filter" in kl:
            v = weird_filter(r)
        elif kl in ("startindex", "count"):
            v = str(r.choice(WEIRD_NUMBERS + ["", "abc", " 1", "1 ", "+5", "1e3", "0x10", "١"]))
        elif kl == "sortby":
            v = r.choice(ATTRS)
        elif kl == "sortorder":
            v = r.choice(["ascending", "descending", "DESC", "", "sideways"])
        elif "attributes" in kl:
            v = ",".join(r.choice(ATTRS) for _ in range(r.randint(0, 4)))
        else:
            v = weird_string(r)
        pairs.append((k, v))
    return pairs


def user_body(r: random.Random, prefix: str) -> dict:
    name = f"{prefix}{r.getrandbits(40):x}"
    doc = {"schemas": [USER], "userName": name, "active": r.random() < 0.5,
           "name": {"givenName": rstr(r), "familyName": rstr(r)},
           "emails": [{"value": f"{name}@example.com", "type": "work", "primary": True}]}
    if r.random() < 0.4:
        doc["schemas"].append(ENTERPRISE)
        doc[ENTERPRISE] = {"employeeNumber": str(r.randint(1, 9999)), "department": rstr(r)}
    if r.random() < 0.3:
        doc["schemas"].append(SEATBRIDGE)
        doc[SEATBRIDGE] = {"seatType": r.choice(["default", "viewer", "nope", ""])}
    if r.random() < 0.3:
        doc["externalId"] = rstr(r)
    return doc


def group_body(r: random.Random, prefix: str, members: list[str]) -> dict:
    doc = {"schemas": [GROUP], "displayName": f"{prefix}{r.getrandbits(40):x}"}
    if members and r.random() < 0.7:
        doc["members"] = [{"value": m} for m in r.sample(members, min(len(members), r.randint(1, 5)))]
    return doc


PATCH_PATHS = [
    None, "", "active", "userName", "displayName", "name", "name.givenName", "name.familyName", "emails",
    'emails[type eq "work"]', 'emails[type eq "work"].value', 'emails[primary eq true].value', "emails[",
    'emails[type eq "work"', "emails[].value", "emails.value", "members", 'members[value eq "x"]',
    'members[value eq "%s"]', "members[value pr]", "members.value", "groups", "id", "meta", "meta.created",
    "schemas", "externalId", f"{ENTERPRISE}:manager", f"{ENTERPRISE}:manager.value", f"{ENTERPRISE}:department",
    f"{SEATBRIDGE}:seatType", f"{SEATBRIDGE}:entitled", f"{USER}:active", f"{USER}:name.givenName", "urn:x:y",
    "a.b.c.d", "name[givenName eq \"x\"]", "members[value eq \"a\" or value eq \"b\"]",
    "members[not (value pr)]", "emails[type eq \"work\"].value.x", "..", "[]", "x" * 10000,
    "emails[value co \"@\"].display", 'addresses[type eq "work"].streetAddress', "roles", "password",
]


def patch_op(r: random.Random, ids: list[str]) -> dict:
    op = {"op": r.choice(["add", "replace", "remove", "Add", "REPLACE", "Remove", "copy", "move", "test", "", None, 1])}
    path = r.choice(PATCH_PATHS)
    if path and "%s" in path:
        path = path % (r.choice(ids) if ids else "x")
    if path is not None:
        op["path"] = path
    elif r.random() < 0.3:
        op["path"] = weird_filter(r)
    c = r.random()
    if c < 0.25:
        op["value"] = weird_value(r)
    elif c < 0.45:
        op["value"] = {"active": r.choice([True, False, "True", "false", 1, None]), "displayName": weird_string(r)}
    elif c < 0.6:
        op["value"] = [{"value": r.choice(ids) if ids and r.random() < 0.7 else r.choice(WEIRD_IDS)}
                       for _ in range(r.randint(0, 4))]
    elif c < 0.7:
        op["value"] = r.choice([True, False, "True", "False", "yes"])
    elif c < 0.8:
        op["value"] = {f"{ENTERPRISE}:manager": {"value": r.choice(WEIRD_IDS)}, "name.givenName": "x",
                       "emails[type eq \"work\"].value": "a@b.c"}
    # else: no value
    if r.random() < 0.1:
        op[weird_key(r)] = weird_value(r)
    return op


def patch_body(r: random.Random, ids: list[str], small: bool = False):
    doc = {"schemas": [PATCH], "Operations": [patch_op(r, ids) for _ in range(r.randint(0, 6))]}
    c = r.random()
    if c < 0.1:
        doc["schemas"] = r.choice([[], [USER], "x", None, [PATCH, PATCH]])
    elif c < 0.15:
        doc["Operations"] = r.choice([None, {}, "x", [None], [[]], [{}] * 3])
    elif c < 0.2 and not small:
        doc["Operations"] = [patch_op(r, ids)] * r.choice([500, 5000])
    elif c < 0.25:
        doc["operations"] = doc.pop("Operations")
    return doc


def bulk_body(r: random.Random, ids: list[str], prefix: str):
    ops = []
    bulk_ids = [rstr(r, 4) for _ in range(r.randint(1, 5))]
    n_ops = r.choice([0, 1, 2, 3, 5, 10, 20, 1001])
    for _ in range(min(n_ops, 20)):
        method = r.choice(["POST", "PUT", "PATCH", "DELETE", "GET", "post", "", None])
        kind = r.choice(["Users", "Groups", "Schemas", "x", ""])
        target = r.choice(ids + WEIRD_IDS) if ids else r.choice(WEIRD_IDS)
        path = r.choice([f"/{kind}", f"/{kind}/{target}", f"/{kind}/bulkId:{r.choice(bulk_ids)}", "", "/",
                         "Users", f"/{kind}/{target}/extra", "http://evil/Users", f"/{kind}?filter=x"])
        op = {"method": method, "path": path}
        if r.random() < 0.8:
            op["bulkId"] = r.choice(bulk_ids + ["", None, 7, "a" * 5000])
        c = r.random()
        if c < 0.35:
            data = user_body(r, prefix)
            if r.random() < 0.3:
                data[ENTERPRISE] = {"manager": {"value": f"bulkId:{r.choice(bulk_ids)}"}}
                data["schemas"].append(ENTERPRISE)
        elif c < 0.6:
            data = {"schemas": [GROUP], "displayName": f"{prefix}{r.getrandbits(32):x}",
                    "members": [{"value": f"bulkId:{r.choice(bulk_ids)}"} for _ in range(r.randint(0, 3))]}
        elif c < 0.75:
            data = patch_body(r, ids, small=True)
            for o in data.get("Operations") or []:
                if isinstance(o, dict) and r.random() < 0.4:
                    o["value"] = [{"value": f"bulkId:{r.choice(bulk_ids)}"}]
        else:
            data = weird_value(r)
        if r.random() < 0.2:
            data = mutate(data, r)
        if r.random() < 0.9:
            op["data"] = data
        if r.random() < 0.1:
            op["version"] = r.choice(["W/\"1\"", "\"x\"", 5, None, ""])
        if r.random() < 0.1:
            op = mutate(op, r)
        ops.append(op)
    if n_ops > 20:
        ops = (ops * (n_ops // max(len(ops), 1) + 1))[:n_ops]
    doc = {"schemas": [BULK], "Operations": ops}
    if r.random() < 0.6:
        doc["failOnErrors"] = r.choice([0, 1, 2, -1, 2**63, 1.5, "1", None, True])
    if r.random() < 0.1:
        doc = mutate(doc, r)
    return doc


# --- the request mix -----------------------------------------------------------------------------

class Shared:
    """Ids the fuzzer created (it may change and delete only those) and the foreign canary ids."""

    def __init__(self, foreign: dict[str, list[str]]):
        self.lock = threading.Lock()
        self.users: list[str] = []
        self.groups: list[str] = []
        self.foreign_users = foreign.get("users", [])
        self.foreign_groups = foreign.get("groups", [])

    def add(self, kind: str, rid: str) -> None:
        with self.lock:
            lst = self.users if kind == "Users" else self.groups
            lst.append(rid)
            if len(lst) > 400:
                del lst[: len(lst) - 400]


class Request:
    __slots__ = ("label", "method", "target", "headers", "body", "expect", "kind", "content_length")

    def __init__(self, label, method, target, headers, body=None, expect=None, kind=None, content_length=True):
        self.label, self.method, self.target, self.headers = label, method, target, headers
        self.body, self.expect, self.kind, self.content_length = body, expect, kind, content_length


class Fuzzer:
    def __init__(self, args, shared: Shared, seed: int):
        self.args = args
        self.r = random.Random(seed)
        self.shared = shared
        self.auth = ("Authorization", f"Bearer {args.token}")
        self.prefix = f"fz{seed}-"
        self.base_path = urllib.parse.urlsplit(args.base).path.rstrip("/")

    # headers -------------------------------------------------------------------------------------
    def headers(self, json_body: bool, weird: float = 0.15) -> list:
        r = self.r
        h = [self.auth]
        if json_body:
            h.append(("Content-Type", SCIM_CT if r.random() < 0.9 else "application/json"))
        if r.random() < 0.3:
            h.append(("Accept", r.choice([SCIM_CT, "application/json", "*/*"])))
        if r.random() < weird:
            self.weird_headers(h, json_body)
        return h

    def weird_headers(self, h: list, json_body: bool) -> None:
        r = self.r
        c = r.random()
        if c < 0.2:
            h[0] = r.choice([
                ("Authorization", "Bearer"), ("Authorization", "Bearer "), ("Authorization", "bearer " + self.args.token),
                ("Authorization", "Basic dXNlcjpwYXNz"), ("Authorization", "Bearer sbt_" + rstr(r, 40)),
                ("Authorization", "Bearer " + "A" * r.choice([100, 4000, 7000])), ("Authorization", ""),
                ("Authorization", "Bearer " + self.args.token + "x"), ("Authorization", "Bearer\t" + self.args.token),
                ("Authorization", b"Bearer \xff\xfe"), ("X-Authorization", "Bearer " + self.args.token),
                ("Authorization", "Bearer " + self.args.token[:-1]),
            ])
            if r.random() < 0.1:
                h.pop(0)
            elif r.random() < 0.1:
                h.append(self.auth)  # two Authorization headers
        elif c < 0.4:
            for i, (k, _) in enumerate(h):
                if k == "Content-Type":
                    h[i] = ("Content-Type", r.choice(CONTENT_TYPES))
            if not json_body or r.random() < 0.2:
                h.append(("Content-Type", r.choice(CONTENT_TYPES)))
        elif c < 0.5:
            h.append(("Accept", r.choice(ACCEPTS)))
        elif c < 0.6:
            h.append((r.choice(["If-Match", "If-None-Match"]),
                      r.choice(["*", "W/\"1\"", "\"1\"", "W/\"abc\"", "", "W/", "\"", "W/\"99999999999999999999\"",
                                "W/\"-1\"", "*, W/\"1\"", b"W/\"\xff\"", "x" * 3000])))
        elif c < 0.7:
            h.append((r.choice(["X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded", "X-Request-Id", "User-Agent",
                                "X-Forwarded-For"]),
                      r.choice(["", "evil.example", "a" * 5000, "for=\"[::1]\";proto=gopher;host=x", "\x01",
                                b"\xff\xfe", "Okta SCIM Client 1.0.0", "Azure AD SCIM", "%", "1.2.3.4, 5.6.7.8",
                                "h:99999"])))
        elif c < 0.8:
            # one very long header, or many headers
            if r.random() < 0.5:
                h.append(("X-Long", "v" * r.choice([1000, 8000, 16000, 33000, 70000])))
            else:
                h.extend((f"X-H{i}", "v") for i in range(r.choice([20, 50, 90, 100, 200])))
        elif c < 0.9:
            h.append(("Expect", r.choice(["100-continue", "200-ok", ""])))
        else:
            h.append(("Content-Encoding", r.choice(["gzip", "br", "deflate", "zstd", "identity", "x"])))

    def target(self, path: str, pairs: list | None = None) -> str:
        t = self.base_path + path
        if pairs:
            t += "?" + qs(pairs, self.r)
        return t

    def own_id(self, kind: str) -> str | None:
        lst = self.shared.users if kind == "Users" else self.shared.groups
        with self.shared.lock:
            return self.r.choice(lst) if lst else None

    def any_id(self, kind: str) -> tuple[str, bool]:
        """An id to aim at: own (True) most of the time, else weird or foreign (False)."""
        r = self.r
        c = r.random()
        if c < 0.65:
            own = self.own_id(kind)
            if own:
                return own, True
        if c < 0.8:
            foreign = self.shared.foreign_users if kind == "Users" else self.shared.foreign_groups
            if foreign:
                return r.choice(foreign), False
        if c < 0.85:
            other = self.own_id("Groups" if kind == "Users" else "Users")
            if other:
                return other, False
        return r.choice(WEIRD_IDS), False

    def ids(self) -> list[str]:
        with self.shared.lock:
            return self.shared.users[-30:] + self.shared.groups[-10:]

    # request generators ----------------------------------------------------------------------
    def next(self) -> Request:
        r = self.r
        c = r.random()
        if c < 0.10:
            return self.valid_create()
        if c < 0.24:
            return self.list_get()
        if c < 0.30:
            return self.search_post()
        if c < 0.44:
            return self.create_mutated()
        if c < 0.56:
            return self.patch()
        if c < 0.62:
            return self.put()
        if c < 0.66:
            return self.get_one()
        if c < 0.69:
            return self.delete()
        if c < 0.75:
            return self.bulk()
        if c < 0.80:
            return self.discovery()
        if c < 0.86:
            return self.raw_body()
        if c < 0.91:
            return self.weird_method()
        if c < 0.96:
            return self.weird_target()
        return self.foreign()

    def valid_create(self) -> Request:
        r = self.r
        kind = "Users" if r.random() < 0.7 else "Groups"
        doc = user_body(r, self.prefix) if kind == "Users" else group_body(r, self.prefix, self.ids())
        return Request(f"POST /{kind} (valid)", "POST", self.target(f"/{kind}"), self.headers(True, 0.0),
                       dumps(doc), kind=kind)

    def list_get(self) -> Request:
        kind = self.r.choice(["Users", "Groups"])
        return Request(f"GET /{kind}", "GET", self.target(f"/{kind}", list_params(self.r)), self.headers(False))

    def search_post(self) -> Request:
        r = self.r
        path = r.choice(["/Users/.search", "/Groups/.search", "/.search"])
        doc = {"schemas": [SEARCH]}
        for k, v in list_params(r):
            doc[k] = int(v) if v.lstrip("-").isdigit() and r.random() < 0.7 else v
        if r.random() < 0.3:
            doc = mutate(doc, r)
        body = dumps(doc)
        if r.random() < 0.1:
            body = text_mutate(body, r)
        return Request(f"POST {path}", "POST", self.target(path), self.headers(True), body)

    def create_mutated(self) -> Request:
        r = self.r
        kind = r.choice(["Users", "Groups"])
        doc = user_body(r, self.prefix) if kind == "Users" else group_body(r, self.prefix, self.ids())
        if r.random() < 0.85:
            doc = mutate(doc, r, r.randint(1, 4))
        body = dumps(doc)
        if r.random() < 0.25:
            body = text_mutate(body, r)
        return Request(f"POST /{kind}", "POST", self.target(f"/{kind}"), self.headers(True), body, kind=kind)

    def patch(self) -> Request:
        r = self.r
        kind = r.choice(["Users", "Groups"])
        rid, own = self.any_id(kind)
        body = dumps(patch_body(r, self.ids()))
        if r.random() < 0.1:
            body = text_mutate(body, r)
        pairs = [("attributes", r.choice(ATTRS))] if r.random() < 0.1 else None
        return Request(f"PATCH /{kind}/{{id}}", "PATCH", self.target(f"/{kind}/{quote_id(rid, own)}", pairs),
                       self.headers(True), body, expect=None if own else "not-found")

    def put(self) -> Request:
        r = self.r
        kind = r.choice(["Users", "Groups"])
        rid, own = self.any_id(kind)
        doc = user_body(r, self.prefix) if kind == "Users" else group_body(r, self.prefix, self.ids())
        if r.random() < 0.2:
            doc["id"] = r.choice([rid, "other", None])
        if r.random() < 0.6:
            doc = mutate(doc, r, r.randint(1, 3))
        body = dumps(doc)
        if r.random() < 0.1:
            body = text_mutate(body, r)
        return Request(f"PUT /{kind}/{{id}}", "PUT", self.target(f"/{kind}/{quote_id(rid, own)}"),
                       self.headers(True), body, expect=None if own else "not-found")

    def get_one(self) -> Request:
        r = self.r
        kind = r.choice(["Users", "Groups"])
        rid, own = self.any_id(kind)
        pairs = list_params(r) if r.random() < 0.5 else None
        return Request(f"GET /{kind}/{{id}}", "GET", self.target(f"/{kind}/{quote_id(rid, own)}", pairs),
                       self.headers(False), expect=None if own else "not-found")

    def delete(self) -> Request:
        r = self.r
        kind = r.choice(["Users", "Groups"])
        rid, own = self.any_id(kind)
        return Request(f"DELETE /{kind}/{{id}}", "DELETE", self.target(f"/{kind}/{quote_id(rid, own)}"),
                       self.headers(False), expect=None if own else "not-found")

    def bulk(self) -> Request:
        r = self.r
        body = dumps(bulk_body(r, self.ids() + self.shared.foreign_users[:3], self.prefix))
        if r.random() < 0.1:
            body = text_mutate(body, r)
        return Request("POST /Bulk", "POST", self.target("/Bulk"), self.headers(True), body)

    def discovery(self) -> Request:
        r = self.r
        path = r.choice(["/ServiceProviderConfig", "/ResourceTypes", "/Schemas", "/ResourceTypes/User",
                         "/ResourceTypes/Group", "/ResourceTypes/" + r.choice(WEIRD_IDS), f"/Schemas/{USER}",
                         f"/Schemas/{ENTERPRISE}", f"/Schemas/{SEATBRIDGE}", "/Schemas/" + r.choice(WEIRD_IDS),
                         "/Me", "/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group"])
        label = path if path.count("/") == 1 or path.startswith("/Schemas/urn") else path.rsplit("/", 1)[0] + "/{id}"
        if path.startswith("/Schemas/urn"):
            label = "/Schemas/{id}"
        if path.startswith("/ResourceTypes/"):
            label = "/ResourceTypes/{id}"
        pairs = list_params(r) if r.random() < 0.3 else None
        return Request(f"GET {label}", "GET", self.target(quote_path(path), pairs), self.headers(False))

    def raw_body(self) -> Request:
        """Bodies that are not JSON documents of the right shape at all, on every write endpoint."""
        r = self.r
        kind = r.choice(["Users", "Groups"])
        method, path, label = r.choice([
            ("POST", f"/{kind}", f"POST /{kind}"), ("POST", "/Bulk", "POST /Bulk"),
            ("POST", "/.search", "POST /.search"), ("POST", f"/{kind}/.search", f"POST /{kind}/.search"),
            ("PUT", f"/{kind}/{{id}}", f"PUT /{kind}/{{id}}"), ("PATCH", f"/{kind}/{{id}}", f"PATCH /{kind}/{{id}}"),
        ])
        if "{id}" in path:
            rid = self.own_id(kind) or "x"
            path = path.replace("{id}", rid)
        c = r.random()
        if c < 0.04:
            body = r.choice([b"[" * 100_000, b"{\"a\":" * 30_000 + b"1" + b"}" * 30_000, b"[" * 128 + b"]" * 128])
        elif c < 0.07:
            size = r.choice([1024 * 1024 - 10, 1024 * 1024, 1024 * 1024 + 1, 3 * 1024 * 1024])
            body = b'{"schemas":["' + USER.encode() + b'"],"userName":"' + b"a" * size + b'"}'
        elif c < 0.4:
            body = r.randbytes(r.randint(0, 2000))
        elif c < 0.5:
            body = b"\xef\xbb\xbf" + dumps(user_body(r, self.prefix))
        else:
            base = user_body(r, self.prefix) if kind == "Users" else patch_body(r, self.ids())
            body = text_mutate(dumps(base), r)
        h = self.headers(True, 0.3)
        content_length = True
        if r.random() < 0.1:
            # chunked transfer coding instead of Content-Length, sometimes with broken chunks
            h.append(("Transfer-Encoding", "chunked"))
            if r.random() < 0.7:
                body = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in _chunks(body, r)) + b"0\r\n\r\n"
                content_length = False
            else:
                # Broken framing: the server cannot know where the next request starts, so closing
                # the connection without an answer is a correct reaction (actix-http does that).
                body = b"zz\r\n" + body[:10] + b"\r\n0\r\n\r\n"
                return Request(label + " (bad chunked)", method, self.target(path), h, body, expect="may-close",
                               content_length=False)
        return Request(label + " (raw)", method, self.target(path), h, body, content_length=content_length)

    def weird_method(self) -> Request:
        r = self.r
        path, label = r.choice([("/Users", "/Users"), ("/Groups", "/Groups"), ("/Bulk", "/Bulk"),
                                ("/.search", "/.search"), ("/Schemas", "/Schemas"), ("/ResourceTypes", "/ResourceTypes"),
                                ("/ServiceProviderConfig", "/ServiceProviderConfig"), ("/Users/.search", "/Users/.search"),
                                (f"/Users/{self.own_id('Users') or 'x'}", "/Users/{id}"), ("/Me", "/Me"), ("", "/"),
                                ("/Groups/x/y", "/Groups/x/y")])
        method = r.choice(METHODS)
        body = dumps(user_body(r, self.prefix)) if r.random() < 0.4 else None
        return Request(f"{method} {label} (method)", method, self.target(path), self.headers(body is not None), body)

    def weird_target(self) -> Request:
        """Paths and query strings that are hard to route or decode."""
        r = self.r
        kind = r.choice(["Users", "Groups"])
        c = r.random()
        if c < 0.2:
            t = self.target(f"/{kind}/" + r.choice(WEIRD_IDS))
        elif c < 0.35:
            t = self.target(f"/{kind}?" + r.choice(["filter=%zz", "filter=%", "%%%", "&&&", "=", "filter",
                                                    "count=1&count=2", "startIndex=1&startIndex=-5",
                                                    "filter=" + "a" * 9000, "x=" + "y" * 60_000, "filter=%00",
                                                    "filter=userName%20eq%20%22%ff%22", "a=1;b=2", "?", "#frag"]))
        elif c < 0.5:
            # raw bytes in the request target: invalid UTF-8, control characters
            t = (self.base_path + f"/{kind}/").encode() + r.choice([b"\xff\xfe", b"\xc0\xaf", b"a\x01b", b"\x7f",
                                                                    b"\xe2\x82", b"%", b" x"])
        elif c < 0.6:
            t = self.target(r.choice(["//Users", "/Users/", "/Users//", "/./Users", "/Users/../Groups", "/users",
                                      "/USERS", "/Users/.search/x", "/Users/x/y/z", "/Bulk/x", "/Schemas/", "/Nope",
                                      "/%55sers", "/Users%2Fx", "/ResourceTypes/User/x"]))
        elif c < 0.7:
            t = self.target(f"/{kind}", [("filter", weird_filter(r)) for _ in range(r.randint(2, 4))])
        elif c < 0.8:
            t = "/" + r.choice(["scim/v2", "scim/v2/", "scim", "scim/v1/Users", "scim//v2/Users", "SCIM/V2/Users",
                                "scim/v2/Users/", "api/v1/../../scim/v2/Users", "*"])
        elif c < 0.9:
            t = self.target(f"/{kind}/" + "a" * r.choice([8000, 20000, 70000]))
        else:
            t = r.choice(["*", "http://127.0.0.1/scim/v2/Users", "scim/v2/Users", "/scim/v2/Users" + "?" * 500])
        return Request(f"GET {kind} (target)", "GET", t, self.headers(False))

    def foreign(self) -> Request:
        """Reads and writes at another tenant's ids with this tenant's token: must be 404."""
        r = self.r
        kind = "Users" if r.random() < 0.6 else "Groups"
        lst = self.shared.foreign_users if kind == "Users" else self.shared.foreign_groups
        if not lst:
            return self.get_one()
        rid = r.choice(lst)
        method = r.choice(["GET", "PUT", "PATCH", "DELETE"])
        body = None
        if method == "PUT":
            body = dumps(user_body(r, self.prefix) if kind == "Users" else group_body(r, self.prefix, []))
        elif method == "PATCH":
            body = dumps({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]
                          if kind == "Users" else [{"op": "replace", "path": "displayName", "value": "pwned"}]})
        return Request(f"{method} /{kind}/{{id}} (foreign)", method, self.target(f"/{kind}/{rid}"),
                       self.headers(body is not None, 0.0), body, expect="not-found")


def _chunks(body: bytes, r: random.Random):
    i = 0
    while i < len(body):
        n = r.randint(1, 4096)
        yield body[i: i + n]
        i += n


def quote_id(rid: str, own: bool) -> str:
    return rid if own else rid  # weird ids are already written as they should travel (some pre-encoded)


def quote_path(path: str) -> str:
    return urllib.parse.quote(path, safe="/:%.~")


# --- running -------------------------------------------------------------------------------------

class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.by_label: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.failures: list[dict] = []
        self.total = 0
        self.conn_errors = 0
        self.non_scim_errors = collections.Counter()
        self.slowest = (0.0, "")

    def record(self, req: Request, status: int | str, elapsed: float = 0.0) -> None:
        with self.lock:
            self.total += 1
            self.by_label[req.label][status] += 1
            if elapsed > self.slowest[0]:
                self.slowest = (elapsed, req.label)

    def fail(self, req: Request, why: str, resp_body: bytes = b"") -> None:
        with self.lock:
            if len(self.failures) < 200:
                raw = build(req.method, req.target, "H", req.headers, req.body, req.content_length)
                self.failures.append({"label": req.label, "why": why, "request": raw[:3000].decode("latin-1"),
                                      "response": resp_body[:1000].decode("utf-8", "replace")})


def allowed_5xx(req: Request, status: int) -> bool:
    # RFC 7644 §3.11: a server without /Me SHOULD answer 501 Not Implemented.
    if status != 501:
        return False
    t = req.target if isinstance(req.target, str) else req.target.decode("latin-1")
    return t.split("?")[0].rstrip("/").endswith("/Me")


def worker(idx: int, args, shared: Shared, stats: Stats, budget: list[int], budget_lock: threading.Lock,
           deadline: float) -> None:
    fz = Fuzzer(args, shared, args.seed * 1000 + idx)
    u = urllib.parse.urlsplit(args.base)
    host = u.netloc
    conn = Conn(u.hostname or "127.0.0.1", u.port or 80, timeout=args.timeout)
    prev = ""
    while True:
        with budget_lock:
            if budget[0] <= 0 or time.monotonic() > deadline:
                break
            budget[0] -= 1
        req = fz.next()
        if req.expect is None and req.body is not None and len(req.body) > args.max_body:
            # Over the server's body limit: it may answer 413/415 at once and reset the connection
            # while the rest of the body is still being sent, so the answer can be lost.
            req.expect = "may-close"
        host_hdr = host
        if fz.r.random() < 0.02:
            host_hdr = fz.r.choice(["", "evil.example:99999", "a" * 3000, "[::1", "x y", "127.0.0.1:0"])
        raw = build(req.method, req.target, host_hdr, req.headers, req.body, req.content_length)
        try:
            resp = conn.send(raw, req.method.upper() if isinstance(req.method, str) else "GET")
        except ConnectionFailed as e:
            conn.close()
            prev = f"{req.label} -> {e}"
            if req.expect == "may-close":
                stats.record(req, "closed")
                continue
            stats.record(req, "conn-error")
            stats.fail(req, f"connection: {e} (previous on this worker: {prev})")
            with stats.lock:
                stats.conn_errors += 1
            conn.close()
            continue
        stats.record(req, resp.status, resp.elapsed)
        prev = f"{req.label} -> {resp.status} {resp.headers.get('connection', '')}"
        if resp.status >= 500 and not allowed_5xx(req, resp.status):
            stats.fail(req, f"status {resp.status}", resp.body)
        if req.expect == "not-found" and resp.status < 300:
            stats.fail(req, f"cross-tenant or wrong-type id answered {resp.status}", resp.body)
        if 400 <= resp.status < 500 and isinstance(req.target, str) and resp.body:
            ct = resp.headers.get("content-type", "")
            if "scim+json" not in ct or ERROR.encode() not in resp.body:
                with stats.lock:
                    stats.non_scim_errors[f"{req.label} {resp.status}"] += 1
        if resp.status == 201 and req.kind and b'"id"' in resp.body:
            try:
                shared.add(req.kind, json.loads(resp.body)["id"])
            except (ValueError, KeyError, TypeError):
                pass
    conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="SCIM base URL, e.g. http://127.0.0.1:8080/scim/v2")
    ap.add_argument("--token", required=True)
    ap.add_argument("--requests", type=int, default=90_000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for one answer")
    ap.add_argument("--max-body", type=int, default=1024 * 1024, help="the server's SEATBRIDGE_MAX_BODY_BYTES")
    ap.add_argument("--max-seconds", type=float, default=3600.0)
    ap.add_argument("--foreign-ids", help="JSON file {users: [...], groups: [...]} of another tenant's ids")
    ap.add_argument("--json-out")
    args = ap.parse_args()
    foreign = json.load(open(args.foreign_ids)) if args.foreign_ids else {}
    r_ascii.seed(args.seed)

    shared, stats = Shared(foreign), Stats()
    budget, budget_lock = [args.requests], threading.Lock()
    start = time.monotonic()
    deadline = start + args.max_seconds
    threads = [threading.Thread(target=worker, args=(i, args, shared, stats, budget, budget_lock, deadline),
                                daemon=True) for i in range(args.workers)]
    for t in threads:
        t.start()
    last = start
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(timeout=1.0)
        if time.monotonic() - last > 15:
            last = time.monotonic()
            print(f"  scim-fuzz: {stats.total} requests, {len(stats.failures)} failures, "
                  f"{stats.total / (last - start):.0f} req/s", file=sys.stderr, flush=True)
    elapsed = time.monotonic() - start

    by_status = collections.Counter()
    for c in stats.by_label.values():
        by_status.update(c)
    five = sum(n for s, n in by_status.items() if isinstance(s, int) and s >= 500)
    result = {
        "requests": stats.total,
        "seconds": round(elapsed, 1),
        "by_status": {str(k): v for k, v in sorted(by_status.items(), key=lambda kv: str(kv[0]))},
        "by_endpoint": {k: {str(s): n for s, n in sorted(v.items(), key=lambda kv: str(kv[0]))}
                        for k, v in sorted(stats.by_label.items())},
        "five_xx": five,
        "connection_errors": stats.conn_errors,
        "failures": stats.failures,
        "non_scim_error_bodies": dict(stats.non_scim_errors.most_common(20)),
        "slowest": {"seconds": round(stats.slowest[0], 3), "label": stats.slowest[1]},
        "created": {"users": len(shared.users), "groups": len(shared.groups)},
    }
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(result, f, indent=1)
    print(f"scim-fuzz: {stats.total} requests in {elapsed:.1f}s ({stats.total / max(elapsed, 0.001):.0f} req/s); "
          f"{five} 5xx (incl. allowed), {stats.conn_errors} connection errors, {len(stats.failures)} failures")
    for f in stats.failures[:10]:
        print(f"  FAIL {f['label']}: {f['why']}\n    request: {f['request'][:400]!r}\n    response: {f['response'][:300]!r}")
    return 1 if stats.failures else 0


if __name__ == "__main__":
    sys.exit(main())
