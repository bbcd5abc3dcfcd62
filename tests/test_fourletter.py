"""Four-letter words: our renderings have Apache ZooKeeper 3.8's shape (line names, order, separators).

SHAPES holds one regular expression per word, written from ZooKeeper 3.8's replies.  The same patterns
are checked against (a) coordcore's pure renderer, and (b) real servers over a socket with a live kazoo
session holding ephemerals and watches -- Apache ZooKeeper (which keeps the patterns honest) and the
coordcore server (which must look the same to monitoring tools).
"""
from __future__ import annotations

import re
import socket

import pytest

from coordcore import ZK_COMPAT_VERSION
from coordcore.config import PeerSpec, ServerConfig
from coordcore.runtime.fourletter import (
    DEFAULT_WHITELIST, FOUR_LETTER_WORDS, LAST_OP_NAMES, NOT_SERVING, ConnInfo, LeaderStats, ServerInfo,
    SessionInfo, java_double, java_hashmap_order, render, server_line, side_effect, version_string,
)

ALL = FOUR_LETTER_WORDS

_VERSION = r"Zookeeper version: 3\.8\.\d+-[^\n]*, built on [^\n]+\n"
_ADDR = r" /[0-9a-fA-F.:]+:\d+\[[0-9a-f]+\]"
_BRIEF = _ADDR + r"\(queued=\d+,recved=\d+,sent=\d+\)\n"
_FULL = (_ADDR + r"\(queued=\d+,recved=\d+,sent=\d+"
         r"(,sid=0x[0-9a-f]+,lop=[A-Z]+,est=\d+,to=\d+(,lcxid=0x[0-9a-f]+)?,lzxid=0x[0-9a-f]+,lresp=\d+,"
         r"llat=\d+,minlat=\d+,avglat=\d+,maxlat=\d+)?\)\n")
_DOUBLE = r"\d+\.\d+(E\d+)?"
_STATS = (r"Latency min/avg/max: \d+/" + _DOUBLE + r"/\d+\nReceived: \d+\nSent: \d+\nConnections: \d+\n"
          r"Outstanding: \d+\nZxid: 0x[0-9a-f]+\nMode: standalone\nNode count: \d+\n")
_DATE = r"\w{3} \w{3} \d\d \d\d:\d\d:\d\d \w+ \d{4}"
_BUCKETS = r"Sets \(\d+\)/\(\d+\):\n(\d+ expire at " + _DATE + r":\n(\t[^\n]+\n)*)*"

SHAPES = {
    "ruok": r"imok",
    "isro": r"rw",
    "srvr": _VERSION + _STATS,
    "stat": _VERSION + r"Clients:\n(" + _BRIEF + r")*\n" + _STATS,
    "cons": r"(" + _FULL + r")*\n",
    "conf": (r"clientPort=\d+\nsecureClientPort=-?\d+\ndataDir=[^\n]+\ndataDirSize=\d+\ndataLogDir=[^\n]+\n"
             r"dataLogSize=\d+\ntickTime=\d+\nmaxClientCnxns=\d+\nminSessionTimeout=\d+\n"
             r"maxSessionTimeout=\d+\nclientPortListenBacklog=-?\d+\nserverId=\d+\n"),
    "mntr": r"(zk_[^\t\n]+\t[^\n]*\n)+",
    "wchs": r"\d+ connections watching \d+ paths\nTotal watches:\d+\n",
    "wchc": r"(0x[0-9a-f]+\n(\t/[^\n]*\n)+)*\n",
    "wchp": r"(/[^\n]*\n(\t0x[0-9a-f]+\n)+)*\n",
    "dump": (r"SessionTracker dump:\nSession " + _BUCKETS + r"ephemeral nodes dump:\n"
             r"Sessions with Ephemerals \(\d+\):\n(0x[0-9a-f]+:\n(\t/[^\n]*\n)*)*"
             r"Connections dump:\nConnections " + _BUCKETS),
    "envi": r"Environment:\nzookeeper\.version=3\.8\.\d+-[^\n]*, built on [^\n]+\n([\w.]+=[^\n]*\n)+",
    "dirs": r"datadir_size: \d+\nlogdir_size: \d+\n",
    "srst": r"Server stats reset\.\n",
    "crst": r"Connection stats reset\.\n",
    # a Java long: negative after `stmk` set a mask with the top bit (the fuzz tests send random ones
    # to the shared servers)
    "gtmk": r"-?\d+",
}

