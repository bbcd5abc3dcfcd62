"""``coordcore bench --side-by-side --ensemble N``: a coordcore and an Apache ZooKeeper ensemble of the
same shape, the same load, side by side.

Both ensembles are N voters of real processes on free ports (:mod:`coordcore.testing.ensembles` with
no link proxies), fsync on, the same tickTime / initLimit / syncLimit; ZooKeeper runs with the JVM
settings of its own zkServer.sh (``-Xmx1000m``, the default collector and JIT) and FastLeaderElection's
default notification interval.  What is measured, in this order, every figure for both:

``startup``     time from spawning the first process to the whole ensemble serving: a write
                acknowledged and then readable on every member (probed every few ms, each member on a
                fresh connection); ``--startup-rounds`` fresh ensembles of each backend, interleaved,
                the median printed with the range.
``throughput``  create / set / get / exists at each ``--levels`` entry (connections x outstanding,
                default 1x1, 4x16, 4x64), with the connections spread over the members (leader
                first, then the followers, round-robin) and, as a variant, every connection on one
                follower; ops/s, p50, p99.  ``--rounds`` interleaved rounds, the median printed.
``failover``    the leader SIGKILLed under a 1x1 setData load (the writer on a follower, reconnecting
                to the next member when its connection goes, with a new session): time from the kill
                to the next acknowledged write, and to a surviving member's ``srvr`` saying leader;
                ``--kills`` kills per tree size (``--failover-znodes``, default 0, 100k, 500k znodes of
                100 bytes), median and worst.  The killed member is restarted and waited for before
                the next kill.
``catchup``     a follower stopped (SIGTERM) while N creates go by (``--catchup``, default 10k, 100k),
                then started: time until it serves at the leader's zxid, and which sync it got (read
                from its own log: coordcore's ``sync.diff``/``sync.snap``/``sync.trunc`` events,
                ZooKeeper's "Getting a diff / snapshot from the leader", "Truncating log").
``memory``      every member's resident memory (VmRSS, as ``ps`` shows it) after the load and its
                peak (VmHWM), and separately the peak of any helper process a member forks
                (coordcore's snapshot writer), which does not count towards the ratio.

Progress goes to stderr as structlog events (``bench.ensemble.*``); the table to stdout; ``--json``
writes every raw figure.
"""
from __future__ import annotations

import re
import statistics
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field

import structlog

from coordcore import bench as B

log = structlog.get_logger("coordcore.bench")

SECTIONS = ("startup", "throughput", "failover", "catchup", "memory")
PLACEMENTS = ("spread", "follower")


def parse_levels(text: str) -> list[tuple[int, int]]:
    """``"1x1,4x16"`` -> [(1, 1), (4, 16)] (connections x outstanding)."""
    out = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)x(\d+)\s*", part)
        if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
            raise ValueError(f"bad level {part!r}: expected CONNECTIONSxOUTSTANDING, e.g. 4x16")
        out.append((int(m.group(1)), int(m.group(2))))
    return out


# -- ensembles --------------------------------------------------------------------------------------

def ensemble_config(tick_ms: int, init_limit: int, sync_limit: int) -> dict:
    return {"tickTime": tick_ms, "initLimit": init_limit, "syncLimit": sync_limit, "forceSync": "yes",
            "maxClientCnxns": 0, "minSessionTimeout": 2 * tick_ms, "maxSessionTimeout": 20 * tick_ms,
            "4lw.commands.whitelist": "*"}


def make_bench_ensemble(kind: str, voters: int, config: dict, zk_heap: str = "1000m"):
    from coordcore.testing import ensembles as E  # noqa: PLC0415 - test support, loaded only here

    if kind == "coordcore":
        return E.CoordcoreEnsemble(voters=voters, config=config, proxied=False)

    class StockZooKeeperEnsemble(E.ZooKeeperEnsemble):
        """ZooKeeper as zkServer.sh runs it: -Xmx1000m, the JVM's default collector and full JIT, and
        FastLeaderElection's own maximum notification interval."""

        jvm_heap = zk_heap
        jvm_flags = ("-XX:-UsePerfData",)

        def system_properties(self, sid):
            props = super().system_properties(sid)
            props.pop("zookeeper.fastleader.maxNotificationInterval", None)
            return props

    return StockZooKeeperEnsemble(voters=voters, config=config, proxied=False)


