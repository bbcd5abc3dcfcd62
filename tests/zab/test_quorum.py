"""QuorumConfig: strict majorities of voters; observers and unknown sids never count."""
import pytest

from coordcore.zab.quorum import QuorumConfig


@pytest.mark.parametrize("voters, observers, sids, expected", [
    ({1}, (), {1}, True),
    ({1}, (), set(), False),
    ({1, 2, 3}, (), {1, 2}, True),
    ({1, 2, 3}, (), {3}, False),
    ({1, 2, 3, 4}, (), {1, 2}, False),          # half is not a majority
    ({1, 2, 3, 4}, (), {1, 2, 4}, True),
    ({1, 2, 3, 4, 5}, (), {1, 2}, False),
    ({1, 2, 3, 4, 5}, (), {3, 4, 5}, True),
    ({1, 2, 3, 4, 5, 6, 7}, (), {1, 2, 3}, False),
    ({1, 2, 3, 4, 5, 6, 7}, (), {1, 2, 3, 7}, True),
    ({1, 2, 3}, {4, 5}, {1, 4, 5}, False),       # observers never count
    ({1, 2, 3}, {4}, {1, 2, 4}, True),
    ({1, 2, 3}, (), {1, 9, 10}, False),          # unknown sids never count
], ids=str)
def test_is_quorum(voters, observers, sids, expected):
    assert QuorumConfig(frozenset(voters), frozenset(observers)).is_quorum(sids) is expected


@pytest.mark.parametrize("voters, size, quorum_size", [({1}, 1, 1), ({1, 2, 3}, 3, 2), (set(range(1, 6)), 5, 3),
                                                      (set(range(1, 8)), 7, 4), ({1, 2}, 2, 2)])
def test_sizes_count_voters_only(voters, size, quorum_size):
    q = QuorumConfig(frozenset(voters), frozenset({100}))
    assert (q.size, q.quorum_size) == (size, quorum_size)


def test_membership():
    q = QuorumConfig(frozenset({1, 2, 3}), frozenset({4}))
    assert q.is_voter(1) and not q.is_voter(4) and q.is_observer(4) and not q.is_observer(1)
    assert q.is_member(4) and not q.is_member(5)
    assert q.members == {1, 2, 3, 4}


@pytest.mark.parametrize("voters, observers, message", [
    (set(), set(), "at least one voter"),
    ({1, 2}, {2}, "both voters and observers"),
    ({-1, 2}, set(), "non-negative"),
])
def test_bad_configurations_are_refused(voters, observers, message):
    with pytest.raises(ValueError, match=message):
        QuorumConfig(frozenset(voters), frozenset(observers))