#: mntr keys every ZooKeeper-compatible server must report (what monitoring tools read).
MNTR_KEYS = ["zk_version", "zk_server_state", "zk_ephemerals_count", "zk_num_alive_connections",
             "zk_avg_latency", "zk_outstanding_requests", "zk_znode_count", "zk_packets_sent",
             "zk_packets_received", "zk_watch_count", "zk_min_latency", "zk_approximate_data_size",
             "zk_uptime", "zk_max_latency"]


def assert_shape(cmd: str, text: str) -> None:
    assert re.fullmatch(SHAPES[cmd], text), f"{cmd} reply does not have ZooKeeper's shape:\n{text[:3000]!r}"


def sample_info() -> ServerInfo:
    idle = ConnInfo("127.0.0.1", 40000, interest_ops=0, recved=1)
    busy = ConnInfo("127.0.0.1", 40001, recved=11, sent=11, session_id=0x1000007EDB30000, last_op="EXIS",
                    established_ms=1_700_000_000_000, timeout_ms=10000, last_cxid=10, last_zxid=5,
                    last_response_ms=532078, last_latency_ms=1, min_latency_ms=0, avg_latency_ms=2,
                    max_latency_ms=7, expires_at_ms=1_700_000_010_000)
    fresh = ConnInfo("127.0.0.1", 40002, recved=1, sent=1, session_id=0x1000007EDB30001, last_op="SESS",
                     established_ms=1_700_000_000_500, timeout_ms=10000, last_cxid=-1, last_zxid=-1)
    return ServerInfo(
        config=ServerConfig(tick_ms=500, data_dir="/srv/zk", client_port=0,
                            session_timeout_ms_min=1000, session_timeout_ms_max=30000),
        client_port=31234, last_zxid=0x100000006, node_count=9, latency_min_ms=0, latency_avg_ms=1.923076,
        latency_max_ms=7, packets_received=38, packets_sent=39, connections=[idle, busy, fresh],
        data_watches={"/a": [0x1000007EDB30000, 0x1000007EDB30001], "/a/b": [0x1000007EDB30000]},
        watch_count=4,
        sessions=[SessionInfo(0x1000007EDB30000, 10000, 1_700_000_010_000, ("/a/e2", "/a/e1")),
                  SessionInfo(0x1000007EDB30001, 10000, 1_700_000_010_000)],
        approximate_data_size=63, open_fds=41, max_fds=1024, uptime_ms=22680, now_ms=1_700_000_001_000,
        data_dir_size=457, data_log_size=457, environment=[("host.name", "example")],
    )


# -- pure rendering --------------------------------------------------------------------------------

@pytest.mark.parametrize("cmd", sorted(SHAPES))
def test_rendering_has_zookeepers_shape(cmd):
    assert_shape(cmd, render(cmd, sample_info(), ALL))


def test_srvr_exact_text():
    text = render("srvr", sample_info(), ALL)
    assert text == (f"Zookeeper version: {version_string()}\n"
                    "Latency min/avg/max: 0/1.9231/7\nReceived: 38\nSent: 39\nConnections: 3\n"
                    "Outstanding: 0\nZxid: 0x100000006\nMode: standalone\nNode count: 9\n")


def test_stat_lists_clients_briefly_then_the_srvr_lines():
    text = render("stat", sample_info(), ALL)
    assert " /127.0.0.1:40001[1](queued=0,recved=11,sent=11)\n" in text
    assert "sid=" not in text
    assert text.endswith(render("srvr", sample_info(), ALL).split("\n", 1)[1])


