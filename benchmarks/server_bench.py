"""Server benchmark: coordcore vs Apache ZooKeeper, or load against any server.

    python benchmarks/server_bench.py                       # --side-by-side with the defaults
    python benchmarks/server_bench.py --connect HOST:PORT --ops get,set --outstanding 16,64

All options: ``python benchmarks/server_bench.py --help`` (the same tool as ``coordcore bench``).
"""
import sys

from coordcore.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["--side-by-side"]))
