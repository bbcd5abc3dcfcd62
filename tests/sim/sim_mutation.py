"""Source-level mutation for the simulator's "it must catch real bugs" tests.

`mutate(monkeypatch, owner, name, old, new)` takes the source of function `name` on `owner` (a class or
a module), replaces the text `old` by `new` exactly once, compiles the result in the function's own
module namespace and monkeypatches it in.  Production code carries no switches for this.  If `old` is
no longer in the source (the code moved on), the test fails saying so, rather than testing nothing.
"""
from __future__ import annotations

import inspect
import sys
import textwrap

from coordcore.testing.sim import SimConfig, run


def mutate(monkeypatch, owner, name: str, old: str, new: str) -> None:
    func = inspect.getattr_static(owner, name)
    source = textwrap.dedent(inspect.getsource(func))
    count = source.count(old)
    assert count == 1, (f"mutation point moved: {old!r} occurs {count} times in "
                        f"{getattr(owner, '__name__', owner)}.{name}; update the mutation test")
    module = sys.modules[func.__module__]
    namespace = dict(vars(module))
    exec(compile(source.replace(old, new), f"<mutant of {func.__qualname__}>", "exec"), namespace)
    monkeypatch.setattr(owner, name, namespace[name])


def combos(count: int):
    """(seed, voters, observers) in a fixed order that covers 3/5/7 voters with and without observers."""
    shapes = [(3, 0), (5, 1), (3, 1), (7, 0), (5, 0), (7, 1)]
    for seed in range(count):
        yield (seed,) + shapes[seed % len(shapes)]


#: The baseline a mutation run starts from: link loss is always reported (an unreported loss is a
#: liveness case of its own, see test_sim_known_bugs.py).  The I6-SYNC window is no violation (the
#: checker counts it: storage/epochs.py).
BASELINE = dict(tolerate=frozenset(), link_lost_odds=1.0)


def sim_config(seed: int, voters: int, observers: int, **kwargs) -> SimConfig:
    return SimConfig(seed=seed, voters=voters, observers=observers, **{**BASELINE, **kwargs})


def seeds_to_detection(limit: int, expected: set[str], **kwargs) -> tuple[int | None, object, list]:
    """Runs seeds until one breaks an invariant in `expected`; returns (runs needed, that result, other
    violations met on the way) or (None, None, others)."""
    others = []
    for n, (seed, voters, observers) in enumerate(combos(limit), 1):
        result = run(sim_config(seed, voters, observers, **kwargs))
        if not result.ok:
            if result.violation.invariant in expected:
                return n, result, others
            others.append(result)
    return None, None, others
