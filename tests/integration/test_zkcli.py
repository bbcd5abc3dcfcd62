"""ZooKeeper's own command-line client (zkCli.sh, Java) works against the server.

zkCli.sh is driven non-interactively: commands are piped on stdin (JLine is off when stdin is not a
terminal) and each command is followed by ``printwatches``, a local command that prints
"printwatches is on", so the merged output splits into one block per command.
"""
from __future__ import annotations

import os
import re
import subprocess

import pytest

from coordcore.testing import find_zkcli

MARKER = "printwatches is on"


def run_zkcli(server, commands: list[str], timeout: float = 90) -> list[list[str]]:
    """Run ``commands`` in one zkCli session; return the output lines of each command."""
    zkcli = find_zkcli()
    script = "printwatches\n" + "".join(f"{cmd}\nprintwatches\n" for cmd in commands) + "quit\n"
    env = dict(os.environ)
    # a small, quick-starting JVM; the client logs nowhere (slf4j NOP), so stdout is the CLI's own output
    env["CLIENT_JVMFLAGS"] = "-Xmx64m -XX:+UseSerialGC -XX:TieredStopAtLevel=1"
    proc = subprocess.run([zkcli, "-waitforconnection", "-timeout", "15000", "-server", server.connect_string],
                          input=script, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, env=env)
    lines = proc.stdout.splitlines()
    marks = [i for i, line in enumerate(lines) if line.strip() == MARKER]
    assert len(marks) == len(commands) + 1, f"zkCli output did not follow the script:\n{proc.stdout}"
    return [[line for line in lines[a + 1:b] if line.strip()] for a, b in zip(marks, marks[1:])]


def parse_stat(lines: list[str]) -> dict[str, str]:
    stat = {}
    for line in lines:
        m = re.match(r"^(\w+) = (.*)$", line)
        if m:
            stat[m.group(1)] = m.group(2)
    return stat


STAT_FIELDS = ["cZxid", "ctime", "mZxid", "mtime", "pZxid", "cversion", "dataVersion", "aclVersion",
               "ephemeralOwner", "dataLength", "numChildren"]


def test_zkcli_create_get_set_stat_ls_delete(zk_server, zk_root):
    r = zk_root
    out = run_zkcli(zk_server, [
        f"create {r}/a hello",          # 0
        f"get {r}/a",                   # 1
        f"set {r}/a world",             # 2
        f"get {r}/a",                   # 3
        f"stat {r}/a",                  # 4
        f"set -v 5 {r}/a stale",        # 5
        f"create {r}/a/b",              # 6
        f"create -s {r}/a/seq- x",      # 7
        f"ls {r}/a",                    # 8
        f"ls -s {r}/a",                 # 9
        f"getAllChildrenNumber {r}",    # 10
        f"delete {r}/a",                # 11
        f"delete {r}/a/b",              # 12
        f"ls {r}/a",                    # 13
        f"deleteall {r}/a",             # 14
        f"stat {r}/a",                  # 15
        f"get {r}/a",                   # 16
        f"create {r}/c one",            # 17
        f"create {r}/c two",            # 18
        f"sync {r}",                    # 19
        f"getAcl {r}/c",                # 20
    ])
    assert out[0] == [f"Created {r}/a"]
    assert out[1] == ["hello"]
    assert out[2] == []
    assert out[3] == ["world"]
    stat = parse_stat(out[4])
    assert list(stat) == STAT_FIELDS
    assert stat["dataVersion"] == "1" and stat["dataLength"] == "5" and stat["numChildren"] == "0"
    assert stat["cversion"] == "0" and stat["aclVersion"] == "0" and stat["ephemeralOwner"] == "0x0"
    czxid, mzxid, pzxid = (int(stat[k], 16) for k in ("cZxid", "mZxid", "pZxid"))
    assert 0 < czxid < mzxid and pzxid == czxid
    assert out[5] == [f"version No is not valid : {r}/a"]
    assert out[6] == [f"Created {r}/a/b"]
    assert out[7] == [f"Created {r}/a/seq-0000000001"]
    assert out[8] == ["[b, seq-0000000001]"]
    assert out[9][0] == "[b, seq-0000000001]"
    after_children = parse_stat(out[9][1:])
    assert after_children["cversion"] == "2" and after_children["numChildren"] == "2"
    assert after_children["dataVersion"] == "1" and after_children["mZxid"] == stat["mZxid"]
    assert int(after_children["pZxid"], 16) > mzxid
    assert out[10] == ["3"]
    assert out[11] == [f"Node not empty: {r}/a"]
    assert out[12] == []
    assert out[13] == ["[seq-0000000001]"]
    assert out[14] == []
    assert out[15] == [f"Node does not exist: {r}/a"]
    assert out[16] == [f"Node does not exist: {r}/a"]
    assert out[17] == [f"Created {r}/c"]
    assert out[18] == [f"Node already exists: {r}/c"]
    assert out[19] == ["Sync is OK"]
    assert out[20] == ["'world,'anyone", ": cdrwa"]


