"""zoo.cfg parsing: every supported key, warnings for unknown/ignored keys, errors that name key and value.

Where ZooKeeper 3.8 has a rule we follow it (checked by running ZooKeeperServerMain on the same file):
minSessionTimeout > maxSessionTimeout is rejected on the *effective* values (defaults 2x/20x tickTime),
tickTime must be set (> 0), ports outside 0-65535 are rejected, srvr is always whitelisted, snapCount
below 2 becomes 2.
"""
from __future__ import annotations

import os

import pytest

from coordcore.config import DEFAULT_4LW, KNOWN_4LW, ConfigError, ServerConfig, load_config, parse_zoo_cfg


def parse(text: str) -> ServerConfig:
    cfg, warnings = parse_zoo_cfg(text)
    assert warnings == [], warnings
    return cfg


def test_empty_file_gives_the_defaults():
    cfg, warnings = parse_zoo_cfg("")
    assert cfg == ServerConfig()
    assert warnings == []
    assert cfg.four_letter_whitelist == DEFAULT_4LW


def test_every_supported_key(tmp_path):
    text = f"""
# a full zoo.cfg
tickTime=500
dataDir={tmp_path}/data
dataLogDir={tmp_path}/log
clientPort=2999
clientPortAddress=0.0.0.0
maxClientCnxns=7
minSessionTimeout=1000
maxSessionTimeout=30000
snapCount=5000
4lw.commands.whitelist=ruok, mntr
extendedTypesEnabled=true
jute.maxbuffer=4194304
DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=
znode.container.checkIntervalMs=1000
forceSync=no
"""
    cfg = parse(text)
    assert cfg.tick_ms == 500
    assert cfg.data_dir == str(tmp_path / "data")
    assert cfg.data_log_dir == str(tmp_path / "log")
    assert cfg.log_dir == str(tmp_path / "log")
    assert cfg.client_port == 2999
    assert cfg.client_port_address == "0.0.0.0"
    assert cfg.max_client_cnxns == 7
    assert (cfg.min_session_timeout_ms, cfg.max_session_timeout_ms) == (1000, 30000)
    assert cfg.snap_count == 5000
    # ZooKeeper always enables srvr, whatever the whitelist says
    assert cfg.four_letter_whitelist == {"ruok", "mntr", "srvr"}
    assert cfg.extended_types_enabled is True
    assert cfg.jute_maxbuffer == 4194304
    assert cfg.super_digest == "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
    assert cfg.container_check_interval_ms == 1000
    assert cfg.force_sync is False


def test_session_timeout_defaults_follow_ticktime():
    cfg = parse("tickTime=300")
    assert (cfg.min_session_timeout_ms, cfg.max_session_timeout_ms) == (600, 6000)


@pytest.mark.parametrize("text, field, value", [
    ("zookeeper.extendedTypesEnabled=true", "extended_types_enabled", True),
    ("extendedTypesEnabled=FALSE", "extended_types_enabled", False),
    ("zookeeper.DigestAuthenticationProvider.superDigest=s:abc=", "super_digest", "s:abc="),
    ("zookeeper.forceSync=no", "force_sync", False),
    ("forceSync=yes", "force_sync", True),
    ("enforceQuota=true", "enforce_quota", True),
    ("zookeeper.enforceQuota=false", "enforce_quota", False),
    ("reconfigEnabled=true", "reconfig_enabled", True),
    ("zookeeper.snapCount=10", "snap_count", 10),
    ("jute.maxbuffer=0x200000", "jute_maxbuffer", 0x200000),
    ("clientPort=0", "client_port", 0),  # 0: pick a free port
    ("maxClientCnxns=0", "max_client_cnxns", 0),  # 0: unlimited
])
def test_alternative_spellings_and_edge_values(text, field, value):
    assert getattr(parse(text), field) == value


@pytest.mark.parametrize("spec, expected", [
    ("*", KNOWN_4LW),
    ("ruok,stat", {"ruok", "stat", "srvr"}),
    ("ruok stat  conf", {"ruok", "stat", "conf", "srvr"}),
    (" mntr , envi ", {"mntr", "envi", "srvr"}),
    ("", {"srvr"}),
])
def test_whitelist_forms(spec, expected):
    assert parse(f"4lw.commands.whitelist={spec}").four_letter_whitelist == frozenset(expected)


def test_unknown_four_letter_word_in_whitelist_is_a_warning():
    cfg, warnings = parse_zoo_cfg("4lw.commands.whitelist=ruok, nope")
    assert cfg.four_letter_whitelist == {"ruok", "srvr"}
    assert len(warnings) == 1 and "nope" in warnings[0]


def test_java_properties_syntax():
    cfg = parse("! bang comment\n  tickTime = 700  \nclientPort: 3000\nmaxClientCnxns 9\n"
                "snapCount=12\\\n34\n")
    assert (cfg.tick_ms, cfg.client_port, cfg.max_client_cnxns, cfg.snap_count) == (700, 3000, 9, 1234)


def test_relative_data_dirs_are_relative_to_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = parse("dataDir=zk/data\ndataLogDir=../logs")
    assert cfg.data_dir == str(tmp_path / "zk" / "data")
    assert cfg.data_log_dir == os.path.abspath(tmp_path / ".." / "logs")


def test_unknown_key_is_a_warning_naming_it():
    cfg, warnings = parse_zoo_cfg("tickTime=100\nfrobnicate=3\n")
    assert cfg.tick_ms == 100
    assert warnings == ["line 2: unknown key 'frobnicate'; ignored"]


