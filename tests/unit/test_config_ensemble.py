"""zoo.cfg ensemble keys: server.N lines, initLimit/syncLimit, electionAlg, peerType, standaloneEnabled,
dataDir/myid and SERVER_JVMFLAGS.

The rules are ZooKeeper 3.8's QuorumPeerConfig (checked against its parseProperties on the same text):
one server line with standaloneEnabled=true runs standalone, initLimit/syncLimit must be set in an
ensemble ("initLimit is not set"), only electionAlg=3 is accepted, the member's own server line wins over
peerType, and its client address must agree with clientPort.  Where coordcore is stricter (negative
sids, port 0, two servers on one host:port) the test says so.
"""
from __future__ import annotations

import pytest

from coordcore.config import (ConfigError, PeerSpec, ServerConfig, apply_jvm_flags, jvm_flag_overrides,
                              load_config, parse_zoo_cfg, read_myid)

LIMITS = "initLimit=10\nsyncLimit=5\n"

#: Three voters and an observer, the shape of ZooKeeper's own multi-server example plus an observer.
FOUR = f"""\
tickTime=2000
dataDir=/var/lib/zookeeper
{LIMITS}server.1=zk1.example.com:2888:3888
server.2=zk2.example.com:2888:3888:participant
server.3=zk3.example.com:2888:3888
server.4=zk4.example.com:2888:3888:observer
"""


def three(extra: str = "", *, limits: str = LIMITS) -> str:
    return (f"{limits}server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n"
            f"server.3=127.0.0.1:2890:3890\n{extra}")


def error(text: str, base: ServerConfig | None = None, **kw) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_zoo_cfg(text, base, **kw)
    return str(exc.value)


# -- the server lines -------------------------------------------------------------------------------

def test_three_voters_and_an_observer_parse_to_peer_specs():
    cfg, warnings = parse_zoo_cfg(FOUR)
    assert warnings == []   # three voters: odd, and enough to lose one
    assert cfg.servers == (
        PeerSpec(1, "zk1.example.com", 2888, 3888),
        PeerSpec(2, "zk2.example.com", 2888, 3888),
        PeerSpec(3, "zk3.example.com", 2888, 3888),
        PeerSpec(4, "zk4.example.com", 2888, 3888, observer=True),
    )
    assert cfg.ensemble
    assert (cfg.init_limit, cfg.sync_limit, cfg.election_alg) == (10, 5, 3)


def test_servers_are_sorted_by_sid_whatever_the_line_order():
    text = LIMITS + "server.3=c:1:2\nserver.10=j:1:2\nserver.1=a:1:2\n"
    assert [p.sid for p in parse_zoo_cfg(text)[0].servers] == [1, 3, 10]


def test_me_is_the_server_line_named_by_myid():
    cfg = parse_zoo_cfg(FOUR, myid=4)[0]
    assert cfg.server_id == 4
    assert cfg.me == PeerSpec(4, "zk4.example.com", 2888, 3888, observer=True)
    assert cfg.peer_type == "observer"   # taken from the server line: peerType was not set


def test_without_myid_parse_leaves_server_id_as_the_base_s():
    cfg = parse_zoo_cfg(FOUR, ServerConfig(server_id=7))[0]
    assert cfg.ensemble and cfg.server_id == 7 and cfg.me is None


def test_server_type_is_case_insensitive_as_in_zookeeper():
    cfg = parse_zoo_cfg(three("server.4=127.0.0.1:2891:3891:OBSERVER\n"))[0]
    assert cfg.servers[-1].observer


def test_ipv6_hosts_in_brackets():
    cfg = parse_zoo_cfg(LIMITS + "server.1=[::1]:2888:3888;[::1]:2181\nserver.2=[fe80::1]:2888:3888\n"
                        "server.3=[fe80::2]:2888:3888\n")[0]
    assert cfg.servers[0] == PeerSpec(1, "::1", 2888, 3888, client_host="::1", client_port=2181)
    assert cfg.servers[1].host == "fe80::1"


def test_client_ports_in_server_lines():
    text = LIMITS + ("server.1=zk1:2888:3888;2181\n"
                     "server.2=zk2:2888:3888:participant;10.0.0.2:2182\n"
                     "server.3=zk3:2888:3888\n")
    cfg = parse_zoo_cfg(text)[0]
    assert cfg.servers[0] == PeerSpec(1, "zk1", 2888, 3888, client_port=2181)
    assert cfg.servers[1] == PeerSpec(2, "zk2", 2888, 3888, client_host="10.0.0.2", client_port=2182)
    assert cfg.servers[2].client_port is None and cfg.servers[2].client_host is None


