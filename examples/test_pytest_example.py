"""Using coordcore's pytest fixtures in your own tests.

Installing coordcore registers the plugin; run this file with

    pytest examples/test_pytest_example.py                       # on coordcore and Apache ZooKeeper
    pytest examples/test_pytest_example.py --zk-backend coordcore  # no Java needed

``zk_client`` is a started kazoo client on a session-wide server, ``zk_root`` a fresh znode for this test
(deleted afterwards), ``zk_client_factory`` makes more clients (one per simulated process).
"""

import threading

from recipes import LeaderElection, Lock


def test_lock_protects_a_counter(zk_client_factory, zk_root):
    counter_path = f"{zk_root}/counter"
    first = zk_client_factory()
    first.create(counter_path, b"0")

    def work(client):
        for _ in range(5):
            with Lock(client, f"{zk_root}/lock") as lock:
                value = int(first.get(counter_path)[0])
                lock.guarded_set(counter_path, str(value + 1).encode())  # fenced by the lock node

    threads = [threading.Thread(target=work, args=(zk_client_factory(),)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert int(first.get(counter_path)[0]) == 15


def test_one_leader(zk_client, zk_root):
    seen = []
    election = LeaderElection(zk_client, f"{zk_root}/election", identifier="me")
    election.run(lambda leadership: seen.append((election.leader(), leadership.is_leader)))
    assert seen == [("me", True)]