def _addr(ens, sid: int) -> tuple[str, int]:
    return ens.host, ens.member(sid).client_port


def _try_session(ens, sid: int, timeout_ms: int = 10000) -> B.RawSession | None:
    host, port = _addr(ens, sid)
    try:
        return B.RawSession(host, port, timeout_ms, connect_timeout_s=1.0)
    except (OSError, B.BenchError):
        return None


def _call(session: B.RawSession, op: int, body: bytes) -> int | None:
    """The error code of one request, or None if the connection failed."""
    try:
        return session.call(op, body)[0]
    except (OSError, B.BenchError):
        return None


def start_and_time(ens, timeout_s: float = 120.0) -> float:
    """Start every member; ms from the first spawn until a write is acknowledged and readable on every
    member (each member asked on a fresh connection, every few ms)."""
    errors: list[BaseException] = []

    def launch():
        try:
            ens.start(timeout=timeout_s)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    path = f"/bench-ready-{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    starter = threading.Thread(target=launch, name="bench-ensemble-start", daemon=True)
    starter.start()
    deadline = time.monotonic() + timeout_s
    written = False
    seen: set[int] = set()
    while len(seen) < len(ens.sids):
        if errors:
            raise B.BenchError(f"{ens.backend} ensemble did not start: {errors[0]}")
        if time.monotonic() > deadline:
            raise B.BenchError(f"{ens.backend} ensemble did not serve within {timeout_s}s")
        for sid in ens.sids:
            if sid in seen or (not written and seen):
                continue
            s = _try_session(ens, sid)
            if s is None:
                continue
            try:
                if not written:
                    err = _call(s, B.OP_CREATE, B.create_body(path, b"", B.PERSISTENT))
                    if err in (0, -110):  # ok, or NODEEXISTS: an earlier attempt's reply was lost
                        written = True
                if written:
                    err = _call(s, B.OP_EXISTS, B.read_body(path))
                    if err == 0:
                        seen.add(sid)
            finally:
                s.close()
        time.sleep(0.003)
    elapsed_ms = (time.perf_counter() - t0) * 1000.0
    starter.join(timeout_s)
    if errors:
        raise B.BenchError(f"{ens.backend} ensemble did not start: {errors[0]}")
    s = _try_session(ens, ens.sids[0])
    if s is not None:
        _call(s, B.OP_DELETE, B.delete_body(path))
        s.close()
    return elapsed_ms


def roles(ens) -> tuple[int, list[int]]:
    modes = ens.wait_serving(60)
    leader = next(s for s, m in modes.items() if m == "leader")
    return leader, [s for s, m in modes.items() if m != "leader"]


def _zxid(info: dict) -> int:
    try:
        return int(info.get("Zxid", "-1"), 16)
    except ValueError:
        return -1


def wait_caught_up(ens, sids, timeout_s: float = 300.0) -> None:
    """Until every member in ``sids`` serves at (or past) the zxid the leader had when this began."""
    deadline = time.monotonic() + timeout_s
    target = None
    while True:
        infos = {s: ens.srvr(s) for s in ens.sids}
        if target is None:
            lead = [i for i in infos.values() if i.get("Mode") == "leader"]
            target = _zxid(lead[0]) if lead else None
        if target is not None and all(infos[s].get("Mode") and _zxid(infos[s]) >= target for s in sids):
            return
        if time.monotonic() > deadline:
            raise B.BenchError(f"{ens.backend}: members did not catch up: "
                               f"{ {s: (i.get('Mode'), i.get('Zxid')) for s, i in infos.items()} }")
        time.sleep(0.02)


def helper_sampler(pid: int):
    """Peak private memory of the processes member ``pid`` forks (coordcore's snapshot writer), sampled
    every ~20 ms: what such a helper adds to the machine while it runs."""
    return B._ChildMemorySampler(pid, include_parent=False)


# -- failover -----------------------------------------------------------------------------------------