def test_the_member_s_client_port_comes_from_its_server_line():
    text = LIMITS + ("server.1=zk1:2888:3888;2181\n"
                     "server.2=zk2:2888:3888;10.0.0.2:2182\n"
                     "server.3=zk3:2888:3888\n")
    one = parse_zoo_cfg(text, myid=1)[0]
    assert (one.client_port, one.client_port_address) == (2181, "127.0.0.1")   # no host: address kept
    two = parse_zoo_cfg(text, myid=2)[0]
    assert (two.client_port, two.client_port_address) == (2182, "10.0.0.2")
    three_ = parse_zoo_cfg(text + "clientPort=2999\n", myid=3)[0]
    assert three_.client_port == 2999   # its line gives no client port: clientPort as usual


def test_client_port_may_repeat_the_server_line_s():
    cfg, warnings = parse_zoo_cfg(three("clientPort=2181\n").replace("3888\n", "3888;2181\n"), myid=1)
    assert cfg.client_port == 2181 and warnings == []


@pytest.mark.parametrize("extra, fragments", [
    ("clientPort=2999", ["clientPort=2999", "2181", "server.1", "different"]),
    ("clientPort=2181\nclientPortAddress=10.9.9.9", ["clientPortAddress=10.9.9.9", "127.0.0.1", "server.1"]),
])
def test_client_address_disagreeing_with_the_member_s_server_line_is_an_error(extra, fragments):
    text = three(extra + "\n").replace("3888\n", "3888;127.0.0.1:2181\n")
    message = error(text, myid=1)
    for fragment in fragments:
        assert fragment in message
    # the disagreement is only about this member: as server 2 the same text is fine
    assert parse_zoo_cfg(text, myid=2)[0].server_id == 2


def test_a_wildcard_client_port_address_defers_to_the_server_line_s_host():
    text = three("clientPortAddress=0.0.0.0\n").replace("3888\n", "3888;10.0.0.1:2181\n")
    assert parse_zoo_cfg(text, myid=1)[0].client_port_address == "10.0.0.1"


@pytest.mark.parametrize("line, fragments", [
    ("server.x=h:2888:3888", ["server.x", "non-negative integer"]),
    ("server.-1=h:2888:3888", ["server.-1", "non-negative integer"]),   # ZooKeeper would take -1
    ("server.=h:2888:3888", ["server.", "non-negative integer"]),
    ("server.1.5=h:2888:3888", ["server.1.5"]),
    ("server.1=h:2888", ["server.1", "election port is missing"]),
    ("server.1=h", ["server.1"]),
    ("server.1=:2888:3888", ["server.1", "host is empty"]),
    ("server.1=h:http:3888", ["server.1", "quorum port", "http"]),
    ("server.1=h:2888:70000", ["server.1", "election port", "70000", "range"]),
    ("server.1=h:0:3888", ["server.1", "quorum port", "0"]),            # ZooKeeper would take 0
    ("server.1=h:2888:3888:leader", ["server.1", "leader", "participant or observer"]),
    ("server.1=h:2888:3888:observer:x", ["server.1"]),
    ("server.1=h:2888:3888;x:y:2181", ["server.1", "client part"]),
    ("server.1=h:2888:3888;h:port", ["server.1", "client port", "port"]),
    ("server.1=h:2888:3888;1;2", ["server.1"]),
    ("server.1=h:2888:3888|g:2888:3888", ["server.1", "multiAddress"]),
    ("server.1=[::1:2888:3888", ["server.1", "["]),
    ("server.1=h:2888:2888", ["server.1", "quorum and election ports must differ"]),
])
def test_malformed_server_lines_are_errors_naming_the_key(line, fragments):
    message = error(three(line + "\n").replace("server.1=127.0.0.1:2888:3888\n", ""))
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("second", ["server.2=127.0.0.1:2888:3999", "server.2=127.0.0.1:3888:3999",
                                    "server.2=LOCALHOST:2999:3888"])
def test_two_servers_on_one_host_port_is_an_error(second):
    # ZooKeeper only finds this out when the second one fails to bind
    first = "server.1=localhost:2888:3888" if "LOCALHOST" in second else "server.1=127.0.0.1:2888:3888"
    message = error(f"{LIMITS}{first}\n{second}\nserver.3=10.0.0.3:2888:3888\n")
    assert "server.1" in message and "server.2" in message and "both use" in message