def test_cons_details_like_zookeeper():
    lines = render("cons", sample_info(), ALL).split("\n")
    assert lines[0] == " /127.0.0.1:40000[0](queued=0,recved=1,sent=0)"
    assert lines[1] == (" /127.0.0.1:40001[1](queued=0,recved=11,sent=11,sid=0x1000007edb30000,lop=EXIS,"
                        "est=1700000000000,to=10000,lcxid=0xa,lzxid=0x5,lresp=532078,llat=1,minlat=0,"
                        "avglat=2,maxlat=7)")
    # a session with no request yet: lcxid omitted, lzxid -1 printed as Java's Long.toHexString(-1)
    assert ",lcxid=" not in lines[2] and ",lzxid=0xffffffffffffffff," in lines[2]
    assert lines[3:] == ["", ""]


def test_conf_uses_effective_values():
    conf = dict(line.split("=", 1) for line in render("conf", sample_info(), ALL).splitlines())
    assert conf["clientPort"] == "31234"  # the actual port, not the configured 0
    assert conf["tickTime"] == "500"
    assert (conf["minSessionTimeout"], conf["maxSessionTimeout"]) == ("1000", "30000")
    assert conf["dataDir"] == conf["dataLogDir"] == "/srv/zk"
    info = sample_info()
    info.config = ServerConfig(tick_ms=300)
    conf = dict(line.split("=", 1) for line in render("conf", info, ALL).splitlines())
    assert (conf["minSessionTimeout"], conf["maxSessionTimeout"]) == ("600", "6000")


def test_mntr_reports_the_keys_monitoring_tools_read():
    text = render("mntr", sample_info(), ALL)
    values = dict(line.split("\t", 1) for line in text.splitlines())
    for key in MNTR_KEYS:
        assert key in values
    assert values["zk_server_state"] == "standalone"
    assert values["zk_avg_latency"] == "1.9231"
    assert values["zk_ephemerals_count"] == "2"
    assert values["zk_watch_count"] == "4"
    assert values["zk_num_alive_connections"] == "3"
    assert values["zk_open_file_descriptor_count"] == "41"
    assert list(values)[:2] == ["zk_version", "zk_server_state"]


def test_mntr_extra_metrics_are_appended():
    info = sample_info()
    info.extra_metrics = {"zk_peer_state": "leading - broadcast", "zk_fsync_avg_ms": 0.5}
    text = render("mntr", info, ALL)
    assert text.endswith("zk_peer_state\tleading - broadcast\nzk_fsync_avg_ms\t0.5\n")


def test_watch_words_count_data_watches():
    info = sample_info()
    assert render("wchs", info, ALL) == "2 connections watching 2 paths\nTotal watches:3\n"
    assert render("wchc", info, ALL) == "0x1000007edb30000\n\t/a\n\t/a/b\n0x1000007edb30001\n\t/a\n\n"
    assert render("wchp", info, ALL) == "/a\n\t0x1000007edb30000\n\t0x1000007edb30001\n/a/b\n\t0x1000007edb30000\n\n"


def test_dump_lists_sessions_ephemerals_and_connections():
    text = render("dump", sample_info(), ALL)
    assert "Session Sets (1)/(2):\n2 expire at Tue Nov 14 22:13:30 UTC 2023:\n\t0x1000007edb30000\n" in text
    assert "Sessions with Ephemerals (1):\n0x1000007edb30000:\n\t/a/e2\n\t/a/e1\n" in text
    assert "\tip: /127.0.0.1:40001 sessionId: 0x1000007edb30000\n" in text
    assert "Connections Sets (2)/(3):" in text


def test_envi_version_parses_with_kazoo():
    from kazoo.client import ENVI_VERSION, ENVI_VERSION_KEY

    text = render("envi", sample_info(), ALL)
    pairs = dict(line.split("=", 1) for line in text.splitlines()[1:])
    version = pairs[ENVI_VERSION_KEY]
    assert "coordcore" in version
    digits = ENVI_VERSION.match(version).group(1)
    assert tuple(int(d) for d in digits.split(".")) == tuple(int(d) for d in ZK_COMPAT_VERSION.split("."))
    assert pairs["host.name"] == "example"
    assert len(text.encode()) < 8192  # kazoo reads the reply with one recv(8192)


