"""``coordcore ensemble``: a local ensemble of real ``coordcore serve`` processes, for trying things out.

Picks free ports, writes each member's zoo.cfg and ``myid`` (under ``--data``, or a temporary
directory removed at the end), starts the members, waits until one leads and every other member
follows or observes, prints the connect string and each member's pid and role, and then keeps
printing role changes until Ctrl-C (or SIGTERM, or its terminal closing), when it stops every member.  Members talk to each
other directly (no fault-injecting proxies: those are coordcore.testing's).
"""
from __future__ import annotations

import signal
import sys
import threading
import time

POLL_S = 0.5


def run(voters: int, observers: int, data: str | None, tick_ms: int, config: dict, out=sys.stdout) -> int:
    from coordcore.testing.ensembles import CoordcoreEnsemble
    from coordcore.testing.servers import ServerStartError

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    cfg = {"tickTime": tick_ms, **config}
    ens = CoordcoreEnsemble(voters=voters, observers=observers, config=cfg, work_dir=data, proxied=False)
    try:
        print(f"coordcore ensemble: starting {voters} voters and {observers} observers in {ens.work_dir}",
              file=out, flush=True)
        try:
            ens.start(timeout=60)
        except ServerStartError as e:
            print(f"coordcore: error: the ensemble did not start: {e}", file=sys.stderr)
            return 1
        modes = ens.modes()
        print(f"connect string: {ens.connect_string}", file=out)
        for sid in ens.sids:
            m = ens.member(sid)
            print(f"  server.{sid}  pid {ens.pid(sid)}  {modes.get(sid) or 'not serving'}  "
                  f"client {ens.direct_connect_string(sid)}  config {m.config_path}", file=out)
        print("Ctrl-C stops every member.", file=out, flush=True)
        while not stop.wait(POLL_S):
            now = ens.modes(timeout=1)
            for sid in ens.sids:
                if now.get(sid) != modes.get(sid):
                    alive = "exited" if not ens.running(sid) else (now.get(sid) or "not serving")
                    print(f"{time.strftime('%H:%M:%S')} server.{sid} (pid {ens.pid(sid)}): "
                          f"{modes.get(sid) or 'not serving'} -> {alive}", file=out, flush=True)
            modes = now
        print("coordcore ensemble: stopping", file=out, flush=True)
        return 0
    finally:
        ens.close()
        for sig, handler in old.items():
            signal.signal(sig, handler)
