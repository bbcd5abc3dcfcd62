"""The deterministic simulator of a coordcore ensemble (DESIGN.md section 8; TigerBeetle's VOPR style).

N servers (3, 5, 7 voters, plus observers) run the real ``coordcore.zab`` code in one thread under one
seeded scheduler with a virtual clock in ms.  Every non-deterministic input -- network, disk, clock,
crashes, clients -- comes from that scheduler, so a seed reproduces a run, and its trace, byte for byte.

Modules:
    simulator.py  Simulation: the event heap, faults, phases (chaos, then heal and converge), the trace
    network.py    SimNetwork: FIFO links, drop/duplicate/delay, reconnect reordering, partitions
    disk.py       SimDisk: durable vs pending appends, epoch files, truncate, snapshot install, crash
    zab_host.py   ZabHost: drives a QuorumPeer by the HOST RULES, with named crash sites between steps
    fle_host.py   FleHost: drives FastLeaderElection alone (elections under faults)
    replica_host.py  ReplicaHost (--mode replica): the real Replica (node, tree) over a QuorumPeer over
                  MemoryStorage (mem_disk.py), with simulated clients (replica_clients.py)
    checker.py    Checker: the invariants, checked after every event
    profiles.py   the fault profiles a seed picks from
    runner.py     ``coordcore sim``: many seeds, progress, replay commands, a one-line summary

What it does not do (yet): shrink a failing schedule; in replica mode, model client<->server latency,
sync(), auth or reconfig.
"""
from coordcore.testing.sim.checker import Checker, Violation
from coordcore.testing.sim.simulator import RunResult, SimConfig, Simulation, run

__all__ = ["Checker", "RunResult", "SimConfig", "Simulation", "Violation", "run"]
