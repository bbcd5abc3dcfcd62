#!/usr/bin/env python
"""Memory benchmark: resident memory of coordcore and Apache ZooKeeper holding the same znodes.

    python benchmarks/memory_bench.py                        # 400k znodes in steps of 50k
    python benchmarks/memory_bench.py --nodes 1000000 --step 100000 --data-bytes 32

Both servers start fresh (standalone, free ports, fsync on; ZooKeeper with zkServer.sh's -Xmx1000m
unless --zk-heap says otherwise). The same persistent znodes -- ``--data-bytes`` of data under
``/memory-bench/n<9 digits>`` -- are created in both, one pipelined session each, and after every
``--step`` znodes each server's resident memory (VmRSS, and its peak VmHWM) is printed side by side,
with the ratio coordcore / zookeeper and the memory each server added per znode since it started.
coordcore's peak is also given counting its forked snapshot writers (every ``snapCount`` = 100,000
txns), sampled every 20 ms.

``coordcore bench --side-by-side`` measures memory after a timed load, where the faster server also
holds more znodes; this one holds the data set equal, which is how to size a machine for a tree.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from coordcore.bench import (  # noqa: E402
    OP_CREATE,
    PERSISTENT,
    BenchError,
    RawSession,
    _ChildMemorySampler,
    _start_server,
    create_body,
    parse_host_port,
    vm_rss_kib,
)

KINDS = ("coordcore", "zookeeper")


def _positive(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--nodes", type=_positive, default=400_000, help="znodes to create in all (default 400000)")
    p.add_argument("--step", type=_positive, default=50_000, help="print a row every STEP znodes (default 50000)")
    p.add_argument("--data-bytes", type=int, default=100, help="data per znode (default 100)")
    p.add_argument("--window", type=_positive, default=64, help="creates in flight per server (default 64)")
    p.add_argument("--zk-heap", default="1000m", help="JVM -Xmx for ZooKeeper (default 1000m, as zkServer.sh)")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if not 0 <= args.data_bytes <= 1_000_000:
        p.error("--data-bytes must be between 0 and 1000000 (jute.maxbuffer)")
    data = b"x" * args.data_bytes
    servers: dict = {}
    sessions: dict = {}
    sampler = None
    try:
        for kind in KINDS:
            try:
                handle, _ = _start_server(kind, 2000, args.zk_heap)
            except BenchError as e:
                raise SystemExit(f"error: {e}") from None
            servers[kind] = handle
        sampler = _ChildMemorySampler(servers["coordcore"].pid)
        for kind, handle in servers.items():
            s = sessions[kind] = RawSession(*parse_host_port(handle.connect_string))
            err, _ = s.call(OP_CREATE, create_body("/memory-bench", b"", PERSISTENT))
            if err:
                raise SystemExit(f"error: {kind}: cannot create /memory-bench (error {err})")
        time.sleep(0.5)  # let both settle after start-up before the baseline reading
        base = {k: vm_rss_kib(h.pid) for k, h in servers.items()}
        print(f"resident memory with {args.data_bytes}-byte znodes; ratio = coordcore / zookeeper; "
              f"'B/znode' = growth since start-up per znode")
        print(f"{'znodes':>9} | {'cc MiB':>8} {'zk MiB':>8} {'ratio':>6} | {'cc peak':>8} {'zk peak':>8} "
              f"{'ratio':>6} | {'cc +writer':>10} | {'cc B/znode':>10} {'zk B/znode':>10}")
        print(f"{0:>9} | {base['coordcore'] / 1024:>8.1f} {base['zookeeper'] / 1024:>8.1f} "
              f"{base['coordcore'] / base['zookeeper']:>6.2f} |", flush=True)
        done = 0
        while done < args.nodes:
            n = min(args.step, args.nodes - done)
            for kind, s in sessions.items():
                reqs = [(OP_CREATE, create_body(f"/memory-bench/n{done + i:09d}", data, PERSISTENT))
                        for i in range(n)]
                bad = [err for err, _ in s.pipeline(reqs, window=args.window) if err]
                if bad:
                    raise SystemExit(f"error: {kind}: {len(bad)} creates failed (first error {bad[0]})")
            done += n
            rss = {k: vm_rss_kib(h.pid) for k, h in servers.items()}
            hwm = {k: vm_rss_kib(h.pid, field="VmHWM") for k, h in servers.items()}
            per = {k: (rss[k] - base[k]) * 1024 / done for k in KINDS}
            writer = max(hwm["coordcore"], sampler.peak_kib)
            print(f"{done:>9} | {rss['coordcore'] / 1024:>8.1f} {rss['zookeeper'] / 1024:>8.1f} "
                  f"{rss['coordcore'] / rss['zookeeper']:>6.2f} | {hwm['coordcore'] / 1024:>8.1f} "
                  f"{hwm['zookeeper'] / 1024:>8.1f} {hwm['coordcore'] / hwm['zookeeper']:>6.2f} | "
                  f"{writer / 1024:>10.1f} | {per['coordcore']:>10.0f} {per['zookeeper']:>10.0f}", flush=True)
    finally:
        if sampler is not None:
            sampler.stop()
        for s in sessions.values():
            s.close()
        for h in servers.values():
            h.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