def test_the_same_port_on_different_hosts_is_fine():
    assert parse_zoo_cfg(FOUR)[0].ensemble   # every server uses 2888 and 3888, each on its own host


def test_a_repeated_server_line_warns_and_the_last_wins():
    cfg, warnings = parse_zoo_cfg(three("server.2=127.0.0.1:2999:3999\n"))
    assert cfg.servers[1] == PeerSpec(2, "127.0.0.1", 2999, 3999)
    assert warnings == ["line 6: server.2 repeated (line 4); the last value wins"]


def test_two_spellings_of_one_sid_is_an_error():
    message = error(three("server.01=10.0.0.1:2888:3888\n"))
    assert "server.01" in message and "server.1" in message and "server 1" in message


# -- standalone or ensemble ----------------------------------------------------------------------------

def test_one_server_line_runs_standalone_and_warns_it_is_ignored():
    cfg, warnings = parse_zoo_cfg("server.1=localhost:2888:3888\n")
    assert not cfg.ensemble and cfg.servers == ()
    assert cfg == ServerConfig()
    assert len(warnings) == 1
    assert warnings[0].startswith("line 1: server.1 ") and "runs standalone" in warnings[0]


def test_one_server_line_with_standalone_disabled_is_a_one_voter_ensemble():
    cfg, warnings = parse_zoo_cfg(f"standaloneEnabled=false\n{LIMITS}server.1=localhost:2888:3888\n", myid=1)
    assert cfg.ensemble and not cfg.standalone_enabled
    assert cfg.me == PeerSpec(1, "localhost", 2888, 3888)
    assert warnings == ["line 4: the ensemble has only 1 voter: losing it stops writes "
                        "(3 voters tolerate one failure)"]


def test_standalone_disabled_without_server_lines_is_an_error_as_in_zookeeper():
    assert "standaloneEnabled=false" in error("standaloneEnabled=false\n")


def test_observers_need_participants():
    assert "only observers" in error(LIMITS + "server.1=a:1:2:observer\nserver.2=b:1:2:observer\n")
    message = error(LIMITS + "server.1=a:1:2\nserver.2=b:1:2:observer\n")
    assert "one participant and observers" in message and "standaloneEnabled=false" in message
    # ... unless standalone is off: then one voter and an observer is an ensemble
    cfg = parse_zoo_cfg("standaloneEnabled=false\n" + LIMITS + "server.1=a:1:2\nserver.2=b:1:2:observer\n")[0]
    assert cfg.ensemble


def test_ensemble_property_follows_zookeeper_is_distributed():
    a, b, o = PeerSpec(1, "a", 1, 2), PeerSpec(2, "b", 1, 2), PeerSpec(3, "c", 1, 2, observer=True)
    assert not ServerConfig().ensemble
    assert not ServerConfig(servers=(a,)).ensemble
    assert not ServerConfig(servers=(a, o)).ensemble
    assert ServerConfig(servers=(a,), standalone_enabled=False).ensemble
    assert ServerConfig(servers=(a, b)).ensemble


# -- initLimit, syncLimit, electionAlg, peerType and the other scalar keys -------------------------------

@pytest.mark.parametrize("limits, missing", [
    ("syncLimit=5\n", "initLimit is not set"),
    ("initLimit=10\n", "syncLimit is not set"),
    ("", "initLimit is not set"),
])
def test_an_ensemble_needs_init_and_sync_limits(limits, missing):
    assert missing in error(three(limits=limits))


def test_standalone_does_not_need_the_limits():
    cfg, warnings = parse_zoo_cfg("tickTime=2000\n")
    assert (cfg.init_limit, cfg.sync_limit) == (10, 5) and warnings == []