@pytest.mark.parametrize("line", [
    "initLimit=10", "syncLimit=5", "autopurge.snapRetainCount=3", "autopurge.purgeInterval=1",
    "admin.enableServer=false", "admin.serverPort=8080", "server.1=localhost:2888:3888",
    "electionAlg=3", "secureClientPort=2281", "metricsProvider.className=x", "standaloneEnabled=true",
])
def test_zookeeper_keys_unused_in_standalone_are_accepted_with_an_ignored_warning(line):
    cfg, warnings = parse_zoo_cfg(line)
    assert cfg == ServerConfig()
    assert len(warnings) == 1
    assert line.split("=")[0] in warnings[0] and "ignored" in warnings[0]


def test_myid_is_not_a_zoo_cfg_key():
    cfg, warnings = parse_zoo_cfg("myid=3")
    assert cfg.server_id == 0
    assert len(warnings) == 1 and "myid" in warnings[0]


def test_repeated_key_last_wins_with_a_warning():
    cfg, warnings = parse_zoo_cfg("tickTime=100\ntickTime=200")
    assert cfg.tick_ms == 200
    assert len(warnings) == 1 and "repeated" in warnings[0]


def test_snapcount_below_two_is_corrected_as_zookeeper_does():
    cfg, warnings = parse_zoo_cfg("snapCount=1")
    assert cfg.snap_count == 2
    assert len(warnings) == 1 and "snapCount" in warnings[0]


@pytest.mark.parametrize("text, must_mention", [
    ("tickTime=abc", ["tickTime", "abc"]),
    ("tickTime=-5", ["tickTime", "-5"]),
    ("tickTime=0", ["tickTime", "0"]),
    ("tickTime=1.5", ["tickTime", "1.5"]),
    ("clientPort=70000", ["clientPort", "70000", "range"]),
    ("clientPort=-1", ["clientPort", "-1"]),
    ("clientPort=", ["clientPort"]),
    ("clientPortAddress=", ["clientPortAddress"]),
    ("maxClientCnxns=-1", ["maxClientCnxns", "-1"]),
    ("minSessionTimeout=-5", ["minSessionTimeout", "-5"]),
    ("maxSessionTimeout=ten", ["maxSessionTimeout", "ten"]),
    ("snapCount=lots", ["snapCount", "lots"]),
    ("jute.maxbuffer=0", ["jute.maxbuffer", "0"]),
    ("jute.maxbuffer=1M", ["jute.maxbuffer", "1M"]),
    ("extendedTypesEnabled=maybe", ["extendedTypesEnabled", "maybe"]),
    ("forceSync=sometimes", ["forceSync", "sometimes"]),
    ("enforceQuota=yes", ["enforceQuota", "yes"]),  # ZooKeeper would read "yes" as false
    ("znode.container.checkIntervalMs=-1", ["znode.container.checkIntervalMs", "-1"]),
    ("DigestAuthenticationProvider.superDigest=nocolon", ["superDigest", "nocolon"]),
    ("dataDir=", ["dataDir"]),
    ("tickTime=99999999999", ["tickTime", "99999999999"]),
])
def test_invalid_values_raise_config_error_naming_key_and_value(text, must_mention):
    with pytest.raises(ConfigError) as exc:
        parse_zoo_cfg(text)
    for word in must_mention:
        assert word in str(exc.value)


@pytest.mark.parametrize("text", [
    "minSessionTimeout=50000\nmaxSessionTimeout=4000",
    # ZooKeeper compares the effective values: max defaults to 20 x tickTime = 40000
    "minSessionTimeout=50000",
    "tickTime=1000\nmaxSessionTimeout=1000",  # min defaults to 2 x tickTime = 2000
])
def test_min_session_timeout_above_max_is_rejected_like_zookeeper(text):
    with pytest.raises(ConfigError, match="minSessionTimeout must not be larger than maxSessionTimeout"):
        parse_zoo_cfg(text)


def test_min_equal_max_is_fine():
    cfg = parse("minSessionTimeout=5000\nmaxSessionTimeout=5000")
    assert cfg.min_session_timeout_ms == cfg.max_session_timeout_ms == 5000


def test_parse_over_a_base_config(tmp_path):
    base = ServerConfig(data_dir=str(tmp_path), client_port=0)
    cfg = parse_zoo_cfg("tickTime=100", base)[0]
    assert (cfg.data_dir, cfg.client_port, cfg.tick_ms) == (str(tmp_path), 0, 100)


def test_load_config_reads_a_file(tmp_path):
    p = tmp_path / "zoo.cfg"
    p.write_text("tickTime=250\nbogus=1\n")
    cfg, warnings = load_config(p)
    assert cfg.tick_ms == 250
    assert len(warnings) == 1 and "bogus" in warnings[0]


def test_load_config_missing_file_is_a_config_error(tmp_path):
    missing = tmp_path / "nope.cfg"
    with pytest.raises(ConfigError, match="cannot read config file .*nope.cfg"):
        load_config(missing)


def test_the_sample_zoo_cfg_from_zookeeper_parses():
    sample = """\
# The number of milliseconds of each tick
tickTime=2000
# The number of ticks that the initial
# synchronization phase can take
initLimit=10
# The number of ticks that can pass between
# sending a request and getting an acknowledgement
syncLimit=5
dataDir=/var/lib/zookeeper
# the port at which the clients will connect
clientPort=2181
#maxClientCnxns=60
#autopurge.snapRetainCount=3
#autopurge.purgeInterval=1
#metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider
"""
    cfg, warnings = parse_zoo_cfg(sample)
    assert (cfg.tick_ms, cfg.data_dir, cfg.client_port) == (2000, "/var/lib/zookeeper", 2181)
    assert len(warnings) == 2 and all("ignored" in w for w in warnings)
