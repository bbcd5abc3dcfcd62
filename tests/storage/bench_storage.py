"""Storage micro-benchmark (a script, not a test): python tests/storage/bench_storage.py [--dir D]

Prints: append() rate; the cost of one sync() carrying 1, 16 and 256 txns of
100 bytes, with fsync on and off (the difference is the disk); a raw
write+fdatasync for reference; and load() replay speed.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import tempfile
import time

import structlog

from coordcore.storage.disk import DiskStorage

TXN = b"x" * 100


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_append(root: str, count: int) -> float:
    with DiskStorage(root, root, fsync=False) as s:
        s.load()
        start = time.perf_counter()
        for z in range(1, count + 1):
            s.append(z, TXN)
        elapsed = time.perf_counter() - start
        s.sync()
    return count / elapsed


def bench_sync(root: str, batch: int, rounds: int, fsync: bool) -> list[float]:
    costs = []
    with DiskStorage(root, root, fsync=fsync) as s:
        z = s.load().last_zxid
        s.append(z + 1, TXN)
        s.sync()                      # the segment file exists from here on
        z += 1
        for _ in range(rounds):
            for _ in range(batch):
                z += 1
                s.append(z, TXN)
            start = time.perf_counter()
            s.sync()
            costs.append(time.perf_counter() - start)
    return costs


def bench_raw_fsync(root: str, rounds: int) -> list[float]:
    fd = os.open(os.path.join(root, "raw"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    costs = []
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            os.write(fd, TXN)
            os.fdatasync(fd)
            costs.append(time.perf_counter() - start)
    finally:
        os.close(fd)
    return costs


def bench_load(root: str, count: int) -> float:
    with DiskStorage(root, root, fsync=False) as s:
        s.load()
        for z in range(1, count + 1):
            s.append(z, TXN)
        s.sync()
    with DiskStorage(root, root) as s:
        start = time.perf_counter()
        state = s.load()
        elapsed = time.perf_counter() - start
    assert len(state.txns) == count
    return count / elapsed


def fresh(parent: str) -> str:
    return tempfile.mkdtemp(prefix="bench-", dir=parent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="directory to benchmark in (default: a new temp dir)")
    parser.add_argument("--rounds", type=int, default=300, help="syncs per batch size")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parent = tempfile.mkdtemp(prefix="coordcore-storage-bench-", dir=args.dir)
    try:
        print(f"append():  {bench_append(fresh(parent), 200_000):,.0f} appends/s (100-byte txns)")
        raw = bench_raw_fsync(fresh(parent), args.rounds)
        print(f"raw write+fdatasync of 100 bytes: p50 {percentile(raw, .5) * 1e6:.0f} us, "
              f"p99 {percentile(raw, .99) * 1e6:.0f} us")
        for batch in (1, 16, 256):
            on = bench_sync(fresh(parent), batch, args.rounds, True)
            off = bench_sync(fresh(parent), batch, args.rounds, False)
            print(f"sync() of {batch:3d} txns: fsync on p50 {percentile(on, .5) * 1e6:6.0f} us "
                  f"p99 {percentile(on, .99) * 1e6:6.0f} us mean {statistics.fmean(on) * 1e6:6.0f} us"
                  f" | fsync off p50 {percentile(off, .5) * 1e6:5.0f} us"
                  f" | {batch / statistics.fmean(on):,.0f} txns/s durable")
        print(f"load():    {bench_load(fresh(parent), 200_000):,.0f} txns/s replayed")
    finally:
        shutil.rmtree(parent, ignore_errors=True)


if __name__ == "__main__":
    main()
