"""Fault profiles: each seed picks one, so a batch of seeds covers calm runs, lossy links, partitions
and crash storms.  A profile is data only (see :class:`~coordcore.testing.sim.network.FaultProfile`)."""
from __future__ import annotations

from coordcore.testing.sim.network import FaultProfile


def profiles() -> dict[str, FaultProfile]:
    return {
        "calm": FaultProfile(
            name="calm", fault_interval_ms_min=400, fault_interval_ms_max=3000,
            weights={"crash": 2, "restart_all": 1, "tick": 2, "slow_disk": 1},
            site_crash_sync=0.03, site_crash_broadcast=0.003),
        "lossy": FaultProfile(
            name="lossy", drop=0.04, duplicate=0.05, delay=0.05, delay_ms_max=15,
            weights={"reconnect": 4, "crash": 1, "pause": 1, "tick": 2, "relook": 1},
            site_crash_sync=0.02, site_crash_broadcast=0.002),
        "partitions": FaultProfile(
            name="partitions", delay=0.02,
            weights={"partition": 3, "one_way": 2, "isolate_leader": 3, "bridge": 2, "heal": 3,
                     "crash": 1, "relook": 1},
            site_crash_sync=0.02, site_crash_broadcast=0.002),
        "crashy": FaultProfile(
            name="crashy", fault_interval_ms_min=60, fault_interval_ms_max=800,
            weights={"crash": 3, "crash_leader": 3, "crash_all": 1, "slow_disk": 2, "pause": 1,
                     "snapshot": 1},
            site_crash_sync=0.25, site_crash_broadcast=0.03, crash_keeps_prefix=0.4),
        "chaos": FaultProfile(
            name="chaos", drop=0.02, duplicate=0.03, delay=0.03, delay_ms_max=12,
            fault_interval_ms_min=60, fault_interval_ms_max=900,
            weights={"crash": 2, "crash_leader": 2, "partition": 2, "one_way": 1, "isolate_leader": 2,
                     "bridge": 1, "heal": 2, "reconnect": 2, "pause": 1, "slow_disk": 2, "tick": 1,
                     "snapshot": 1, "relook": 1},
            site_crash_sync=0.1, site_crash_broadcast=0.01),
    }


PROFILE_NAMES = tuple(profiles())
