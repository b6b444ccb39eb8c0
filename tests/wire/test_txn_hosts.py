"""Where djongo-server runs a transaction: on the thread of the connection
whose command began it (src/server/host.c), with no thread of its own --
while a driver may still send the transaction's commands over any of its
connections, close the first one, write outside the transaction on it, or
leave the transaction open at shutdown, as with mongod.
https://www.mongodb.com/docs/manual/core/transactions/"""
import os
import socket
import threading
import time
import uuid

import bson
from bson.binary import Binary, UUID_SUBTYPE

from conftest import Server
from test_limits import op_msg, reply


class Conn:
    """One raw connection: a command in, its reply document out."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.n = 0

    def run(self, cmd):
        self.n += 1
        self.sock.sendall(op_msg(cmd, self.n))
        return bson.decode(reply(self.sock)[21:])

    def close(self):
        self.sock.close()


def lsid():
    return {"id": Binary(uuid.uuid4().bytes, UUID_SUBTYPE)}


def in_txn(cmd, session, txn, start=False):
    cmd = dict(cmd, lsid=session, txnNumber=bson.int64.Int64(txn), autocommit=False)
    if start:
        cmd["startTransaction"] = True
    return cmd


def insert(doc):
    return {"insert": "t", "documents": [doc], "$db": "h"}


def commit(session, txn):
    return in_txn({"commitTransaction": 1, "$db": "admin"}, session, txn)


def ids(conn):
    got = conn.run({"find": "t", "sort": {"_id": 1}, "$db": "h"})
    return [d["_id"] for d in got["cursor"]["firstBatch"]]


def threads(server):
    return len(os.listdir("/proc/%d/task" % server.proc.pid))


def settled_threads(server):
    """The thread count once it holds still for 0.3 s: the thread of a
    connection just closed (the fixture's readiness probe) may still be on
    its way out on a loaded machine."""
    last, still = threads(server), time.monotonic()
    deadline = still + 10
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = threads(server)
        if now != last:
            last, still = now, time.monotonic()
        elif time.monotonic() - still >= 0.3:
            break
    return last


def test_a_transaction_over_one_connection_starts_no_thread(server):
    a = Conn(server.port)
    assert a.run({"ping": 1, "$db": "admin"})["ok"] == 1
    before = settled_threads(server)
    for txn in range(1, 4):
        s = lsid()
        assert a.run(in_txn(insert({"_id": txn}), s, txn, start=True))["n"] == 1
        assert a.run(commit(s, txn))["ok"] == 1
    assert settled_threads(server) == before  # (a worker thread per transaction before: kept in a pool)
    assert ids(a) == [1, 2, 3]
    a.close()


def test_a_transaction_continues_over_another_connection(server):
    a, b = Conn(server.port), Conn(server.port)
    s = lsid()
    assert a.run(in_txn(insert({"_id": 1}), s, 1, start=True))["n"] == 1
    # posted to the thread of a, idle between its messages
    assert b.run(in_txn(insert({"_id": 2}), s, 1))["n"] == 1
    got = b.run(in_txn({"find": "t", "$db": "h"}, s, 1))
    assert sorted(d["_id"] for d in got["cursor"]["firstBatch"]) == [1, 2]
    assert ids(b) == []  # others see the last commit
    assert a.run(in_txn(insert({"_id": 3}), s, 1))["n"] == 1
    # the connection that began it goes; the transaction stays
    a.close()
    time.sleep(0.2)
    assert b.run(in_txn(insert({"_id": 4}), s, 1))["n"] == 1
    assert b.run(commit(s, 1))["ok"] == 1
    assert ids(b) == [1, 2, 3, 4]
    b.close()


def test_a_write_outside_the_transaction_on_its_connection_waits_for_its_end(server):
    """LMDB has one writer: a plain insert waits while a transaction that
    wrote is open -- here one the same connection began, ended over
    another connection."""
    a, b = Conn(server.port), Conn(server.port)
    s = lsid()
    assert a.run(in_txn(insert({"_id": 1}), s, 1, start=True))["n"] == 1
    out = {}
    t = threading.Thread(target=lambda: out.update(a.run(insert({"_id": 2}))))
    t.start()
    t.join(0.5)
    assert t.is_alive() and not out  # waiting for the write lock
    assert b.run(commit(s, 1))["ok"] == 1
    t.join(10)
    assert out["ok"] == 1 and out["n"] == 1
    assert ids(b) == [1, 2]
    a.close()
    b.close()


def test_an_abandoned_transaction_is_aborted_past_its_lifetime(tmp_path):
    srv = Server(tmp_path / "data", "--txn-lifetime", "1")
    try:
        a, b = Conn(srv.port), Conn(srv.port)
        s = lsid()
        assert a.run(in_txn(insert({"_id": 1}), s, 1, start=True))["n"] == 1
        time.sleep(2.5)
        late = b.run(commit(s, 1))
        assert late["ok"] == 0 and late["code"] == 251  # NoSuchTransaction: aborted
        assert b.run(insert({"_id": 2}))["n"] == 1  # the write lock was let go
        assert a.run({"ping": 1, "$db": "admin"})["ok"] == 1  # its connection still serves
        assert ids(a) == [2]
        a.close()
        b.close()
    finally:
        assert srv.stop() == 0


def test_shutdown_with_transactions_left_open(tmp_path):
    """SIGTERM ends the server cleanly while one transaction's connection is
    open and idle and another's has closed; neither is committed."""
    data = tmp_path / "data"
    srv = Server(data)
    a, b = Conn(srv.port), Conn(srv.port)
    assert a.run(in_txn(insert({"_id": 1}), lsid(), 1, start=True))["n"] == 1
    assert b.run(in_txn({"find": "t", "$db": "h"}, lsid(), 1, start=True))["ok"] == 1
    b.close()
    time.sleep(0.2)
    t0 = time.monotonic()
    assert srv.stop() == 0
    assert time.monotonic() - t0 < 10
    a.close()
    srv = Server(data)
    try:
        c = Conn(srv.port)
        assert ids(c) == []
        c.close()
    finally:
        assert srv.stop() == 0