@pytest.mark.parametrize("text, fragments", [
    ("initLimit=0", ["initLimit", "'0'", "positive"]),   # ZooKeeper: "initLimit is not set"
    ("initLimit=-3", ["initLimit", "-3"]),               # ZooKeeper takes it and never syncs
    ("syncLimit=five", ["syncLimit", "five"]),
    ("electionAlg=0", ["electionAlg", "only electionAlg=3", "removed"]),
    ("electionAlg=1", ["electionAlg", "only electionAlg=3"]),
    ("electionAlg=fast", ["electionAlg", "fast"]),
    ("peerType=leader", ["peerType", "leader", "participant or observer"]),
    ("standaloneEnabled=nope", ["standaloneEnabled", "nope"]),
    ("quorumListenOnAllIPs=1", ["quorumListenOnAllIPs", "'1'"]),
    ("readonlymode.enabled=yes", ["readonlymode.enabled", "yes"]),
    ("electionPortBindRetry=many", ["electionPortBindRetry", "many"]),
])
def test_invalid_ensemble_values_are_errors_naming_the_key(text, fragments):
    # electionAlg != 3 is refused even standalone, as ZooKeeper refuses it while parsing
    for body in (three(text + "\n"), text + "\n"):
        message = error(body)
        for fragment in fragments:
            assert fragment in message


def test_scalar_ensemble_keys_are_honoured():
    cfg, warnings = parse_zoo_cfg(three(limits="initLimit=20\nsyncLimit=7\n") + (
        "electionAlg=3\npeerType=Participant\nelectionPortBindRetry=0\nquorumListenOnAllIPs=true\n"
        "readonlymode.enabled=true\nstandaloneEnabled=true\n"))
    assert warnings == []   # an ensemble uses them all: no "ignored" warning
    assert (cfg.init_limit, cfg.sync_limit, cfg.election_alg, cfg.peer_type) == (20, 7, 3, "participant")
    assert cfg.election_port_bind_retry == 0   # retry forever
    assert cfg.quorum_listen_on_all_ips and cfg.read_only and cfg.standalone_enabled


def test_zookeeper_prefixed_spellings_of_read_only_and_bind_retry():
    cfg = parse_zoo_cfg(three("zookeeper.readonlymode.enabled=true\nzookeeper.electionPortBindRetry=9\n"))[0]
    assert cfg.read_only and cfg.election_port_bind_retry == 9


def test_negative_election_port_bind_retry_uses_the_default_as_zookeeper_does():
    cfg, warnings = parse_zoo_cfg(three("electionPortBindRetry=-1\n"))
    assert cfg.election_port_bind_retry == 3
    assert len(warnings) == 1 and "electionPortBindRetry" in warnings[0] and "3" in warnings[0]


def test_peer_type_disagreeing_with_the_member_s_line_warns_and_the_line_wins():
    cfg, warnings = parse_zoo_cfg(FOUR + "peerType=observer\n", myid=1)
    assert cfg.peer_type == "participant"
    assert warnings == ["line 9: peerType=observer but server.1 (this server) is a participant in its "
                        "server line; the server line wins, as in ZooKeeper"]
    cfg, warnings = parse_zoo_cfg(FOUR + "peerType=participant\n", myid=4)
    assert cfg.peer_type == "observer" and len(warnings) == 1 and "server.4" in warnings[0]
    # agreeing: no warning
    assert parse_zoo_cfg(FOUR + "peerType=observer\n", myid=4)[1] == []


@pytest.mark.parametrize("line", [
    "initLimit=10", "syncLimit=5", "electionAlg=3", "peerType=observer", "quorumListenOnAllIPs=true",
    "standaloneEnabled=true", "readonlymode.enabled=true", "electionPortBindRetry=5",
])
def test_ensemble_keys_no_longer_say_unused_by_standalone(line):
    key = line.split("=")[0]
    limits = "".join(f"{k}\n" for k in LIMITS.split() if not k.startswith(key + "="))
    assert parse_zoo_cfg(three(line + "\n", limits=limits))[1] == []
    # standalone, they say they only matter to an ensemble member
    warnings = parse_zoo_cfg(line + "\n")[1]
    assert warnings == [f"line 1: {key} only matters to an ensemble member and this configuration "
                        f"runs standalone; ignored"]


def test_other_zookeeper_keys_keep_the_standalone_ignored_warning():
    warnings = parse_zoo_cfg(three("syncEnabled=true\n"))[1]
    assert warnings == ["line 6: syncEnabled is not used by a standalone coordcore server; ignored"]


@pytest.mark.parametrize("line", ["group.1=1:2:3", "weight.1=2"])
def test_hierarchical_quorum_keys_are_not_supported(line):
    warnings = parse_zoo_cfg(three(line + "\n"))[1]
    assert len(warnings) == 1
    assert line.split("=")[0] in warnings[0] and "not supported" in warnings[0] and "ignored" in warnings[0]


# -- warnings about the size of the ensemble -----------------------------------------------------------

