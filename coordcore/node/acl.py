"""ACL checks, ACL fixup and authentication schemes (world, auth, digest, ip, super)."""
from __future__ import annotations

import base64
import hashlib
import ipaddress

from coordcore.errors import ApiError, Err
from coordcore.tree.hashorder import id_set_order
from coordcore.wire.jute import OPEN_ACL, is_open_acl

PERM_READ, PERM_WRITE, PERM_CREATE, PERM_DELETE, PERM_ADMIN = 1, 2, 4, 8, 16


def digest_id(user_password: str) -> str:
    """'user:password' -> 'user:base64(sha1(user:password))' (ZooKeeper's DigestAuthenticationProvider)."""
    user = user_password.split(":", 1)[0]
    return user + ":" + base64.b64encode(hashlib.sha1(user_password.encode("utf-8")).digest()).decode("ascii")


def _ip_matches(client_ip: str, expr: str) -> bool:
    try:
        net = ipaddress.ip_network(expr, strict=False)
        return ipaddress.ip_address(client_ip) in net
    except ValueError:
        return False


def _ip_valid(expr: str) -> bool:
    try:
        ipaddress.ip_network(expr, strict=False)
        return True
    except ValueError:
        return False


def _digest_valid(ident: str) -> bool:
    # Java's String.split(":") drops trailing empty strings; ZooKeeper wants exactly two parts.
    parts = ident.split(":")
    while parts and parts[-1] == "":
        parts.pop()
    return len(parts) == 2


class AuthInfo:
    """The ids a connection has authenticated as (the ip id is always there)."""

    __slots__ = ("ids", "is_super")

    def __init__(self, client_ip: str):
        self.ids: list[tuple[str, str]] = [("ip", client_ip)]
        self.is_super = False

    def add(self, scheme: str, ident: str) -> None:
        if (scheme, ident) not in self.ids:
            self.ids.append((scheme, ident))
        if scheme == "super":
            self.is_super = True

    def ordered(self) -> list[tuple[str, str]]:
        """The ids in the order ZooKeeper lists a connection's ids (its hash-set order)."""
        return id_set_order(self.ids)


def authenticate(auth: AuthInfo, scheme: str, credentials: bytes | None, client_ip: str,
                 super_digest: str | None) -> bool:
    """Apply an AuthPacket; False means AUTHFAILED (the connection is then closed).

    ``credentials`` is None when the packet carried a null buffer (zkCli's ``addauth digest`` with no
    argument): ZooKeeper's digest provider fails on it, so the digest scheme refuses it too.
    """
    if scheme == "digest":
        if credentials is None:
            return False
        try:
            text = credentials.decode("utf-8")
        except UnicodeDecodeError:
            return False
        ident = digest_id(text)
        auth.add("digest", ident)
        if super_digest and ident == super_digest:
            auth.add("super", "")
        return True
    if scheme == "ip":
        auth.add("ip", client_ip)
        return True
    return False


def check(acl, auth: AuthInfo, perm: int) -> bool:
    if auth.is_super or not acl:
        return True
    for perms, scheme, ident in acl:
        if not perms & perm:
            continue
        if scheme == "world" and ident == "anyone":
            return True
        for s, i in auth.ids:
            if s == scheme:
                if scheme == "ip":
                    if _ip_matches(i, ident):
                        return True
                elif i == ident:
                    return True
    return False


def fixup(acl, auth: AuthInfo) -> list:
    """ZooKeeper's fixupACL: dedupe, expand `auth`, validate schemes; raises ApiError(INVALIDACL)."""
    if not acl:
        raise ApiError(Err.INVALIDACL)
    if is_open_acl(acl):
        return OPEN_ACL
    seen, out = set(), []

    def put(entry):
        if entry not in seen:
            seen.add(entry)
            out.append(entry)

    for perms, scheme, ident in acl:
        if scheme == "world" and ident == "anyone":
            put((perms, scheme, ident))
        elif scheme == "auth":
            ok = False
            for s, i in auth.ordered():
                if s == "digest":
                    put((perms, s, i))
                    ok = True
            if not ok:
                raise ApiError(Err.INVALIDACL)
        elif scheme == "digest" and _digest_valid(ident):
            put((perms, scheme, ident))
        elif scheme == "ip" and _ip_valid(ident):
            put((perms, scheme, ident))
        else:
            raise ApiError(Err.INVALIDACL)
    return out


def mask_digests(acl) -> list:
    """getACL without ADMIN: digest ids come back as user:x."""
    return [(p, s, (i.split(":", 1)[0] + ":x") if s == "digest" else i) for p, s, i in acl]