def test_default_environment_is_collected():
    info = sample_info()
    info.environment = None
    text = render("envi", info, ALL)
    assert "\nos.name=" in text and "\nuser.dir=" in text and "\npython.version=" in text


def test_words_not_in_the_whitelist_get_zookeepers_refusal():
    whitelist = frozenset({"srvr", "ruok"})
    for cmd in sorted(ALL - whitelist):
        assert render(cmd, sample_info(), whitelist) == f"{cmd} is not executed because it is not in the whitelist.\n"
    assert render("ruok", sample_info(), whitelist) == "imok"


def test_default_whitelist_is_zookeepers_srvr_only():
    assert DEFAULT_WHITELIST == {"srvr"}
    assert render("ruok", sample_info(), DEFAULT_WHITELIST) == "ruok is not executed because it is not in the whitelist.\n"
    assert render("srvr", sample_info(), DEFAULT_WHITELIST).startswith("Zookeeper version:")


def test_not_serving():
    info = sample_info()
    info.serving = False
    assert render("srvr", info, ALL) == NOT_SERVING
    assert render("mntr", info, ALL) == NOT_SERVING
    assert render("ruok", info, ALL) == "imok"
    assert render("isro", info, ALL) == "null"
    assert render("envi", info, ALL).startswith("Environment:\n")


def test_read_only_and_leader_variants():
    info = sample_info()
    info.read_only, info.mode = True, "read-only"
    assert render("isro", info, ALL) == "ro"
    assert render("srvr", info, ALL).split("\n")[1] == "READ-ONLY mode; serving only read-only clients"
    info = sample_info()
    info.mode, info.proposal_sizes = "leader", (10, 5, 20)
    assert render("srvr", info, ALL).endswith("Mode: leader\nNode count: 9\nProposal sizes last/min/max: 10/5/20\n")


# -- ensemble members (formats from Apache ZooKeeper 3.8 members of a 3-voter + 1-observer ensemble) ----

_ENSEMBLE_SERVERS = (PeerSpec(1, "127.0.0.1", 2888, 3888), PeerSpec(2, "127.0.0.1", 2889, 3889),
                     PeerSpec(3, "127.0.0.1", 2890, 3890), PeerSpec(4, "127.0.0.1", 2891, 3891, observer=True))


def member_info(role: str) -> ServerInfo:
    info = sample_info()
    sid = {"leader": 3, "follower": 1, "observer": 4}[role]
    info.config = ServerConfig(tick_ms=200, data_dir="/srv/zk", servers=_ENSEMBLE_SERVERS, server_id=sid,
                               init_limit=10, sync_limit=5,
                               peer_type="observer" if role == "observer" else "participant")
    info.server_id, info.mode, info.quorum_size = sid, role, 3
    info.peer_state = {"leader": "leading", "follower": "following", "observer": "observing"}[role] + " - broadcast"
    if role == "observer":
        info.observer_master_id = 3
    if role == "leader":
        info.leader_stats = LeaderStats(learners=3, synced_followers=2, synced_observers=1)
        info.proposal_sizes = (72, 48, 190)
    return info


# mntr keys coordcore prints, in the order ZooKeeper 3.8 prints them (it prints many more in between)
_HEAD = ["zk_version", "zk_server_state", "zk_peer_state"]
_BODY = ["zk_ephemerals_count", "zk_num_alive_connections", "zk_avg_latency", "zk_outstanding_requests",
         "zk_znode_count", "zk_global_sessions", "zk_packets_sent", "zk_packets_received", "zk_watch_count",
         "zk_min_latency", "zk_max_file_descriptor_count", "zk_approximate_data_size",
         "zk_open_file_descriptor_count", "zk_local_sessions", "zk_uptime", "zk_max_latency"]