def test_two_voters_warn_that_losing_either_stops_writes():
    cfg, warnings = parse_zoo_cfg(LIMITS + "server.1=a:1:2\nserver.2=b:1:2\n")
    assert cfg.ensemble
    assert warnings == ["line 3: the ensemble has only 2 voters: losing either stops writes "
                        "(3 voters tolerate one failure)"]


def test_an_even_number_of_voters_warns():
    text = three("server.4=127.0.0.1:2891:3891\n")
    warnings = parse_zoo_cfg(text)[1]
    assert warnings == ["line 3: the ensemble has an even number of voters (4): it tolerates no more "
                        "failures than 3 would (1); consider an odd number"]


def test_observers_do_not_count_as_voters():
    assert parse_zoo_cfg(three("server.4=127.0.0.1:2891:3891:observer\n"))[1] == []   # 3 voters
    warnings = parse_zoo_cfg(LIMITS + "server.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2:observer\n")[1]
    assert len(warnings) == 1 and "only 2 voters" in warnings[0]


# -- myid ----------------------------------------------------------------------------------------------

def write_cfg(tmp_path, text=FOUR, myid: str | None = None):
    data = tmp_path / "data"
    data.mkdir()
    if myid is not None:
        (data / "myid").write_text(myid)
    path = tmp_path / "zoo.cfg"
    path.write_text(text.replace("/var/lib/zookeeper", str(data)))
    return path


def test_load_config_reads_dataDir_myid(tmp_path):
    cfg, warnings = load_config(write_cfg(tmp_path, myid="3\n"))
    assert cfg.server_id == 3 and cfg.me.host == "zk3.example.com" and cfg.peer_type == "participant"
    assert warnings == []


def test_load_config_myid_decides_the_member_s_type_and_client_port(tmp_path):
    text = FOUR.replace("3888:observer", "3888:observer;10.0.0.4:2184")
    cfg = load_config(write_cfg(tmp_path, text, myid=" 4 "))[0]
    assert (cfg.server_id, cfg.peer_type, cfg.client_port, cfg.client_port_address) == \
        (4, "observer", 2184, "10.0.0.4")


def test_load_config_without_myid_in_an_ensemble_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="dataDir/myid is missing: an ensemble member needs it"):
        load_config(write_cfg(tmp_path))


@pytest.mark.parametrize("content", ["", "three", "1.5", "-2", "1\n2\n"])
def test_load_config_with_a_garbage_myid_is_an_error(tmp_path, content):
    with pytest.raises(ConfigError, match="myid") as exc:
        load_config(write_cfg(tmp_path, myid=content))
    assert str(tmp_path) in str(exc.value)


