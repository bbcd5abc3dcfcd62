"""It must catch real bugs: each test plants one deliberate bug in the zab code (patched from here, never
through a switch in production code) and asserts the simulator finds it within a stated number of seeds.

Each test prints "seeds-to-detection" and asserts two things about the detecting run: the broken invariant
is one that this bug breaks, and the same seed passes on the unpatched code (so the bug, not the
simulator or an open issue, made it fail).  The budgets are a few times the measured figure, so a small
change in scheduling does not make them flaky while a simulator that stopped looking would fail them.
"""
import pytest

from coordcore.testing.sim import run
from coordcore.zab import election, history, leader, learner

from sim_mutation import mutate, seeds_to_detection, sim_config


def check_detected(monkeypatch, name: str, limit: int, expected: set[str], **kwargs) -> int:
    n, result, others = seeds_to_detection(limit, expected, **kwargs)
    other_text = "; ".join(f"seed {r.seed}: {r.violation.invariant}" for r in others[:5])
    assert n is not None, f"{name}: no {sorted(expected)} violation in {limit} seeds (others: {other_text})"
    v = result.violation
    print(f"\n{name}: seeds-to-detection={n} (budget {limit}); seed={result.seed} voters={result.voters} "
          f"observers={result.observers} step={result.violation_step} {v.invariant}: {v.detail}")
    monkeypatch.undo()
    clean = run(sim_config(result.seed, result.voters, result.observers, **kwargs))
    assert clean.violation is None or clean.violation.invariant != v.invariant, \
        f"{name}: seed {result.seed} fails the same way without the bug: {clean.violation}"
    return n


def test_ack_sent_before_fsync(monkeypatch):
    # The follower ACKs a PROPOSAL as soon as it is appended, before the host synced it (R1).
    mutate(monkeypatch, learner.Learner, "on_proposal", "self._log(msg.txns, msg.prev_zxid)",
           "self._log(msg.txns, msg.prev_zxid)\n"
           "    if self.is_voter and self.phase >= Phase.WAIT_UPTODATE:\n"
           "        self.peer.send(self.leader_sid, m.Ack(self.history.last_zxid))")
    check_detected(monkeypatch, "ACK before fsync", 10, {"HOST", "ACKQ"})


def test_diff_on_top_of_an_unknown_tail(monkeypatch):
    # The leader DIFFs a learner whose last zxid it does not have (ZOOKEEPER-1154).
    mutate(monkeypatch, leader.Leader, "_sync_learner", "if hist.contains(p):",
           "if hist.last_at_or_below(p) is not None:")
    check_detected(monkeypatch, "DIFF on an unknown tail", 60, {"PFX", "I2", "LOST", "EXC"}, profile="crashy")


def test_current_epoch_written_before_the_synced_history_is_durable(monkeypatch):
    # The learner adopts the new epoch as soon as the sync starts, before the history arrives
    # (ZOOKEEPER-4646/-4785): a crash then leaves currentEpoch = e over an old history.
    mutate(monkeypatch, learner.Learner, "on_diff", "self.phase = Phase.SYNC",
           "self.peer.write(SetCurrentEpoch(self.epoch))\n    self.phase = Phase.SYNC")
    check_detected(monkeypatch, "currentEpoch before the history", 150, {"LOST", "PFX", "I6", "ACKQ", "I2"},
                   profile="crashy")


def test_leader_proposing_before_its_newleader_quorum(monkeypatch):
    # The leader activates (serves, proposes) right after the ACKEPOCH quorum, without NEWLEADER ACKs.
    mutate(monkeypatch, leader.Leader, "_try_activate",
           "if self.phase != Phase.SYNC or not self.peer.quorum.is_quorum(acked):",
           "if self.phase != Phase.SYNC:")
    check_detected(monkeypatch, "proposing before the NEWLEADER quorum", 10, {"I8", "ACKQ"})


def test_learner_applying_a_commit_it_has_not_made_durable(monkeypatch):
    # Applies follow COMMIT alone, not COMMIT and the local fsync (ZOOKEEPER-4882).
    mutate(monkeypatch, history.History, "take_applies", "upto = min(self.committed_zxid, self.durable_zxid)",
           "upto = self.committed_zxid")
    check_detected(monkeypatch, "apply before durable", 20, {"DUR"})


def test_votes_compared_by_zxid_before_epoch(monkeypatch):
    # FLE's total order with zxid first: a stale tail from an old epoch beats a newer epoch (reference 4.2).
    mutate(monkeypatch, election, "total_order_predicate",
           "(new.peer_epoch, new.zxid, new.leader) > (current.peer_epoch, current.zxid, current.leader)",
           "(new.zxid, new.peer_epoch, new.leader) > (current.zxid, current.peer_epoch, current.leader)")
    check_detected(monkeypatch, "votes by zxid before epoch", 20, {"FLE"}, mode="fle", steps=300)


def test_isolated_leader_still_acknowledging_writes(monkeypatch):
    # The leader counts every synced learner as having ACKed all it proposed, so a leader cut off from
    # its followers goes on committing and acknowledging client writes.
    mutate(monkeypatch, leader.Leader, "_try_commit",
           "acks += [(h.acked_zxid, h.sid) for h in",
           "acks += [(self.history.last_zxid, h.sid) for h in")
    check_detected(monkeypatch, "isolated leader acknowledging", 20, {"ACKQ"}, profile="partitions")


def test_the_mutation_helper_refuses_a_moved_mutation_point(monkeypatch):
    with pytest.raises(AssertionError, match="mutation point moved"):
        mutate(monkeypatch, leader.Leader, "_try_commit", "no such text", "x")