class _Writer:
    """1 x 1 setData on one node, through whichever member answers: on a failed connection it moves to
    the next member (a fresh session) at once, then every 5 ms.  Records each acknowledgement's time."""

    def __init__(self, ens, path: str, first: int, session_timeout_ms: int):
        self.ens, self.path, self.session_timeout_ms = ens, path, session_timeout_ms
        self.order = [first] + [s for s in ens.sids if s != first]
        self.acks: list[tuple[float, float]] = []  # (sent, acknowledged)
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-failover-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        body = B.set_body(self.path, B.DATA)
        i = 0
        while not self._stop.is_set():
            s = _try_session(self.ens, self.order[i % len(self.order)], self.session_timeout_ms)
            i += 1
            if s is None:
                self._stop.wait(0.005)
                continue
            try:
                while not self._stop.is_set():
                    sent = time.perf_counter()
                    err = _call(s, B.OP_SETDATA, body)
                    if err != 0:
                        break
                    self.acks.append((sent, time.perf_counter()))
            finally:
                s.sock.close()
            self.reconnects += 1

    def first_ack_after(self, t: float, timeout_s: float) -> float | None:
        """When the first write *sent* after ``t`` was acknowledged (a write in flight at the kill may be
        answered by the dying leader's commit: that says nothing about the failover)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.acks and self.acks[-1][0] > t:
                return next(acked for sent, acked in self.acks if sent > t)
            time.sleep(0.002)
        return None


def populate(ens, leader: int, parent: str, count: int) -> None:
    """``count`` 100-byte znodes under ``parent``, pipelined to the leader."""
    host, port = _addr(ens, leader)
    s = B.RawSession(host, port, 60000)
    try:
        err, _ = s.call(B.OP_CREATE, B.create_body(parent, b"", B.PERSISTENT))
        if err not in (0, -110):
            raise B.BenchError(f"{ens.backend}: cannot create {parent}: {err}")
        chunk = 2000
        for start in range(0, count, chunk):
            reqs = [(B.OP_CREATE, B.create_body(f"{parent}/n{i:07d}", B.DATA, B.PERSISTENT))
                    for i in range(start, min(count, start + chunk))]
            bad = [e for e, _ in s.pipeline(reqs, window=256) if e not in (0, -110)]
            if bad:
                raise B.BenchError(f"{ens.backend}: populate failed with error {bad[0]}")
    finally:
        s.close()


def measure_failover(ens, kills: int, session_timeout_ms: int) -> list[dict]:
    leader, followers = roles(ens)
    path = f"/bench-failover-{uuid.uuid4().hex[:8]}"
    s = B.RawSession(*_addr(ens, leader), 30000)
    s.call(B.OP_CREATE, B.create_body(path, B.DATA, B.PERSISTENT))
    s.close()
    wait_caught_up(ens, ens.sids)
    writer = _Writer(ens, path, followers[0], session_timeout_ms)
    writer.start()
    out = []
    try:
        for k in range(kills):
            leader, followers = roles(ens)
            time.sleep(0.5)  # the writer settles on a serving member
            t_kill = time.perf_counter()
            ens.kill(leader)
            t_leader = None
            deadline = time.monotonic() + 120
            while t_leader is None and time.monotonic() < deadline:
                for sid in followers:
                    if ens.srvr(sid, timeout=0.5).get("Mode") == "leader":
                        t_leader = time.perf_counter()
                        break
                else:
                    time.sleep(0.005)
            t_write = writer.first_ack_after(t_kill, 120)
            row = {"kill": k + 1, "killed": leader,
                   "to_write_ms": None if t_write is None else (t_write - t_kill) * 1000.0,
                   "to_leader_ms": None if t_leader is None else (t_leader - t_kill) * 1000.0}
            out.append(row)
            log.info("bench.ensemble.failover", backend=ens.backend, **row)
            ens.start_member(leader, wait=True, timeout=300)
            wait_caught_up(ens, ens.sids)
    finally:
        writer.stop()
    return out


# -- catch-up -----------------------------------------------------------------------------------------

_SYNC_PATTERNS = {
    "coordcore": (("diff", "sync.diff"), ("snap", "sync.snap"), ("trunc", "sync.trunc")),
    "zookeeper": (("diff", "Getting a diff from the leader"), ("snap", "Getting a snapshot from leader"),
                  ("trunc", "Truncating log")),
}


def sync_kind(ens, sid: int) -> str:
    """Which sync member ``sid`` got from its leader since its last start, from its own log."""
    text = ens.member(sid).log_path.read_text(errors="replace")
    text = text[text.rfind("==== start"):]
    found = [(text.find(needle), kind) for kind, needle in _SYNC_PATTERNS[ens.backend] if needle in text]
    return min(found)[1] if found else "?"


def measure_catchup(ens, count: int) -> dict:
    leader, followers = roles(ens)
    victim = followers[-1]
    ens.stop(victim)
    populate(ens, leader, f"/bench-catchup-{uuid.uuid4().hex[:8]}", count)
    lead_zxid = _zxid(ens.srvr(leader))
    t0 = time.perf_counter()
    ens.start_member(victim, wait=False)
    deadline = time.monotonic() + 600
    while True:
        info = ens.srvr(victim, timeout=0.5)
        if info.get("Mode") in ("follower", "observer") and _zxid(info) >= lead_zxid:
            break
        if time.monotonic() > deadline:
            raise B.BenchError(f"{ens.backend}: member {victim} did not catch up ({info})")
        time.sleep(0.005)
    row = {"txns": count, "member": victim, "ms": (time.perf_counter() - t0) * 1000.0,
           "sync": sync_kind(ens, victim)}
    log.info("bench.ensemble.catchup", backend=ens.backend, **row)
    return row


# -- the whole run --------------------------------------------------------------------------------------

@dataclass
class EnsembleFigures:
    backend: str
    startup_ms: float = 0.0                          # the median of startup_rounds_ms
    startup_rounds_ms: list = field(default_factory=list)
    throughput: dict = field(default_factory=dict)   # "op placement CxO" -> [RunResult...] (rounds)
    failover: dict = field(default_factory=dict)     # znodes -> [rows]
    catchup: list = field(default_factory=list)
    rss_kib: dict = field(default_factory=dict)      # sid -> after the load
    peak_kib: dict = field(default_factory=dict)     # sid -> VmHWM
    helper_peak_kib: dict = field(default_factory=dict)  # sid -> peak of forked helpers' private memory


def _throughput(ensembles, figures, runner, args) -> None:
    targets = {}
    for kind, ens in ensembles.items():
        leader, followers = roles(ens)
        addrs = {"spread": [_addr(ens, s) for s in [leader, *followers]],
                 "follower": [_addr(ens, followers[0])]}
        host, port = _addr(ens, leader)
        base = B.Target(kind, host, port, args.nodes)
        base.setup()
        wait_caught_up(ens, ens.sids)
        for placement in args.placements:
            t = B.Target(kind, host, port, args.nodes, addresses=addrs[placement])
            t.root, t.nodes = base.root, base.nodes
            targets[(kind, placement)] = t
        targets[(kind, None)] = base
        if args.prewarm > 0:
            each = args.prewarm / len(args.ops)
            for op in args.ops:
                B.run_one(targets[(kind, args.placements[0])], runner, op, 16, 4, each, 0.0)
    for op in args.ops:
        for placement in args.placements:
            for conns, outstanding in args.levels:
                key = f"{op} {placement} {conns}x{outstanding}"
                for r in range(args.rounds):
                    for kind in ensembles:  # interleaved: background noise hits both alike
                        res = B.run_one(targets[(kind, placement)], runner, op, outstanding, conns,
                                        args.duration, args.warmup)
                        figures[kind].throughput.setdefault(key, []).append(res)
                print(f"  {key}: " + ", ".join(
                    f"{k} {statistics.median(x.ops_per_s for x in figures[k].throughput[key]):.0f} ops/s"
                    for k in ensembles), flush=True)
    for kind in ensembles:
        targets[(kind, None)].cleanup()


def run(args, runner) -> dict:
    config = ensemble_config(args.tick_ms, args.init_limit, args.sync_limit)
    ensembles: dict = {}
    figures = {k: EnsembleFigures(k) for k in ("coordcore", "zookeeper")}
    samplers: dict = {}
    try:
        if args.startup_rounds > 1:  # fresh ensembles, interleaved, before the ones the load runs on
            for r in range(args.startup_rounds - 1):
                for kind in ("coordcore", "zookeeper"):
                    ens = make_bench_ensemble(kind, args.ensemble, config, args.zk_heap)
                    try:
                        figures[kind].startup_rounds_ms.append(start_and_time(ens))
                    finally:
                        ens.close()
            print("start to serving, rounds so far: " + ", ".join(
                f"{k} {[round(x) for x in f.startup_rounds_ms]}" for k, f in figures.items()), flush=True)
        for kind in ("coordcore", "zookeeper"):
            ens = make_bench_ensemble(kind, args.ensemble, config, args.zk_heap)
            ensembles[kind] = ens
            figures[kind].startup_rounds_ms.append(start_and_time(ens))
            figures[kind].startup_ms = statistics.median(figures[kind].startup_rounds_ms)
            print(f"{kind}: {args.ensemble} members serving {figures[kind].startup_rounds_ms[-1]:.0f} ms "
                  f"after the first process started; "
                  f"{','.join(ens.direct_connect_string(s) for s in ens.sids)}", flush=True)
            if kind == "coordcore":  # ZooKeeper forks nothing (and sampling its JVM threads costs CPU)
                samplers[kind] = {s: helper_sampler(ens.pid(s)) for s in ens.sids}
        if "throughput" in args.sections:
            print("throughput (median so far after each row):", flush=True)
            _throughput(ensembles, figures, runner, args)
        if "memory" in args.sections:
            for kind, ens in ensembles.items():
                for s in ens.sids:
                    figures[kind].rss_kib[s] = B.vm_rss_kib(ens.pid(s), include_children=False)
                    figures[kind].peak_kib[s] = B.vm_rss_kib(ens.pid(s), include_children=False, field="VmHWM")
                    sampler = samplers.get(kind, {}).get(s)
                    figures[kind].helper_peak_kib[s] = sampler.stop() if sampler else 0
        failed = None
        try:
            if "catchup" in args.sections:
                for count in args.catchup:
                    for kind, ens in ensembles.items():
                        figures[kind].catchup.append(measure_catchup(ens, count))
                        print(f"  catch-up of {count} txns, {kind}: {figures[kind].catchup[-1]['ms']:.0f} ms "
                              f"({figures[kind].catchup[-1]['sync']})", flush=True)
            if "failover" in args.sections:
                for znodes in args.failover_znodes:
                    for kind, ens in ensembles.items():
                        leader, _ = roles(ens)
                        if znodes:
                            print(f"  {kind}: loading {znodes} znodes for the failover runs", flush=True)
                            populate(ens, leader, f"/bench-tree-{znodes}-{uuid.uuid4().hex[:6]}", znodes)
                            wait_caught_up(ens, ens.sids)
                        figures[kind].failover[znodes] = measure_failover(ens, args.kills, args.session_timeout_ms)
        except Exception as e:  # noqa: BLE001 - report what was measured, then the failure
            failed = e
        text = format_report(figures, args)
        print(text)
        if failed is not None:
            raise B.BenchError(f"the run stopped: {failed}") from failed
        return {"ensemble": args.ensemble, "config": config,
                "figures": {k: _jsonable(v) for k, v in figures.items()}}
    finally:
        for per in samplers.values():
            for smp in per.values():
                smp.stop()
        for ens in ensembles.values():
            try:
                ens.close()
            except Exception as e:  # noqa: BLE001 - report and keep stopping the others
                log.warning("bench.ensemble.stop_failed", error=str(e))


def _jsonable(f: EnsembleFigures) -> dict:
    d = asdict(f)
    d["throughput"] = {k: [asdict(r) for r in v] for k, v in f.throughput.items()}
    d["failover"] = {str(k): v for k, v in f.failover.items()}
    return d


def _med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(v, spec=".0f") -> str:
    return "-" if v is None else format(v, spec)


def format_report(figures: dict, args) -> str:
    cc, zk = figures["coordcore"], figures["zookeeper"]
    lines = [f"ensemble side by side: {args.ensemble} voters each, tickTime {args.tick_ms}, initLimit "
             f"{args.init_limit}, syncLimit {args.sync_limit}, fsync on (ratio = coordcore / zookeeper)"]
    n = len(cc.startup_rounds_ms)
    lines.append(f"start to serving (write acked, readable on every member), median of {n}: coordcore "
                 f"{cc.startup_ms:.0f} ms ({min(cc.startup_rounds_ms):.0f}-{max(cc.startup_rounds_ms):.0f}), "
                 f"zookeeper {zk.startup_ms:.0f} ms ({min(zk.startup_rounds_ms):.0f}-{max(zk.startup_rounds_ms):.0f}),"
                 f" ratio {B._ratio(cc.startup_ms, zk.startup_ms)}")
    if cc.throughput:
        lines.append(f"throughput, median of {args.rounds} interleaved rounds (spread over min-max of the rounds):")
        lines.append(f"{'op':<7} {'where':<9} {'CxO':>5} | {'cc ops/s':>9} {'zk ops/s':>9} {'ratio':>6} | "
                     f"{'cc p50':>7} {'zk p50':>7} | {'cc p99':>7} {'zk p99':>7} | {'cc range':>13} {'zk range':>13}"
                     f" | err")
        for key, runs in cc.throughput.items():
            op, where, level = key.split()
            zruns = zk.throughput.get(key)
            if not zruns:
                continue
            a, b = B.median_run(runs), B.median_run(zruns)
            lo_a, hi_a = min(r.ops_per_s for r in runs), max(r.ops_per_s for r in runs)
            lo_b, hi_b = min(r.ops_per_s for r in zruns), max(r.ops_per_s for r in zruns)
            errs = sum(r.errors for r in runs + zruns)
            lines.append(f"{op:<7} {where:<9} {level:>5} | {a.ops_per_s:>9.0f} {b.ops_per_s:>9.0f} "
                         f"{B._ratio(a.ops_per_s, b.ops_per_s):>6} | {a.p50_ms:>7.2f} {b.p50_ms:>7.2f} | "
                         f"{a.p99_ms:>7.2f} {b.p99_ms:>7.2f} | {lo_a:>6.0f}-{hi_a:<6.0f} {lo_b:>6.0f}-{hi_b:<6.0f}"
                         f" | {errs}")
        lines.append("latencies in ms")
    for znodes in cc.failover:
        for who, f in (("coordcore", cc), ("zookeeper", zk)):
            rows = f.failover.get(znodes, [])
            w = [r["to_write_ms"] for r in rows]
            ld = [r["to_leader_ms"] for r in rows]
            lines.append(f"failover with {znodes} znodes, {who}: kill -> next acked write median "
                         f"{_fmt(_med(w))} ms, worst {_fmt(max((x for x in w if x is not None), default=None))}"
                         f" ms; kill -> new leader in srvr median {_fmt(_med(ld))} ms, worst "
                         f"{_fmt(max((x for x in ld if x is not None), default=None))} ms ({len(rows)} kills)")
    for a, b in zip(cc.catchup, zk.catchup):
        lines.append(f"catch-up of {a['txns']} txns: coordcore {a['ms']:.0f} ms ({a['sync']}), zookeeper "
                     f"{b['ms']:.0f} ms ({b['sync']}), ratio {B._ratio(a['ms'], b['ms'])}")
    if cc.rss_kib:
        for who, f in (("coordcore", cc), ("zookeeper", zk)):
            lines.append(f"resident memory after the load, {who}: " + ", ".join(
                f"member {s} {kib / 1024:.1f} MiB (peak {f.peak_kib[s] / 1024:.1f})" for s, kib in f.rss_kib.items()))
        ratio = B._ratio(statistics.median(cc.rss_kib.values()), statistics.median(zk.rss_kib.values()))
        lines.append(f"memory ratio per member (medians): {ratio}")
        helpers = {s: v for s, v in cc.helper_peak_kib.items() if v}
        lines.append("forked helper (snapshot writer) peak private memory, coordcore: " + (
            ", ".join(f"member {s} {v / 1024:.1f} MiB" for s, v in helpers.items()) if helpers else
            "none ran") + "; not counted in the ratio")
    return "\n".join(lines)
