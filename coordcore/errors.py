"""ZooKeeper error codes and the exceptions shared by packages.

API outcomes (NONODE, BADVERSION, ...) are *values* returned by the tree and
the request pipeline; only protocol violations and broken invariants raise.
"""
from __future__ import annotations

import enum


class Err(enum.IntEnum):
    OK = 0
    SYSTEMERROR = -1
    RUNTIMEINCONSISTENCY = -2
    DATAINCONSISTENCY = -3
    CONNECTIONLOSS = -4
    MARSHALLINGERROR = -5
    UNIMPLEMENTED = -6
    OPERATIONTIMEOUT = -7
    BADARGUMENTS = -8
    UNKNOWNSESSION = -12
    NEWCONFIGNOQUORUM = -13
    RECONFIGINPROGRESS = -14
    APIERROR = -100
    NONODE = -101
    NOAUTH = -102
    BADVERSION = -103
    NOCHILDRENFOREPHEMERALS = -108
    NODEEXISTS = -110
    NOTEMPTY = -111
    SESSIONEXPIRED = -112
    INVALIDCALLBACK = -113
    INVALIDACL = -114
    AUTHFAILED = -115
    SESSIONMOVED = -118
    NOTREADONLY = -119
    EPHEMERALONLOCALSESSION = -120
    NOWATCHER = -121
    REQUESTTIMEOUT = -122
    RECONFIGDISABLED = -123
    SESSIONCLOSEDREQUIRESASLAUTH = -124
    QUOTAEXCEEDED = -125
    THROTTLEDOP = -127


class ProtocolError(Exception):
    """The peer broke the protocol (bad frame, oversize, malformed record): close that connection only."""


class ApiError(Exception):
    """Raised inside request preparation to short-circuit with a ZooKeeper error code."""

    __slots__ = ("code",)

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code
