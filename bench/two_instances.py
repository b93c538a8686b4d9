#!/usr/bin/env python3
"""Two seatbridge instances on one PostgreSQL: PATCH load through A while product services ask
B for entitlement checks, at the same time (bench/RESULTS.md, twelfth session).

Seeds N users as bench/run.py does, starts A and B on the same database, waits until B has
indexed the tenant for checks, measures B's checks alone, then B's checks during A's PATCHes.

    python3 bench/two_instances.py --binary target/release/seatbridge --users 100000
"""
import argparse
import tempfile
import threading
import time
from pathlib import Path

import run as R


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", required=True)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--connections", type=int, default=16, help="per wrk (two run at once)")
    args = p.parse_args()
    load = argparse.Namespace(duration=args.duration, threads=1, connections=args.connections)

    with tempfile.TemporaryDirectory(prefix="sb-two-") as work:
        a = R.Seatbridge(str(Path(args.binary).resolve()), "postgres", args.users, work)
        a.seed()
        a.server.start()
        port = R.free_port()
        base_b = f"http://127.0.0.1:{port}"
        (Path(work) / "b").mkdir()
        b = R.Process(a.server.cmd, {**a.env, "SEATBRIDGE_LISTEN": f"127.0.0.1:{port}"},
                      str(Path(work) / "b"), f"{base_b}/readyz")
        b.start()
        try:
            R.log(f"B indexed the tenant in {R.wait_for_check_index(base_b, args.users + 1):.2f} s")
            alone = R.run_wrk(base_b, a.wrk_env("check"), load)
            R.log(f"B's checks alone: {alone}")
            R.settle(base_b)
            during = {}
            writer = threading.Thread(
                target=lambda: during.update(patch=R.run_wrk(a.base, a.wrk_env("patch_deactivate"), load)))
            writer.start()
            time.sleep(0.5)
            during["check"] = R.run_wrk(base_b, a.wrk_env("check"), load)
            writer.join()
            R.log(f"A's PATCHes: {during['patch']}")
            R.log(f"B's checks meanwhile: {during['check']}")
        finally:
            b.stop()
            a.server.stop()
            R.psql(R.pg_url(), f"DROP DATABASE IF EXISTS {a.db_name} WITH (FORCE)")


if __name__ == "__main__":
    main()