MEMBER_MNTR_KEYS = {
    "follower": _HEAD + _BODY + ["zk_quorum_size"],
    "observer": _HEAD + ["zk_observer_master_id"] + _BODY + ["zk_quorum_size"],
    "leader": _HEAD + ["zk_ephemerals_count", "zk_num_alive_connections", "zk_avg_latency",
                       "zk_min_proposal_size", "zk_outstanding_requests", "zk_znode_count", "zk_global_sessions",
                       "zk_packets_sent", "zk_packets_received", "zk_max_proposal_size", "zk_synced_followers",
                       "zk_watch_count", "zk_synced_non_voting_followers", "zk_synced_observers",
                       "zk_min_latency", "zk_max_file_descriptor_count", "zk_approximate_data_size",
                       "zk_open_file_descriptor_count", "zk_last_proposal_size", "zk_pending_syncs",
                       "zk_local_sessions", "zk_uptime", "zk_max_latency", "zk_learners", "zk_quorum_size"],
}


@pytest.mark.parametrize("role", sorted(MEMBER_MNTR_KEYS))
def test_member_mntr_keys_in_zookeepers_order(role):
    lines = render("mntr", member_info(role), ALL).splitlines()
    assert [line.split("\t")[0] for line in lines] == MEMBER_MNTR_KEYS[role]
    values = dict(line.split("\t", 1) for line in lines)
    assert values["zk_server_state"] == role
    assert values["zk_quorum_size"] == "3"
    if role == "leader":
        assert values["zk_peer_state"] == "leading - broadcast"
        assert [values[k] for k in ("zk_learners", "zk_synced_followers", "zk_synced_non_voting_followers",
                                    "zk_synced_observers", "zk_pending_syncs")] == ["3", "2", "0", "1", "0"]
        assert [values[f"zk_{k}_proposal_size"] for k in ("last", "min", "max")] == ["72", "48", "190"]
    if role == "observer":
        assert values["zk_observer_master_id"] == "3"


def test_leader_uptime_when_known_and_proposal_sizes_before_any_proposal():
    info = member_info("leader")
    info.proposal_sizes = None
    info.leader_stats.uptime_ms = 1547
    values = dict(line.split("\t", 1) for line in render("mntr", info, ALL).splitlines())
    assert values["zk_leader_uptime"] == "1547"
    keys = list(values)
    assert keys.index("zk_pending_syncs") + 1 == keys.index("zk_leader_uptime") == keys.index("zk_local_sessions") - 1
    assert [values[f"zk_{k}_proposal_size"] for k in ("last", "min", "max")] == ["-1", "-1", "-1"]


def test_standalone_mntr_has_no_member_keys():
    keys = {line.split("\t")[0] for line in render("mntr", sample_info(), ALL).splitlines()}
    assert not keys & {"zk_peer_state", "zk_quorum_size", "zk_learners", "zk_synced_followers"}


@pytest.mark.parametrize("role", ["leader", "follower", "observer"])
def test_member_srvr_and_stat(role):
    info = member_info(role)
    for cmd in ("srvr", "stat"):
        text = render(cmd, info, ALL)
        assert f"\nMode: {role}\nNode count: 9\n" in text
        assert ("Proposal sizes last/min/max: 72/48/190\n" in text) == (role == "leader")
        assert text.endswith("\n")


def test_member_conf_ends_with_zookeepers_quorum_section():
    conf = render("conf", member_info("observer"), ALL)
    standalone, quorum = conf.split("serverId=4\n")
    assert standalone.startswith("clientPort=31234\nsecureClientPort=-1\n") and "\ntickTime=200\n" in standalone
    assert quorum == ("initLimit=10\nsyncLimit=5\nelectionAlg=3\nelectionPort=3891\nquorumPort=2891\n"
                      "peerType=1\nmembership: \n"
                      "server.1=127.0.0.1:2888:3888:participant\nserver.2=127.0.0.1:2889:3889:participant\n"
                      "server.3=127.0.0.1:2890:3890:participant\nserver.4=127.0.0.1:2891:3891:observer\n"
                      "version=0")  # no newline after the version, as ZooKeeper prints it
    assert "peerType=0\n" in render("conf", member_info("leader"), ALL)
    assert render("conf", sample_info(), ALL).endswith("serverId=0\n")  # standalone: no quorum section


