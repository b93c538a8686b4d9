#!/usr/bin/env python3
"""The load harness behind bench/run.sh (bench/RESULTS.md says how to read its output).

Seeds seatbridge with N users (SQL straight into the database: seeding is not what is measured),
starts the release binary, and drives each scenario with wrk, recording req/s, latency, RSS and
the CPU time per request of the server (and of PostgreSQL); then does the same for the peers
(scim2-server, SCIMMY, a bare actix-web handler) on the same machine in the same run. Writes a
JSON file and a Markdown report; nothing here decides pass or fail.
"""

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
SERVICE_TOKEN = "bench-service-token"
BIG_GROUP = 50_000

# Scenario name -> (wrk MODE, label). Reads first: writes change what later reads see. The deep
# page comes last: on PostgreSQL the OFFSET queries wrk gives up on keep running on the server
# after the scenario, and the scenario after it paid for them (the check's p99 was 84-88 ms
# behind it, 8 ms without it).
SEATBRIDGE_SCENARIOS = [
    ("get", "GET /Users/{id}"),
    ("filter_user", "filter=userName eq"),
    ("filter_email", "filter=emails[value eq]"),
    ("list", "list count=100"),
    ("walk", "full import walk, one client"),
    ("check", "entitlement check"),
    ("post", "POST /Users (seat check)"),
    ("patch_deactivate", "PATCH Okta (de)activate"),
    ("member_add", "group member add (50k group)"),
    ("list_deep", "list count=100, last page"),
]
PEER_SCENARIOS = ["get", "filter_user", "list", "post"]


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, token=None, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/scim+json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def wait_for_check_index(base, users, timeout=120.0):
    """Asks one check, which starts indexing the tenant's users, and waits until the index holds
    them all (the `seatbridge_check_index_users` gauge): what a server does once, at its first
    check of a tenant. Returns the seconds it took, or None if the index never filled."""
    started = time.monotonic()
    http("GET", f"{base}/api/v1/entitlements/check?tenant=bench&user=u1", SERVICE_TOKEN)
    want = f'seatbridge_check_index_users{{tenant="bench"}} {users}'
    while time.monotonic() - started < timeout:
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
            lines = resp.read().decode().splitlines()
        if want in lines:
            took = round(time.monotonic() - started, 2)
            log(f"check index of {users:,} users built in {took} s")
            return took
        if time.monotonic() - started > 2 and not any("seatbridge_check_index_users" in x for x in lines):
            log("this binary has no check index")
            return None
        time.sleep(0.05)
    log(f"check index of {users:,} users not built within {timeout} s")
    return None


def wait_http(url, timeout=30.0, any_status=False):
    """Polls until url answers 200 (any HTTP answer with any_status); returns seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return time.perf_counter() - start
        except urllib.error.HTTPError:
            if any_status:
                return time.perf_counter() - start
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.002)
    raise RuntimeError(f"{url} did not answer 200 within {timeout}s")


def rss_mb(pid):
    """(current RSS, peak RSS) of a process in MiB, from /proc."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    kb = lambda k: int(fields.get(k, "0 kB").split()[0])  # noqa: E731
    return round(kb("VmRSS") / 1024, 1), round(kb("VmHWM") / 1024, 1)


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_latency(text):
    m = re.match(r"([\d.]+)(us|ms|s)$", text)
    return round(float(m.group(1)) * UNITS[m.group(2)], 3) if m else None


def cpu_ticks(pids):
    """utime + stime, in clock ticks, of each of `pids` that is still running."""
    ticks = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks[pid] = int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return ticks


