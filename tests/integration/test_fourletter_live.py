"""Four-letter words on a live server, in ZooKeeper's formats (what monitoring tools and kazoo parse)."""
from __future__ import annotations

import re

import pytest

try:
    from tests.integration import rawzk
except ImportError:
    import rawzk

pytestmark = pytest.mark.timeout(60)


def test_ruok_and_isro(zk_server):
    assert zk_server.four_letter("ruok") == "imok"
    assert zk_server.four_letter("isro") == "rw"


def test_srvr_format(zk_server):
    text = zk_server.four_letter("srvr")
    lines = text.splitlines()
    assert re.match(r"Zookeeper version: \d+\.\d+\.\d+", lines[0])
    keys = [line.split(":")[0] for line in lines[1:]]
    assert keys == ["Latency min/avg/max", "Received", "Sent", "Connections", "Outstanding", "Zxid", "Mode",
                    "Node count"]
    assert re.search(r"^Zxid: 0x[0-9a-f]+$", text, re.M)
    assert re.search(r"^Mode: standalone$", text, re.M)
    assert text.endswith("\n")


def test_srvr_counts_follow_the_tree(zk_server_factory):
    server = zk_server_factory({})
    with rawzk.connected(server.connect_string) as c:
        nodes = int(re.search(r"Node count: (\d+)", server.four_letter("srvr")).group(1))
        assert nodes == 5  # what ZooKeeper 3.8 reports for a fresh tree (it counts one more than the 4 nodes)
        z = c.create("/x", b"").zxid
        text = server.four_letter("srvr")
        assert int(re.search(r"Node count: (\d+)", text).group(1)) == nodes + 1
        assert int(re.search(r"Zxid: 0x([0-9a-f]+)", text).group(1), 16) == z


def test_stat_lists_clients(zk_server):
    with rawzk.connected(zk_server.connect_string):
        text = zk_server.four_letter("stat")
        assert text.splitlines()[1] == "Clients:"
        assert re.search(r"^ /127\.0\.0\.1:\d+\[\d+\]\(queued=\d+,recved=\d+,sent=\d+\)$", text, re.M)
        assert re.search(r"^Mode: standalone$", text, re.M)


def test_mntr_keys(zk_server):
    text = zk_server.four_letter("mntr")
    values = dict(line.split("\t", 1) for line in text.splitlines() if line)
    for key in ("zk_version", "zk_server_state", "zk_avg_latency", "zk_max_latency", "zk_min_latency",
                "zk_packets_received", "zk_packets_sent", "zk_num_alive_connections",
                "zk_outstanding_requests", "zk_znode_count", "zk_watch_count", "zk_ephemerals_count",
                "zk_approximate_data_size"):
        assert key in values, key
    assert values["zk_server_state"] == "standalone"
    assert int(values["zk_znode_count"]) >= 5


def test_conf(zk_server):
    text = zk_server.four_letter("conf")
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert values["clientPort"] == str(zk_server.port)
    assert values["tickTime"] == str(zk_server.config["tickTime"])
    for key in ("dataDir", "maxClientCnxns", "minSessionTimeout", "maxSessionTimeout", "serverId"):
        assert key in values, key


def test_cons_shows_session(zk_server):
    with rawzk.connected(zk_server.connect_string) as c:
        text = zk_server.four_letter("cons")
        assert f"sid=0x{c.session.session_id:x}" in text
        assert text.endswith("\n\n")


def test_wchs(zk_server, zk_root):
    with rawzk.connected(zk_server.connect_string) as c:
        c.exists(zk_root + "/w1", watch=True)
        c.exists(zk_root + "/w2", watch=True)
        text = zk_server.four_letter("wchs")
        m = re.match(r"(\d+) connections watching (\d+) paths\nTotal watches:(\d+)\n$", text)
        assert m, text
        assert int(m.group(1)) >= 1 and int(m.group(3)) >= 2


def test_envi_and_kazoo_parse_it(zk_server, zk_client):
    text = zk_server.four_letter("envi")
    assert text.startswith("Environment:\n")
    assert re.search(r"^zookeeper\.version=\d+\.\d+\.\d+", text, re.M)
    assert "imok" == zk_client.command(b"ruok")
    assert len(zk_client.server_version()) >= 3