def test_server_line_client_part_and_ipv6():
    assert server_line(PeerSpec(1, "zk1", 2888, 3888)) == "zk1:2888:3888:participant"
    assert server_line(PeerSpec(2, "zk2", 2888, 3888, client_port=2181)) == "zk2:2888:3888:participant;0.0.0.0:2181"
    assert (server_line(PeerSpec(3, "::1", 2888, 3888, observer=True, client_host="::1", client_port=2181))
            == "[::1]:2888:3888:observer;[::1]:2181")


def test_members_listed_in_java_hashmap_order():
    assert java_hashmap_order([3, 1, 2]) == [1, 2, 3]
    assert java_hashmap_order([1, 17, 2, 3]) == [1, 17, 2, 3]  # 17 shares bucket 1 of 16
    assert java_hashmap_order(range(1, 14)) == list(range(1, 14))  # 13 members: a table of 32


def test_unknown_word_is_refused_and_side_effects_are_named():
    with pytest.raises(ValueError):
        render("xyzw", sample_info(), ALL)
    assert side_effect("srst") == "reset_server_stats"
    assert side_effect("crst") == "reset_connection_stats"
    assert side_effect("srvr") is None
    assert {"stmk", "gtmk", "crst", "srst", "dirs", "wchc", "wchp", "hash"} <= FOUR_LETTER_WORDS
    assert LAST_OP_NAMES[4] == "GETD" and LAST_OP_NAMES[-10] == "SESS"


@pytest.mark.parametrize("value, text", [
    (0, "0.0"), (1.923076, "1.923076"), (2, "2.0"), (0.5, "0.5"), (12345678.0, "1.2345678E7"), (1e-4, "1.0E-4"),
])
def test_java_double(value, text):
    assert java_double(value) == text


# -- real servers ------------------------------------------------------------------------------------

def send_word(host: str, port: int, cmd: str) -> str:
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(cmd.encode())
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode()


@pytest.fixture
def busy_server(zk_server, zk_client_factory, zk_root):
    """The shared server with two sessions: one owning ephemerals, both holding data watches."""
    a = zk_client_factory()
    b = zk_client_factory()
    a.ensure_path(f"{zk_root}/dir/child")
    a.create(f"{zk_root}/dir/e1", b"x", ephemeral=True)
    a.get(f"{zk_root}/dir", watch=lambda e: None)
    a.exists(f"{zk_root}/dir/child", watch=lambda e: None)
    a.get_children(f"{zk_root}/dir", watch=lambda e: None)
    b.get(f"{zk_root}/dir", watch=lambda e: None)
    return zk_server, a, b


_WORDS_ON_SERVERS = sorted(set(SHAPES) - {"srst", "crst"}) + ["srst", "crst"]


def test_server_replies_have_zookeepers_shape(busy_server):
    server, a, b = busy_server
    for cmd in _WORDS_ON_SERVERS:
        assert_shape(cmd, send_word(server.host, server.port, cmd))
    mntr = dict(line.split("\t", 1) for line in send_word(server.host, server.port, "mntr").splitlines())
    for key in MNTR_KEYS:
        assert key in mntr, key
    assert int(mntr["zk_ephemerals_count"]) >= 1
    assert int(mntr["zk_watch_count"]) >= 4
    wchs = send_word(server.host, server.port, "wchs")
    m = re.match(r"(\d+) connections watching (\d+) paths\nTotal watches:(\d+)", wchs)
    assert int(m.group(1)) >= 2 and int(m.group(2)) >= 2 and int(m.group(3)) >= 3
    assert f"0x{a.client_id[0]:x}" in send_word(server.host, server.port, "dump")
    assert a.server_version()[:2] == (3, 8)


def test_server_refuses_words_outside_its_whitelist(zk_server_factory):
    server = zk_server_factory({"4lw.commands.whitelist": "ruok"})
    assert send_word(server.host, server.port, "ruok") == "imok"
    assert send_word(server.host, server.port, "stat") == "stat is not executed because it is not in the whitelist.\n"
    assert send_word(server.host, server.port, "envi") == "envi is not executed because it is not in the whitelist.\n"
    assert_shape("srvr", send_word(server.host, server.port, "srvr"))  # srvr is always allowed
