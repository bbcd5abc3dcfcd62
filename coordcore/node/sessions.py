"""SessionTracker: session timeouts and expiry on tick boundaries.  Time is an argument."""
from __future__ import annotations


class Session:
    __slots__ = ("session_id", "timeout_ms", "passwd", "expires_ms", "closing")

    def __init__(self, session_id, timeout_ms, passwd, expires_ms):
        self.session_id = session_id
        self.timeout_ms = timeout_ms
        self.passwd = passwd
        self.expires_ms = expires_ms
        self.closing = False


class SessionTracker:
    """Deadlines are rounded up to the next tick, like ZooKeeper's ExpiryQueue buckets."""

    def __init__(self, tick_ms: int, server_id: int, now_ms: int):
        self.tick_ms = tick_ms
        self.sessions: dict[int, Session] = {}
        # ZooKeeper's SessionTrackerImpl.initializeNextSessionId
        self.next_id = ((server_id << 56) | (((now_ms << 24) & 0xFFFFFFFFFFFFFFFF) >> 8)) & 0x7FFFFFFFFFFFFFFF
        if self.next_id == 0:
            self.next_id = 1

    def _deadline(self, now_ms: int, timeout_ms: int) -> int:
        t = now_ms + timeout_ms
        return (t // self.tick_ms + 1) * self.tick_ms

    def allocate_id(self) -> int:
        sid = self.next_id
        self.next_id += 1
        return sid

    def add(self, session_id: int, timeout_ms: int, passwd: bytes, now_ms: int) -> Session:
        s = Session(session_id, timeout_ms, passwd, self._deadline(now_ms, timeout_ms))
        self.sessions[session_id] = s
        return s

    def get(self, session_id: int) -> Session | None:
        return self.sessions.get(session_id)

    def touch(self, session_id: int, now_ms: int, timeout_ms: int | None = None) -> bool:
        s = self.sessions.get(session_id)
        if s is None or s.closing:
            return False
        if timeout_ms is not None:
            s.timeout_ms = timeout_ms
        s.expires_ms = self._deadline(now_ms, s.timeout_ms)
        return True

    def remove(self, session_id: int) -> None:
        self.sessions.pop(session_id, None)

    def expired(self, now_ms: int) -> list[int]:
        """Sessions past their deadline and not yet closing; they are marked closing."""
        out = []
        for s in self.sessions.values():
            if not s.closing and s.expires_ms <= now_ms:
                s.closing = True
                out.append(s.session_id)
        return out

    def refresh_all(self, now_ms: int) -> None:
        """After recovery every session gets a fresh full timeout (as ZooKeeper does on load)."""
        for s in self.sessions.values():
            s.expires_ms = self._deadline(now_ms, s.timeout_ms)