def test_zkcli_auth_acl_ephemerals_and_sessions(zk_server, zk_root):
    r = zk_root
    out = run_zkcli(zk_server, [
        "addauth digest alice:pw",          # 0
        f"create {r}/p secret auth::cdrwa",  # 1
        f"getAcl {r}/p",                    # 2
        "whoami",                           # 3
        f"get {r}/p",                       # 4
        f"create -e {r}/eph x",             # 5
        f"getEphemerals {r}",               # 6
        f"create -c {r}/box",               # 7
        f"create {r}/box/item",             # 8
        f"stat {r}/eph",                    # 9
    ])
    assert out[0] == []
    assert out[1] == [f"Created {r}/p"]
    # digest ids are user:base64(sha1("user:password"))
    assert out[2] == ["'digest,'alice:V55/p2T0OpjQ+low3NVAH4aLvm0=", ": cdrwa"]
    assert out[3] == ["Auth scheme: User", "ip: 127.0.0.1", "digest: alice"]
    assert out[4] == ["secret"]
    assert out[5] == [f"Created {r}/eph"]
    assert out[6] == [f"[{r}/eph]"]
    assert out[7] == [f"Created {r}/box"]
    assert out[8] == [f"Created {r}/box/item"]
    eph = parse_stat(out[9])
    assert int(eph["ephemeralOwner"], 16) != 0

    # a second session: no auth, so the ACL keeps it out; the first session's ephemeral went with it
    out = run_zkcli(zk_server, [
        f"get {r}/p",               # 0
        f"ls {r}",                  # 1
        f"getEphemerals {r}",       # 2
        "whoami",                   # 3
    ])
    assert out[0] == [f"Insufficient permission : {r}/p"]
    assert out[1] == ["[box, p]"]
    assert out[2] == ["[]"]
    assert out[3] == ["Auth scheme: User", "ip: 127.0.0.1"]


def test_zkcli_setquota_listquota_delquota(zk_server, zk_root):
    q = f"{zk_root}/quota"
    out = run_zkcli(zk_server, [
        f"create {q}",                    # 0
        f"create {q}/a 12345",            # 1
        f"create {q}/b 1234567890",       # 2
        f"setquota -n 5 {q}",             # 3
        f"listquota {q}",                 # 4
        f"create {q}/c",                  # 5
        f"set {q}/a 1",                   # 6
        f"setquota -n 2 {q}",             # 7
        f"listquota {q}",                 # 8
        f"delquota {q}",                  # 9
        f"listquota {q}",                 # 10
    ])
    assert out[4] == [f"absolute path is /zookeeper/quota{q}/zookeeper_limits",
                      f"Output quota for {q} count=5,bytes=-1=;byteHardLimit=-1;countHardLimit=-1",
                      f"Output stat for {q} count=3,bytes=15"]
    assert out[7] == ["[Warning]: the count quota you create is less than the existing count:4"]
    assert out[8][1:] == [f"Output quota for {q} count=2,bytes=-1=;byteHardLimit=-1;countHardLimit=-1",
                          f"Output stat for {q} count=4,bytes=11"]
    assert out[10][1:] == [f"quota for {q} does not exist."]


def test_zkcli_single_command_from_arguments(zk_server, zk_root):
    """``zkCli.sh -server HOST:PORT CMD ARGS`` runs one command and exits."""
    env = dict(os.environ, CLIENT_JVMFLAGS="-Xmx64m -XX:+UseSerialGC -XX:TieredStopAtLevel=1")
    args = [find_zkcli(), "-server", zk_server.connect_string]
    created = subprocess.run(args + ["create", f"{zk_root}/arg", "from-args"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=90, env=env, stdin=subprocess.DEVNULL)
    assert f"Created {zk_root}/arg" in created.stdout.splitlines()
    got = subprocess.run(args + ["get", f"{zk_root}/arg"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=90, env=env, stdin=subprocess.DEVNULL)
    assert "from-args" in got.stdout.splitlines()


@pytest.fixture(autouse=True)
def _need_zkcli():
    find_zkcli()  # raises ZooKeeperNotFound (a failure, not a skip) when the zookeeper package is missing
