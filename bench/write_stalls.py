#!/usr/bin/env python3
"""Repeated write scenarios on one seeded SQLite server, for the write tail (bench/RESULTS.md,
twelfth session): seeds N users as bench/run.py does, builds the check index (as the full run
does before its write scenarios), then runs each scenario `--runs` times. With `--strace FILE`,
every fsync, fdatasync and ftruncate of the server is logged with its duration (`strace -T`).

    python3 bench/write_stalls.py --binary target/release/seatbridge --users 100000 --runs 3
"""
import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import run as R


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", required=True)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--only", default="patch_deactivate", help="comma-separated write scenarios")
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--strace", help="file for strace's log of the server's syncs")
    args = p.parse_args()
    load = argparse.Namespace(duration=args.duration, threads=2, connections=32)

    with tempfile.TemporaryDirectory(prefix="sb-writes-") as work:
        sb = R.Seatbridge(str(Path(args.binary).resolve()), "sqlite", args.users, work)
        sb.seed()
        sb.server.start()
        tracer = None
        try:
            R.log(f"check index built in {R.wait_for_check_index(sb.base, args.users + 1):.2f} s")
            if args.strace:
                tracer = subprocess.Popen(["strace", "-f", "-T", "-tt", "-e", "trace=fsync,fdatasync,ftruncate",
                                           "-o", args.strace, "-p", str(sb.server.proc.pid)])
                time.sleep(1)
            for mode in args.only.split(","):
                for i in range(args.runs):
                    env = sb.wrk_env(mode)
                    env["TAG"] = f"w{i}x{time.time():.0f}"  # POSTed userNames unique per run
                    R.log(f"{mode} run {i + 1}: {R.run_wrk(sb.base, env, load)}")
                    R.settle(sb.base)
        finally:
            if tracer:
                tracer.terminate()
            sb.server.stop()


if __name__ == "__main__":
    main()