def test_without_a_whitelist_only_srvr_is_answered(zk_server_factory):
    server = zk_server_factory({"4lw.commands.whitelist": None})  # the servers' own default
    assert "4lw.commands.whitelist" not in server.zoo_cfg()
    assert server.four_letter("srvr").startswith("Zookeeper version:")
    for word in ("ruok", "stat", "mntr", "conf", "cons", "wchs", "dump", "envi", "isro"):
        assert server.four_letter(word) == f"{word} is not executed because it is not in the whitelist.\n"


def test_whitelist_gates_commands(zk_server_factory):
    server = zk_server_factory({"4lw.commands.whitelist": "srvr, ruok"})
    assert server.four_letter("ruok") == "imok"
    assert "Mode:" in server.four_letter("srvr")
    assert server.four_letter("mntr") == "mntr is not executed because it is not in the whitelist.\n"
    assert server.four_letter("envi") == "envi is not executed because it is not in the whitelist.\n"


def _mntr(server) -> dict[str, str]:
    return dict(line.split("\t", 1) for line in server.four_letter("mntr").splitlines() if line)


def test_watch_counts_file_persistent_watches_as_zookeeper_does(zk_server_factory):
    # ZooKeeper keeps a data table and a child table of watches: a persistent or persistent-recursive
    # watch is in both, a one-shot watch in one. wchs/wchc/wchp show the data table, zk_watch_count
    # counts both.
    server = zk_server_factory({})
    with rawzk.connected(server.connect_string) as c:
        for path in ("/p", "/r", "/c", "/n", "/d"):
            c.create(path, b"")
        sid = c.session.session_id
        steps = [
            (lambda: c.add_watch("/p", 0), 2, "1 connections watching 1 paths\nTotal watches:1\n"),
            (lambda: c.add_watch("/r", 1), 4, "1 connections watching 2 paths\nTotal watches:2\n"),
            (lambda: c.get_children("/c", watch=True), 5, "1 connections watching 2 paths\nTotal watches:2\n"),
            (lambda: c.exists("/n", watch=True), 6, "1 connections watching 3 paths\nTotal watches:3\n"),
            (lambda: (c.get_data("/d", watch=True), c.get_children("/d", watch=True)), 8,
             "1 connections watching 4 paths\nTotal watches:4\n"),
        ]
        for act, count, wchs in steps:
            act()
            assert int(_mntr(server)["zk_watch_count"]) == count
            assert server.four_letter("wchs") == wchs
        wchp = server.four_letter("wchp")
        assert sorted(re.findall(r"^(/\w)$", wchp, re.M)) == ["/d", "/n", "/p", "/r"]
        assert wchp.count(f"\t0x{sid:x}") == 4


def test_the_asking_connection_counts_as_a_connection_and_its_word_as_packets(zk_server_factory):
    server = zk_server_factory({})
    text = server.four_letter("srvr")
    assert re.search(r"^Connections: 1$", text, re.M)  # the connection asking
    server.four_letter("srst")
    for _ in range(3):
        assert server.four_letter("ruok") == "imok"
    text = server.four_letter("srvr")
    assert re.search(r"^Received: 4$", text, re.M) and re.search(r"^Sent: 4$", text, re.M)
    cons = server.four_letter("cons")
    assert re.fullmatch(r" /127\.0\.0\.1:\d+\[\d+\]\(queued=0,recved=1,sent=0\)\n\n", cons), cons


def test_cons_after_a_ping_and_after_crst(zk_server):
    with rawzk.connected(zk_server.connect_string) as c:
        c.create("/x-" + str(c.session.session_id), b"")
        assert c.ping().err == 0
        mine = [line for line in zk_server.four_letter("cons").splitlines()
                if f"sid=0x{c.session.session_id:x}" in line]
        assert len(mine) == 1 and ",lop=PING," in mine[0], mine
        assert zk_server.four_letter("crst") == "Connection stats reset.\n"
        mine = [line for line in zk_server.four_letter("cons").splitlines()
                if f"sid=0x{c.session.session_id:x}" in line]
        assert len(mine) == 1
        assert ",lop=NA," in mine[0] and ",lcxid=" not in mine[0], mine
        assert ",lzxid=0xffffffffffffffff,lresp=0," in mine[0], mine
        assert "(queued=0,recved=0,sent=0," in mine[0], mine
