"""ZAB and FastLeaderElection as pure state machines (no sockets, no clock, no threads).

Package map:
    quorum.py    QuorumConfig: who votes, who observes, what a quorum is.
    election.py  FastLeaderElection: votes, logical clock, notifications, deciding a leader.

Time enters as ``now_ms`` arguments and every output is a value the host drains (messages to send,
decisions); txns are opaque bytes to this package.
"""