def process_tree(pid):
    """`pid` and its descendants (a peer may run under a wrapper)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def postgres_pids():
    out = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def cpu_ms_per_request(before, after, requests):
    """CPU time the processes of `after` spent between the two readings, per request, in ms. A
    process started in between counts from zero (a pool's new database connection)."""
    if not requests:
        return None
    ticks = sum(t - before.get(pid, 0) for pid, t in after.items())
    return round(ticks * 1000 / os.sysconf("SC_CLK_TCK") / requests, 3)


def run_wrk(base, env, args, pid=None, database=False):
    """Loads `base` with wrk. With the server's `pid`, also the CPU time per request of the
    server and (with `database`) of every PostgreSQL process, from /proc: steadier than req/s
    on a shared machine, whose speed moves within minutes."""
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency",
           "-s", str(BENCH / "wrk.lua"), base]
    server = process_tree(pid) if pid else []
    before = cpu_ticks(server), cpu_ticks(postgres_pids()) if database else {}
    out = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, check=True).stdout
    after = cpu_ticks(server), cpu_ticks(postgres_pids()) if database else {}
    result = {"rps": None, "p50_ms": None, "p99_ms": None, "non_2xx": 0, "socket_errors": 0}
    requests = None
    for line in out.splitlines():
        line = line.strip()
        if " requests in " in line:
            requests = int(line.split()[0])
        elif line.startswith("Requests/sec:"):
            result["rps"] = round(float(line.split()[1]))
        elif line.startswith("50%"):
            result["p50_ms"] = parse_latency(line.split()[1])
        elif line.startswith("99%"):
            result["p99_ms"] = parse_latency(line.split()[1])
        elif line.startswith("Non-2xx or 3xx responses:"):
            result["non_2xx"] = int(line.split(":")[1])
        elif line.startswith("Socket errors:"):
            result["socket_errors"] = sum(int(x) for x in re.findall(r"\d+", line))
    if pid:
        result["cpu_ms"] = cpu_ms_per_request(before[0], after[0], requests)
    if database:
        result["db_cpu_ms"] = cpu_ms_per_request(before[1], after[1], requests)
    return result


