"""ZAB and FastLeaderElection as pure state machines (no sockets, no clock, no threads).

Package map:
    quorum.py    QuorumConfig: who votes, who observes, what a quorum is.
    election.py  FastLeaderElection: votes, logical clock, notifications, deciding a leader.
    messages.py  the ZAB packets (FollowerInfo ... SyncReply) and the binary codec for every peer message.
    history.py   the in-memory log window: logged / durable / committed / applied, gap checks.
    ready.py     Ready (what the host must do, in order: the HOST RULES), the storage writes, PeerDurable.
    role.py      RoleFailed and the hooks the peer calls on a role.
    leader.py    the leader role: discovery, per-learner DIFF/TRUNC/SNAP sync, broadcast, timeouts.
    learner.py   the follower and observer role: the strict 6.2 sync order, broadcast, pings.
    peer.py      QuorumPeer: the one object a host drives; owns FLE and the current role, emits Ready.

Time enters as ``now_ms`` arguments and every output is a value the host drains (messages to send,
decisions); txns are opaque bytes to this package.
"""