def test_load_config_with_a_myid_naming_no_server_is_an_error(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(write_cfg(tmp_path, myid="9"))
    assert "myid 9" in str(exc.value) and "server.9" in str(exc.value) and "1, 2, 3, 4" in str(exc.value)


def test_parse_zoo_cfg_checks_a_given_myid_too():
    assert "server.9" in error(FOUR, myid=9)
    assert "myid" in error(FOUR, myid=-1)


def test_standalone_load_config_needs_no_myid(tmp_path):
    cfg, warnings = load_config(write_cfg(tmp_path, "tickTime=2000\ndataDir=/var/lib/zookeeper\n"))
    assert not cfg.ensemble and cfg.server_id == 0 and warnings == []


def test_one_server_line_standalone_needs_no_myid(tmp_path):
    cfg = load_config(write_cfg(tmp_path, "dataDir=/var/lib/zookeeper\nserver.1=a:1:2\n"))[0]
    assert not cfg.ensemble and cfg.server_id == 0


def test_read_myid(tmp_path):
    (tmp_path / "myid").write_text("12\n")
    assert read_myid(str(tmp_path)) == 12


def test_overriding_a_loaded_ensemble_config_keeps_its_servers_and_member(tmp_path):
    # what `coordcore serve --config zoo.cfg --tick-time 100` does: parse a flag over the loaded config
    text = FOUR.replace("server.2=zk2.example.com:2888:3888:participant",
                        "server.2=zk2.example.com:2888:3888:participant;2182")
    cfg = load_config(write_cfg(tmp_path, text, myid="2"))[0]
    more, warnings = parse_zoo_cfg("tickTime=100", cfg)
    assert (more.tick_ms, more.servers, more.server_id, more.client_port) == (100, cfg.servers, 2, 2182)
    assert more.ensemble and warnings == []
    assert "2182" in error("clientPort=2999", cfg)


# -- SERVER_JVMFLAGS -----------------------------------------------------------------------------------

def test_jvm_flag_overrides_picks_the_understood_system_properties():
    flags = ("-Xmx2g -XX:+UseG1GC -Dreadonlymode.enabled=true '-Dzookeeper.4lw.commands.whitelist=srvr, ruok'"
             " -Djava.net.preferIPv4Stack=true -Dzookeeper.forceSync=no -Djute.maxbuffer=4194304"
             " -Dzookeeper.electionPortBindRetry=0 -Dzookeeper.snapCount=1000 -Dzookeeper.frobnicate=1")
    assert jvm_flag_overrides(flags) == {
        "readonlymode.enabled": "true", "4lw.commands.whitelist": "srvr, ruok", "forceSync": "no",
        "jute.maxbuffer": "4194304", "electionPortBindRetry": "0", "snapCount": "1000"}


def test_jvm_flag_overrides_of_nothing():
    assert jvm_flag_overrides("") == {} and jvm_flag_overrides("-Xmx1g -Dfoo=bar") == {}


def test_a_repeated_jvm_flag_last_wins():
    assert jvm_flag_overrides("-Dreadonlymode.enabled=true -Dreadonlymode.enabled=false") == \
        {"readonlymode.enabled": "false"}


def test_apply_jvm_flags_turns_read_only_mode_on_in_an_ensemble():
    cfg = parse_zoo_cfg(FOUR, myid=1)[0]
    assert not cfg.read_only
    new, warnings = apply_jvm_flags(cfg, "-Xmx1g -Dreadonlymode.enabled=true -Dzookeeper.forceSync=no")
    assert new.read_only and not new.force_sync and warnings == []
    assert (new.servers, new.server_id) == (cfg.servers, cfg.server_id)


def test_apply_jvm_flags_without_flags_changes_nothing():
    cfg = parse_zoo_cfg(FOUR, myid=1)[0]
    assert apply_jvm_flags(cfg, "") == (cfg, [])


def test_apply_jvm_flags_standalone_warns_that_read_only_mode_is_ignored():
    new, warnings = apply_jvm_flags(ServerConfig(), "-Dreadonlymode.enabled=true")
    assert new.read_only
    assert warnings == ["SERVER_JVMFLAGS: -Dreadonlymode.enabled only matters to an ensemble member and "
                        "this configuration runs standalone; ignored"]


@pytest.mark.parametrize("flags, fragments", [
    ("-Dreadonlymode.enabled=yes", ["-Dreadonlymode.enabled", "yes"]),
    ("-Dzookeeper.snapCount=lots", ["-Dzookeeper.snapCount", "lots"]),
    ("-Djute.maxbuffer=1M", ["-Djute.maxbuffer", "1M"]),
    ("-Dreadonlymode.enabled", ["-Dreadonlymode.enabled"]),   # no value: the JVM sets ""
    ("-Dzookeeper.forceSync='no", ["SERVER_JVMFLAGS"]),          # unbalanced quote
])
def test_invalid_jvm_flags_are_errors_naming_the_flag(flags, fragments):
    with pytest.raises(ConfigError) as exc:
        apply_jvm_flags(ServerConfig(), flags)
    for fragment in fragments:
        assert fragment in str(exc.value)


def test_apply_jvm_flags_rechecks_session_timeouts():
    cfg = parse_zoo_cfg("minSessionTimeout=10000\n")[0]
    with pytest.raises(ConfigError, match="minSessionTimeout must not be larger than maxSessionTimeout"):
        apply_jvm_flags(cfg, "-Dzookeeper.maxSessionTimeout=5000")


def test_apply_jvm_flags_client_port_must_agree_with_the_member_s_server_line():
    cfg = parse_zoo_cfg(three().replace("3888\n", "3888;2181\n"), myid=1)[0]
    with pytest.raises(ConfigError) as exc:
        apply_jvm_flags(cfg, "-Dzookeeper.clientPort=2999")
    assert "-Dzookeeper.clientPort=2999" in str(exc.value) and "2181" in str(exc.value)


def test_apply_jvm_flags_corrections_are_prefixed_warnings():
    new, warnings = apply_jvm_flags(ServerConfig(), "-Dzookeeper.snapCount=1")
    assert new.snap_count == 2
    assert len(warnings) == 1 and warnings[0].startswith("SERVER_JVMFLAGS: -Dzookeeper.snapCount=1")
