"""Server benchmark: coordcore vs Apache ZooKeeper, or load against any server.

    python benchmarks/server_bench.py                       # --side-by-side (default when no --connect)
    python benchmarks/server_bench.py --ops get --duration 10
    python benchmarks/server_bench.py --connect HOST:PORT --ops get,set --outstanding 16,64

All options: ``python benchmarks/server_bench.py --help`` (the same tool as ``coordcore bench``).
"""
import sys

from coordcore.bench import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not {"--connect", "--side-by-side", "-h", "--help"} & {a.split("=")[0] for a in argv}:
        argv = ["--side-by-side", *argv]
    sys.exit(main(argv))