def run_walk(base, token, size, seconds):
    """One client pages through every user with count=100, startIndex 1, 101, 201, ..., as an
    IdP's full import does (sequentially: each page is asked for after the previous one came
    back). Stops at the end of the list or after `seconds`; reports pages/s and page latency."""
    import http.client

    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {"Authorization": f"Bearer {token}"}
    times, start_index, deadline = [], 1, time.perf_counter() + seconds
    t_start = time.perf_counter()
    while start_index <= size + 1 and time.perf_counter() < deadline:
        t0 = time.perf_counter()
        conn.request("GET", f"/scim/v2/Users?count=100&startIndex={start_index}", headers=headers)
        resp = conn.getresponse()
        body = json.loads(resp.read())
        times.append((time.perf_counter() - t0) * 1000)
        if resp.status != 200 or not body.get("Resources"):
            log(f"walk stopped at startIndex {start_index}: {resp.status} {body}")
            break
        start_index += len(body["Resources"])
    elapsed = time.perf_counter() - t_start
    conn.close()
    if not times:
        return {"rps": 0, "p50_ms": None, "p99_ms": None, "pages": 0, "complete": False,
                "seconds": round(elapsed, 1), "non_2xx": 1, "socket_errors": 0}
    times.sort()
    return {"rps": round(len(times) / elapsed), "p50_ms": round(times[len(times) // 2], 3),
            "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 3),
            "pages": len(times), "complete": start_index > size + 1, "seconds": round(elapsed, 1),
            "non_2xx": 0, "socket_errors": 0}


def settle(base, timeout=120.0):
    """Waits until the server has worked off what the last scenario left queued (wrk stops
    sending, but requests it gave up on still run): /readyz, which queries the database, must
    answer within 100 ms. Otherwise a slow scenario (list_deep) would be measured again in the
    next one."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=10) as resp:
                resp.read()
            if time.perf_counter() - t0 < 0.1:
                return
        except (urllib.error.URLError, TimeoutError):
            pass
        time.sleep(0.5)
    log(f"server did not settle within {timeout:.0f} s")


class Process:
    """A server under test, started in its own work directory."""

    def __init__(self, cmd, env, cwd, ready_url, any_status=False):
        self.cmd, self.env, self.cwd, self.ready_url = cmd, env, cwd, ready_url
        self.any_status = any_status
        self.proc = None

    def start(self):
        """Starts the server; returns seconds from spawn to the first 200 from ready_url."""
        t0 = time.perf_counter()
        self.log = open(Path(self.cwd) / "server.log", "ab")
        self.proc = subprocess.Popen(self.cmd, env={**os.environ, **self.env}, cwd=self.cwd,
                                     stdout=self.log, stderr=self.log)
        wait_http(self.ready_url, any_status=self.any_status)
        return time.perf_counter() - t0

    def stop(self):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self.log.close()


# --- seatbridge -------------------------------------------------------------------------------

class Seatbridge:
    def __init__(self, binary, backend, size, work):
        self.binary, self.backend, self.size, self.work = binary, backend, size, Path(work)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        if backend == "sqlite":
            self.db_path = self.work / "bench.db"
            self.db_url = f"sqlite://{self.db_path}?mode=rwc"
        else:
            self.db_name = f"sb_bench_{size}"
            psql(pg_url(), f"DROP DATABASE IF EXISTS {self.db_name} WITH (FORCE)")
            psql(pg_url(), f"CREATE DATABASE {self.db_name}")
            self.db_url = pg_url(self.db_name)
        self.env = {
            "DATABASE_URL": self.db_url,
            "SEATBRIDGE_LISTEN": f"127.0.0.1:{self.port}",
            "SEATBRIDGE_KEY_DIR": str(self.work / "keys"),
            "SEATBRIDGE_SCIM_RATE": "0",
            "SEATBRIDGE_SERVICE_TOKEN": SERVICE_TOKEN,
            "RUST_LOG": "warn",
        }
        self.server = Process([binary, "serve"], self.env, self.work, f"{self.base}/readyz")

    def cli(self, *args):
        done = subprocess.run([self.binary, *args], env={**os.environ, **self.env}, cwd=self.work,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"seatbridge {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def seed(self):
        """Tenant, token, one template user and the big group over HTTP; N users by SQL."""
        self.cli("migrate")
        self.cli("tenant", "create", "bench", "--plan", "enterprise", "--seats", "100000000")
        self.token = self.cli("token", "create", "--tenant", "bench").strip()
        self.server.start()
        status, user = http("POST", f"{self.base}/scim/v2/Users", self.token, {
            "schemas": [USER], "userName": "template", "displayName": "Template", "active": True,
            "name": {"givenName": "Bench", "familyName": "User"},
            "emails": [{"value": "template@example.com", "primary": True, "type": "work"}],
        })
        assert status == 201, (status, user)
        status, group = http("POST", f"{self.base}/scim/v2/Groups", self.token,
                             {"schemas": [GROUP], "displayName": "big"})
        assert status == 201, (status, group)
        self.group = group["id"]
        self.server.stop()
        t0 = time.perf_counter()
        if self.backend == "sqlite":
            self.seed_sqlite(user["id"])
        else:
            self.seed_postgres(user["id"])
        log(f"{self.backend}: seeded {self.size:,} users in {time.perf_counter() - t0:.1f}s")

    @staticmethod
    def copy_sql(columns, overrides):
        """Column list and SELECT expressions that copy the template row `t`, with overrides."""
        cols = ", ".join(columns)
        exprs = ", ".join(overrides.get(c, f"t.{c}") for c in columns)
        return cols, exprs

    def seed_sqlite(self, template):
        n = self.size
        con = sqlite3.connect(self.db_path)
        user_cols = [r[1] for r in con.execute("PRAGMA table_info(users)")]
        email_cols = [r[1] for r in con.execute("PRAGMA table_info(user_emails)")]
        member_cols = [r[1] for r in con.execute("PRAGMA table_info(group_members)")]
        uid = "printf('00000000-0000-7000-8000-%012d', i)"
        cols, exprs = self.copy_sql(user_cols, {
            "id": uid, "user_name": "'u'||i", "user_name_norm": "'u'||i",
            "display_name": "'User '||i", "display_name_norm": "'user '||i",
            "doc": "json_set(t.doc, '$.userName', 'u'||i, '$.displayName', 'User '||i, "
                   "'$.emails[0].value', 'u'||i||'@example.com')",
        })
        ecols, eexprs = self.copy_sql(email_cols,
                                      {"user_id": uid, "value_norm": "'u'||i||'@example.com'"})
        seq = f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < {n})"
        con.executescript(f"""
            BEGIN;
            {seq} INSERT INTO users ({cols}) SELECT {exprs} FROM n, users t WHERE t.id = '{template}';
            {seq} INSERT INTO user_emails ({ecols}) SELECT {eexprs} FROM n, user_emails t WHERE t.user_id = '{template}';
            COMMIT;
        """)
        self.seed_members_sqlite(con, member_cols)
        # No ANALYZE: with the STAT4 statistics of bundled SQLite, every statement whose plan may
        # depend on a bound value is re-prepared on each execution (seen in perf as sqlite3Reprepare).

        con.close()

    def seed_members_sqlite(self, con, member_cols):
        known = {"group_id", "member_id", "tenant_id", "member_type", "created_at"}
        unknown = set(member_cols) - known
        if unknown:
            raise RuntimeError(f"group_members has columns the seeder does not know: {unknown}")
        con.execute(f"""
            INSERT INTO group_members (group_id, member_id, tenant_id, member_type, created_at)
            SELECT '{self.group}', id, tenant_id, 'User', created_at FROM users
            WHERE user_name_norm <> 'template' AND id <= printf('00000000-0000-7000-8000-%012d', {BIG_GROUP})""")
        con.commit()

    def seed_postgres(self, template):
        n, db = self.size, self.db_name
        cols_of = lambda t: psql(pg_url(db), f"SELECT string_agg(column_name, ',' ORDER BY ordinal_position) "  # noqa: E731
                                 f"FROM information_schema.columns WHERE table_name = '{t}'").strip().split(",")
        uid = "'00000000-0000-7000-8000-' || lpad(i::text, 12, '0')"
        cols, exprs = self.copy_sql(cols_of("users"), {
            "id": uid, "user_name": "'u'||i", "user_name_norm": "'u'||i",
            "display_name": "'User '||i", "display_name_norm": "'user '||i",
            "doc": "jsonb_set(jsonb_set(jsonb_set(t.doc::jsonb, '{userName}', to_jsonb('u'||i)), "
                   "'{displayName}', to_jsonb('User '||i)), '{emails,0,value}', to_jsonb('u'||i||'@example.com'))::text",
        })
        ecols, eexprs = self.copy_sql(cols_of("user_emails"),
                                      {"user_id": uid, "value_norm": "'u'||i||'@example.com'"})
        member_cols = cols_of("group_members")
        unknown = set(member_cols) - {"group_id", "member_id", "tenant_id", "member_type", "created_at"}
        if unknown:
            raise RuntimeError(f"group_members has columns the seeder does not know: {unknown}")
        psql(pg_url(db), f"""
            BEGIN;
            INSERT INTO users ({cols}) SELECT {exprs} FROM generate_series(1, {n}) i, users t WHERE t.id = '{template}';
            INSERT INTO user_emails ({ecols}) SELECT {eexprs} FROM generate_series(1, {n}) i, user_emails t
              WHERE t.user_id = '{template}';
            INSERT INTO group_members (group_id, member_id, tenant_id, member_type, created_at)
              SELECT '{self.group}', id, tenant_id, 'User', created_at FROM users
              WHERE user_name_norm <> 'template' AND id <= '00000000-0000-7000-8000-' || lpad('{BIG_GROUP}', 12, '0');
            COMMIT;
            ANALYZE;
        """)

    def wrk_env(self, mode):
        env = {"MODE": mode, "N": str(self.size), "TOKEN": self.token, "PREFIX": "/scim/v2",
               "GROUP": self.group, "TENANT": "bench", "TAG": f"{self.backend}{self.size}"}
        if mode == "check":
            env["TOKEN"] = SERVICE_TOKEN
        if mode == "member_add":
            # Users outside the seeded 50k members, so each add is a real insert.
            env["LO"] = str(BIG_GROUP + 1)
        return env


def pg_url(db=None):
    """BENCH_POSTGRES_URL, or the same server with database `db`."""
    url = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
    if db:
        url = url.rsplit("/", 1)[0] + "/" + db
    return url


def psql(url, sql):
    done = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"psql failed: {done.stderr}")
    return done.stdout


def bench_seatbridge(binary, backend, size, args, results):
    # With --keep-db the work directory (an SQLite database, the license keys) stays too.
    prefix = f"sb-bench-{backend}-"
    work_dir = contextlib.nullcontext(tempfile.mkdtemp(prefix=prefix)) if args.keep_db \
        else tempfile.TemporaryDirectory(prefix=prefix)
    with work_dir as work:
        sb = Seatbridge(binary, backend, size, work)
        sb.seed()
        starts = []
        for _ in range(args.cold_starts):
            starts.append(sb.server.start())
            sb.server.stop()
        cold_ms = round(statistics.median(starts) * 1000, 1)
        sb.server.start()
        pid = sb.server.proc.pid
        status, page = http("GET", f"{sb.base}/scim/v2/Users?count=0", sb.token)
        if status != 200 or page["totalResults"] != size + 1:  # + the template user
            raise RuntimeError(f"seeding went wrong: {status} {page}")
        idle_rss, _ = rss_mb(pid)
        log(f"{backend} {size:,}: cold start median {cold_ms} ms, idle RSS {idle_rss} MiB")
        row = {"server": "seatbridge", "backend": backend, "users": size, "cold_start_ms": cold_ms,
               "idle_rss_mb": idle_rss, "scenarios": {}}
        for mode, label in SEATBRIDGE_SCENARIOS:
            if mode == "member_add" and size <= BIG_GROUP:
                continue
            if args.only and mode not in args.only:
                continue
            if mode == "walk":
                r = run_walk(sb.base, sb.token, size, args.walk_seconds)
            else:
                index_s = wait_for_check_index(sb.base, size + 1) if mode == "check" else None
                r = run_wrk(sb.base, sb.wrk_env(mode), args, pid, backend == "postgres")
                if index_s is not None:
                    r["index_build_s"] = index_s
            r["rss_mb"], r["peak_rss_mb"] = rss_mb(pid)
            row["scenarios"][mode] = r
            log(f"{backend} {size:,} {label}: {r}")
            settle(sb.base)
        sb.server.stop()
        if args.keep_db:
            log(f"kept {sb.db_url} (token {sb.token})")
        elif backend == "postgres":
            psql(pg_url(), f"DROP DATABASE IF EXISTS {sb.db_name} WITH (FORCE)")
        results.append(row)


# --- peers ------------------------------------------------------------------------------------

def seed_peer(base, prefix, token, n):
    ids = []
    for i in range(1, n + 1):
        status, body = http("POST", f"{base}{prefix}/Users", token, {
            "schemas": [USER], "userName": f"u{i}", "active": True,
            "name": {"givenName": "Bench", "familyName": "User"},
            "emails": [{"value": f"u{i}@example.com", "primary": True, "type": "work"}],
        })
        if status != 201:
            raise RuntimeError(f"peer refused seed user {i}: {status} {body}")
        ids.append(body["id"])
    return ids


def bench_peer(name, cmd, cwd, prefix, token, ready_path, size, args, results):
    port = free_port()
    cmd = [c.replace("{port}", str(port)) for c in cmd]
    base = f"http://127.0.0.1:{port}"
    # Peers are up when they answer at all (SCIMMY wants auth even for discovery).
    server = Process(cmd, {}, cwd, f"{base}{ready_path}", any_status=True)
    with tempfile.TemporaryDirectory(prefix=f"sb-bench-{name}-") as work:
        server.cwd = work
        start = server.start()
        try:
            row = {"server": name, "backend": "memory", "users": size, "cold_start_ms": round(start * 1000, 1),
                   "scenarios": {}}
            ids = []
            if token:
                ids = seed_peer(base, prefix, token, size)
                ids_file = Path(work) / "ids.txt"
                ids_file.write_text("\n".join(ids) + "\n")
            row["idle_rss_mb"] = rss_mb(server.proc.pid)[0]
            modes = PEER_SCENARIOS if token else ["bare"]
            for mode in modes:
                if args.only and mode not in args.only and mode != "bare":
                    continue
                env = {"MODE": mode, "N": str(size), "TOKEN": token or "", "PREFIX": prefix, "TAG": name}
                if ids:
                    env["IDS"] = str(ids_file)
                r = run_wrk(base, env, args, server.proc.pid)
                r["rss_mb"], r["peak_rss_mb"] = rss_mb(server.proc.pid)
                row["scenarios"][mode] = r
                log(f"{name} {mode}: {r}")
        finally:
            server.stop()
    results.append(row)


# --- report -----------------------------------------------------------------------------------

LABELS = dict(SEATBRIDGE_SCENARIOS) | {"bare": "GET (300-byte JSON)"}


def label(row, mode):
    """Peers have no license: their POST is a plain create."""
    if mode == "post" and row["server"] != "seatbridge":
        return "POST /Users"
    return LABELS.get(mode, mode)


def markdown(results, args):
    lines = [f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node()} "
             f"({os.cpu_count()} cores); wrk -t{args.threads} -c{args.connections} -d{args.duration}s, "
             "load generator on the same cores.", ""]
    lines += ["| server | db | users | scenario | req/s | p50 ms | p99 ms | non-2xx | RSS MiB "
              "| CPU ms/req server | CPU ms/req PostgreSQL |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in results:
        for mode, r in row["scenarios"].items():
            lines.append(f"| {row['server']} | {row['backend']} | {row['users']:,} | {label(row, mode)} | "
                         f"{r['rps']:,} | {r['p50_ms']} | {r['p99_ms']} | {r['non_2xx'] + r['socket_errors']} | "
                         f"{r['rss_mb']} | {r.get('cpu_ms', '')} | {r.get('db_cpu_ms', '')} |")
    lines += ["", "| server | db | users | cold start to ready (median) | idle RSS MiB |", "|---|---|---|---|---|"]
    for row in results:
        lines.append(f"| {row['server']} | {row['backend']} | {row['users']:,} | {row['cold_start_ms']} ms | "
                     f"{row.get('idle_rss_mb')} |")
    lines += ratios(results)
    return "\n".join(lines) + "\n"


def ratios(results):
    """seatbridge at the smallest size against each peer, scenario by scenario."""
    peers = [r for r in results if r["server"] not in ("seatbridge", "bare-actix")]
    bare = next((r for r in results if r["server"] == "bare-actix"), None)
    out = ["", "| seatbridge run | scenario | × " + " | × ".join(p["server"] for p in peers) +
           (" | % of bare actix |" if bare else " |"), "|---|---|" + "---|" * (len(peers) + (1 if bare else 0))]
    for row in results:
        if row["server"] != "seatbridge":
            continue
        for mode in PEER_SCENARIOS:
            r = row["scenarios"].get(mode)
            if not r:
                continue
            cells = []
            for p in peers:
                pr = p["scenarios"].get(mode)
                cells.append(f"{r['rps'] / pr['rps']:.2g}×" if pr and pr["rps"] else "–")
            if bare:
                cells.append(f"{100 * r['rps'] / bare['scenarios']['bare']['rps']:.2g} %")
            out.append(f"| {row['backend']} {row['users']:,} | {label(row, mode)} | " + " | ".join(cells) + " |")
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=str(ROOT / "target/release/seatbridge"))
    p.add_argument("--bare", default=str(ROOT / "target/release/examples/bare_actix"))
    p.add_argument("--sizes", default="1000,100000,1000000")
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--peers", default="scim2-server,scimmy,bare-actix")
    p.add_argument("--peer-users", type=int, default=1000)
    p.add_argument("--only", default="", help="comma-separated scenario modes to run (default all)")
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--cold-starts", type=int, default=5)
    p.add_argument("--walk-seconds", type=int, default=120,
                   help="longest time the full-import walk may take before it stops")
    p.add_argument("--keep-db", action="store_true",
                   help="leave each seeded database in place (to profile against it); its URL and token are logged")
    p.add_argument("--out", default=str(BENCH / "results" / "latest"))
    args = p.parse_args()
    args.only = [m for m in args.only.split(",") if m]
    # The servers run in their own work directories: a relative path would not be found there.
    args.binary, args.bare = str(Path(args.binary).resolve()), str(Path(args.bare).resolve())
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk (bench/run.sh does this)")
    results = []
    peers = [x for x in args.peers.split(",") if x]
    if "bare-actix" in peers:
        bench_peer("bare-actix", [args.bare, "127.0.0.1:{port}"], ROOT, "", None, "/", 0, args, results)
    if "scim2-server" in peers:
        bench_peer("scim2-server", ["bash", str(ROOT / "tests/support/scim2-server.sh"), "--port", "{port}",
                                    "--bearer-token", "peer-secret"], ROOT, "/v2", "peer-secret",
                   "/v2/ServiceProviderConfig", args.peer_users, args, results)
    if "scimmy" in peers:
        bench_peer("scimmy", ["node", str(BENCH / "peers/scimmy/server.mjs"), "{port}", "peer-secret"], ROOT,
                   "/scim/v2", "peer-secret", "/scim/v2/ServiceProviderConfig", args.peer_users, args, results)
    for backend in [b for b in args.backends.split(",") if b]:
        for size in [int(s) for s in args.sizes.split(",") if s]:
            bench_seatbridge(args.binary, backend, size, args, results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    report = markdown(results, args)
    out.with_suffix(".md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
