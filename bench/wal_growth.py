#!/usr/bin/env python3
"""WAL file size under mixed load: GET and POST at once, on SQLite, with the size of the
`-wal` file sampled each second. Held read snapshots must not keep the WAL from restarting
(bench/RESULTS.md, tenth session): the size should level off (about 40 MB), not climb.

    python3 bench/wal_growth.py target/release/seatbridge [post-connections] [seconds]

Seeds 1,000 users as bench/run.py does; needs wrk.
"""

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary = str(Path(sys.argv[1]).resolve())
    post_conns = sys.argv[2] if len(sys.argv) > 2 else "4"
    seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    script = str(Path(__file__).resolve().parent / "wrk.lua")
    with tempfile.TemporaryDirectory(prefix="sb-wal-") as work:
        sb = bench.Seatbridge(binary, "sqlite", 1000, work)
        sb.seed()
        sb.server.start()
        env = dict(os.environ, TOKEN=sb.token, N="1000", GROUP=sb.group)

        def load(mode, conns, **extra):
            return subprocess.Popen(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "-s", script, sb.base],
                                    env=dict(env, MODE=mode, **extra), stdout=subprocess.PIPE, text=True)

        gets = load("get", 24)
        posts = load("post", post_conns, TAG=str(time.time()))
        sizes = []
        for _ in range(seconds + 1):
            time.sleep(1)
            try:
                sizes.append(os.path.getsize(f"{sb.db_path}-wal") // 1024)
            except OSError:
                sizes.append(-1)
        rate = lambda out: re.search(r"Requests/sec:\s+(\S+)", out).group(1)  # noqa: E731
        print(f"GET {rate(gets.communicate()[0])} req/s, POST {rate(posts.communicate()[0])} req/s")
        print("WAL KiB, each second:", sizes)
        sb.server.stop()


if __name__ == "__main__":
    main()
