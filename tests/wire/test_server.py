"""djongo-server through pymongo (the ecosystem's driver) and through raw
sockets: CRUD, cursors, indexes, errors with MongoDB's codes, sessions and
transactions; malformed, truncated and oversized messages close only their
connection; the data outlives the server."""
import os
import socket
import struct
import sys

import bson
import pymongo
import pytest
from pymongo.errors import DuplicateKeyError, OperationFailure

from conftest import Server

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
from concurrently import in_threads  # noqa: E402 -- shared with the driver's tests


def client(server, **kw):
    return pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=5000, **kw)


def test_handshake_and_crud(server):
    c = client(server)
    info = c.server_info()
    assert info["version"].startswith("8.") and info["ok"] == 1
    hello = c.admin.command("hello")
    assert hello["isWritablePrimary"] and hello["setName"] == "djongo" and hello["maxWireVersion"] >= 17
    coll = c.shop.items
    coll.insert_many([{"_id": i, "k": i % 5, "tags": ["a", "b"][: i % 3]} for i in range(500)])
    assert coll.count_documents({"k": 2}) == 100
    assert len(list(coll.find({}, batch_size=7))) == 500  # many getMores
    assert [d["_id"] for d in coll.find({"k": 4}).sort("_id", -1).limit(2)] == [499, 494]
    assert coll.update_many({"k": 1}, {"$set": {"flag": True}}).modified_count == 100
    assert coll.find_one_and_update({"_id": 3}, {"$inc": {"n": 1}}, return_document=True)["n"] == 1
    assert coll.delete_many({"k": 0}).deleted_count == 100
    coll.create_index([("k", 1)], unique=False, name="k_1")
    assert {ix["name"] for ix in coll.list_indexes()} == {"_id_", "k_1"}
    assert list(coll.aggregate([{"$group": {"_id": None, "n": {"$sum": 1}}}]))[0]["n"] == 400
    with pytest.raises(DuplicateKeyError) as e:
        coll.insert_one({"_id": 1})
    assert e.value.code == 11000
    # the duplicate key, as mongod names it (https://www.mongodb.com/docs/manual/core/index-unique/)
    assert e.value.details["keyPattern"] == {"_id": 1} and e.value.details["keyValue"] == {"_id": 1}
    uniq = c.shop.uniq
    uniq.create_index([("u", 1), ("v", -1)], unique=True, name="uv")
    uniq.insert_one({"u": 1, "v": [5, 6]})
    with pytest.raises(DuplicateKeyError) as e:
        uniq.find_one_and_update({"u": 2}, {"$set": {"u": 1, "v": 6}}, upsert=True)
    assert e.value.details["keyPattern"] == {"u": 1, "v": -1} and e.value.details["keyValue"] == {"u": 1, "v": 6}
    assert "index: uv dup key: { u: 1, v: 6 }" in e.value.details["errmsg"]
    with pytest.raises(OperationFailure) as e:
        c.shop.command({"nosuchcommand": 1})
    assert e.value.code == 59
    assert "shop" in c.list_database_names()
    c.close()


def test_transactions(server):
    c = client(server)
    coll = c.bank.accounts
    coll.insert_many([{"_id": "a", "v": 100}, {"_id": "b", "v": 0}])
    with c.start_session() as s:
        with s.start_transaction():
            coll.update_one({"_id": "a"}, {"$inc": {"v": -30}}, session=s)
            coll.update_one({"_id": "b"}, {"$inc": {"v": 30}}, session=s)
            assert coll.find_one({"_id": "b"}, session=s)["v"] == 30
            assert coll.find_one({"_id": "b"})["v"] == 0  # others see the last commit
    assert [d["v"] for d in coll.find().sort("_id")] == [70, 30]
    with c.start_session() as s:
        s.start_transaction()
        coll.update_one({"_id": "a"}, {"$inc": {"v": -70}}, session=s)
        s.abort_transaction()
    assert coll.find_one({"_id": "a"})["v"] == 70
    # a failing command aborts the transaction (MongoDB's rule)
    with c.start_session() as s:
        s.start_transaction()
        coll.insert_one({"_id": "c"}, session=s)
        with pytest.raises(DuplicateKeyError):
            coll.insert_one({"_id": "a"}, session=s)
        with pytest.raises(OperationFailure) as e:
            coll.insert_one({"_id": "d"}, session=s)
        assert e.value.code == 251 and e.value.has_error_label("TransientTransactionError")
        with pytest.raises(OperationFailure):
            s.commit_transaction()
    assert coll.count_documents({"_id": {"$in": ["c", "d"]}}) == 0
    # with_transaction retries and commits
    with c.start_session() as s:
        s.with_transaction(lambda s: coll.insert_one({"_id": "e"}, session=s))
    assert coll.count_documents({"_id": "e"}) == 1
    c.close()


def test_concurrent_transactions_conflict_and_retry(server):
    """Transactions are snapshots: two that write at once -- the second
    gets WriteConflict labelled TransientTransactionError (MongoDB's answer)
    and with_transaction retries it after the first commits."""
    c = client(server)
    coll = c.shop.stock
    coll.insert_one({"_id": "x", "n": 10})
    s1, s2 = c.start_session(), c.start_session()
    s1.start_transaction()
    s2.start_transaction()
    assert coll.find_one({"_id": "x"}, session=s2)["n"] == 10  # reads take no lock
    coll.update_one({"_id": "x"}, {"$inc": {"n": -1}}, session=s1)
    with pytest.raises(OperationFailure) as e:
        coll.update_one({"_id": "x"}, {"$inc": {"n": -2}}, session=s2)
    assert e.value.code == 112 and e.value.has_error_label("TransientTransactionError")
    s1.commit_transaction()
    s2.abort_transaction()
    s2.with_transaction(lambda s: coll.update_one({"_id": "x"}, {"$inc": {"n": -2}}, session=s))
    assert coll.find_one({"_id": "x"})["n"] == 7
    s1.end_session()
    s2.end_session()
    c.close()


def test_list_local_sessions(server):
    c = client(server)
    with c.start_session() as s:
        c.db.c.insert_one({"a": 1}, session=s)
        listed = list(c.admin.aggregate([{"$listLocalSessions": {}}, {"$project": {"_id.id": 1, "lastUse": 1}}]))
        assert s.session_id["id"] in [d["_id"]["id"] for d in listed]
        assert all(isinstance(d["lastUse"], __import__("datetime").datetime) for d in listed)
        assert list(c.admin.aggregate([{"$listLocalSessions": {}}, {"$match": {"_id.id": s.session_id["id"]}},
                                       {"$count": "n"}])) == [{"n": 1}]
    c.close()


def test_snapshot_session(server):
    """A snapshot session reads at one point in time (its first read's
    atClusterTime) and may not write.
    https://www.mongodb.com/docs/manual/reference/read-concern-snapshot/"""
    c = client(server)
    coll = c.db.snap
    coll.insert_many([{"_id": 1, "x": 11}, {"_id": 2, "x": 22}])
    with c.start_session(snapshot=True) as s:
        assert list(coll.find({}, session=s)) == [{"_id": 1, "x": 11}, {"_id": 2, "x": 22}]
        assert isinstance(s._snapshot_time, bson.Timestamp)
        coll.update_one({"_id": 1}, {"$inc": {"x": 1}})
        coll.insert_one({"_id": 3})
        assert list(coll.find({}, session=s, batch_size=1)) == [{"_id": 1, "x": 11}, {"_id": 2, "x": 22}]
        assert sorted(coll.distinct("x", session=s)) == [11, 22]
        assert coll.count_documents({}, session=s) == 2
        with pytest.raises(OperationFailure) as e:
            coll.insert_one({"_id": 9}, session=s)
        assert e.value.code == 72
        with pytest.raises(OperationFailure) as e:
            coll.update_one({"_id": 2}, {"$set": {"x": 0}}, session=s)
        assert e.value.code == 72
    assert coll.count_documents({}) == 3 and coll.find_one({"_id": 1})["x"] == 12
    # a point in time the server does not hold
    with pytest.raises(OperationFailure) as e:
        c.db.command({"find": "snap", "readConcern": {"level": "snapshot", "atClusterTime": bson.Timestamp(1, 1)}})
    assert e.value.code == 239
    c.close()


def test_concurrent_clients(server):
    def work(n):
        c = client(server)
        for i in range(100):
            c.load.c.insert_one({"w": n, "i": i})
            c.load.c.find_one({"w": n, "i": i})
        c.close()

    assert not in_threads(work, 8)
    assert client(server).load.c.count_documents({}) == 800


def raw_message(doc, opcode=2013, flags=0, request_id=1):
    body = struct.pack("<I", flags) + b"\x00" + bson.encode(doc)
    return struct.pack("<iiii", 16 + len(body), request_id, 0, opcode) + body


def roundtrip(port, data):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)  # then the client is done sending (a truncated message stays truncated)
    head = s.recv(16)
    s.close()
    return head


def test_bad_messages_close_only_their_connection(server):
    port = server.port
    ok = raw_message({"ping": 1, "$db": "admin"})
    assert len(roundtrip(port, ok)) == 16
    bad = [
        struct.pack("<iiii", 8, 1, 0, 2013),                    # shorter than a header
        struct.pack("<iiii", 64 * 1024 * 1024, 1, 0, 2013),     # over the maximum: refused before allocating
        raw_message({"ping": 1})[:-3],                          # truncated, then the client goes away
        raw_message({"ping": 1}),                               # no $db
        raw_message({"ping": 1, "$db": "x"}, flags=1 << 5),     # unknown required flag bit
        raw_message({"ping": 1, "$db": "x"}, opcode=2012),      # an OP_MSG body read as OP_COMPRESSED: wraps opcode 0
        struct.pack("<iiii", 26, 1, 0, 2013) + b"\0\0\0\0\0" + b"\x05\0\0\0\x01",  # broken BSON
    ]
    for data in bad:
        assert roundtrip(port, data) == b""  # closed without a reply
    assert len(roundtrip(port, ok)) == 16      # the server is still there
    c = client(server)
    assert c.admin.command("ping")["ok"] == 1
    c.close()


def test_checksum_and_document_sequences(server):
    import zlib  # noqa: F401 -- (crc32c is computed below by hand)

    def crc32c(data):
        crc = 0xFFFFFFFF
        for b in data:
            crc ^= b
            for _ in range(8):
                crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
        return ~crc & 0xFFFFFFFF

    body = bson.encode({"insert": "seq", "$db": "wire"})
    docs = b"".join(bson.encode({"_id": i}) for i in range(3))
    seq = b"documents\x00" + docs
    payload = struct.pack("<I", 1) + b"\x00" + body + b"\x01" + struct.pack("<i", 4 + len(seq)) + seq
    msg = struct.pack("<iiii", 16 + len(payload) + 4, 7, 0, 2013) + payload
    msg += struct.pack("<I", crc32c(msg))
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    s.sendall(msg)
    head = s.recv(16)
    length, _, response_to, opcode = struct.unpack("<iiii", head)
    rest = b""
    while len(rest) < length - 16:
        rest += s.recv(length - 16 - len(rest))
    s.close()
    assert response_to == 7 and opcode == 2013
    reply = bson.decode(rest[5:])
    assert reply["ok"] == 1 and reply["n"] == 3
    # a wrong checksum: the connection is closed
    bad = msg[:-4] + struct.pack("<I", crc32c(msg[:-4]) ^ 1)
    assert roundtrip(server.port, bad) == b""


def test_data_outlives_the_server(tmp_path):
    s = Server(tmp_path / "d")
    c = client(s)
    c.keep.c.insert_one({"_id": 1, "v": "kept"})
    c.close()
    assert s.stop() == 0
    s = Server(tmp_path / "d")
    c = client(s)
    assert c.keep.c.find_one({"_id": 1})["v"] == "kept"
    c.close()
    assert s.stop() == 0


def test_load_no_lost_writes(tmp_path):
    """bench/wire_load.py, short: concurrent clients mixing reads and writes;
    no errors, every acknowledged insert found, also after a restart."""
    import os
    import subprocess
    import sys

    from conftest import TOOL
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    p = subprocess.run([sys.executable, os.path.join(root, "bench", "wire_load.py"), "--clients", "4", "--seconds", "3",
                        "--server", TOOL, "--markdown", str(tmp_path / "load.md")], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "errors: 0" in p.stdout


def test_python_m_djongo_server(tmp_path):
    """python -m djongo.server runs the same program."""
    import subprocess
    import sys
    p = subprocess.run([sys.executable, "-m", "djongo.server", "--no-such-option"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and "usage: djongo-server" in p.stderr


def test_help_and_version():
    from conftest import TOOL
    import subprocess
    for args, text in ((["--help"], "--dbpath DIR"), (["--version"], "djongo-server 2.")):
        p = subprocess.run([TOOL, *args], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0 and text in p.stdout, (args, p.stdout, p.stderr)
    assert subprocess.run([TOOL, "--no-such-option"], capture_output=True, text=True, timeout=30).returncode == 2


def test_awaitable_hello(server):
    """A monitor's hello with the topologyVersion it saw and maxAwaitTimeMS
    is answered when the topology changes or the time is up -- a one-member
    set never changes, so after the time -- instead of at once (an idle
    client used to poll hello in a loop). processId is this process's."""
    import time
    import bson as _bson
    with pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=5000) as c:
        tv = c.admin.command("hello")["topologyVersion"]
        assert tv["processId"] != _bson.ObjectId("0" * 24) and tv["counter"] == 0
        start = time.monotonic()
        r = c.admin.command("hello", topologyVersion=tv, maxAwaitTimeMS=700)
        assert time.monotonic() - start >= 0.6 and r["topologyVersion"] == tv
        start = time.monotonic()
        c.admin.command("hello", topologyVersion=tv, maxAwaitTimeMS=10000)
        assert 0.9 <= time.monotonic() - start < 5  # a second at most (handshake.c: DJ_HELLO_AWAIT_MAX_MS)
        start = time.monotonic()
        c.admin.command("hello", topologyVersion={"processId": _bson.ObjectId(), "counter": 0}, maxAwaitTimeMS=5000)
        assert time.monotonic() - start < 2.5  # another process's version: answered at once
    other = Server(server.proc.args[2] + "-other")
    try:
        with pymongo.MongoClient(other.uri, serverSelectionTimeoutMS=5000) as c:
            assert c.admin.command("hello")["topologyVersion"]["processId"] != tv["processId"]
    finally:
        assert other.stop() == 0


def test_tailable_await_data_cursor(server):
    """pymongo's TAILABLE_AWAIT cursor on a capped collection waits for a
    document inserted while it waits (before: it closed after the first
    batch). https://www.mongodb.com/docs/manual/core/tailable-cursors/"""
    import threading
    import time
    from pymongo import CursorType
    with pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=5000) as c:
        log = c.db.create_collection("log", capped=True, size=1 << 20)
        log.insert_one({"_id": 0})
        cur = log.find(cursor_type=CursorType.TAILABLE_AWAIT).max_await_time_ms(3000)
        assert next(cur) == {"_id": 0}
        threading.Timer(0.5, lambda: log.insert_one({"_id": 1})).start()
        start = time.monotonic()
        assert next(cur) == {"_id": 1} and time.monotonic() - start >= 0.4  # waited for it
        assert cur.alive
        cur.close()
        c.db.plain.insert_one({})
        with pytest.raises(OperationFailure) as e:  # only capped collections are tailed
            next(c.db.plain.find(cursor_type=CursorType.TAILABLE))
        assert e.value.code == 2


def test_exhaust_cursor(server):
    """CursorType.EXHAUST: a getMore that allows exhaust is answered with
    every batch, each but the last with moreToCome, the client asking once
    (OP_MSG's exhaustAllowed / moreToCome)."""
    from pymongo import CursorType
    with pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=5000) as c:
        c.db.e.insert_many([{"_id": i} for i in range(1000)])
        cur = c.db.e.find(cursor_type=CursorType.EXHAUST, batch_size=7).sort("_id", 1)
        assert [d["_id"] for d in cur] == list(range(1000))
        assert c.db.e.find_one({"_id": 999}) == {"_id": 999}  # the connection is usable after the stream
        # on the wire: one getMore with exhaustAllowed, every batch back
        cursor_id = c.db.command("find", "e", batchSize=5, sort={"_id": 1})["cursor"]["id"]
    sock = socket.create_connection(("127.0.0.1", server.port))
    body = bson.encode({"getMore": cursor_id, "collection": "e", "batchSize": 400, "$db": "db"})
    msg = struct.pack("<I", 1 << 16) + b"\x00" + body  # flagBits: exhaustAllowed
    sock.sendall(struct.pack("<iiii", 16 + len(msg), 77, 0, 2013) + msg)
    seen, flags, previous = [], [], 77
    while True:
        head = b""
        while len(head) < 16:
            head += sock.recv(16 - len(head))
        length, request_id, response_to, _ = struct.unpack("<iiii", head)
        rest = b""
        while len(rest) < length - 16:
            rest += sock.recv(length - 16 - len(rest))
        assert response_to == previous  # each answers the one before
        previous = request_id
        flag = struct.unpack("<I", rest[:4])[0]
        doc = bson.decode(rest[5:])
        seen += [d["_id"] for d in doc["cursor"]["nextBatch"]]
        flags.append(bool(flag & 2))
        if not flag & 2:
            break
    assert seen == list(range(5, 1000)) and flags == [True, True, False]  # 995 documents, 400 a batch


def test_stable_api_declarations_are_checked(server):
    """A command declaring the Stable API is checked as mongod checks it:
    apiVersion must be "1" (APIVersionError 322), apiStrict needs an
    apiVersion, and with apiStrict: true a command or aggregation stage
    outside API Version 1 is refused with APIStrictError (323).
    https://www.mongodb.com/docs/manual/reference/stable-api/"""
    from pymongo.server_api import ServerApi
    with pymongo.MongoClient(server.uri) as c:
        c.t.x.insert_one({"a": 1})
        with pytest.raises(OperationFailure) as e:
            c.t.command({"ping": 1, "apiVersion": "2"})
        assert e.value.code == 322
        with pytest.raises(OperationFailure) as e:
            c.t.command({"ping": 1, "apiStrict": True})
        assert e.value.code == 4886600
        assert c.t.command({"ping": 1, "apiVersion": "1"})["ok"] == 1
        assert c.t.command({"distinct": "x", "key": "a", "apiVersion": "1"})["values"] == [1]
    with pymongo.MongoClient(server.uri, server_api=ServerApi("1", strict=True)) as s:
        assert s.t.x.find_one({}, {"_id": 0}) == {"a": 1}
        assert s.t.x.count_documents({}) == 1
        with pytest.raises(OperationFailure) as e:
            s.t.x.distinct("a")
        assert e.value.code == 323 and "command distinct is not in API Version 1" in str(e.value)
        with pytest.raises(OperationFailure) as e:
            list(s.admin.aggregate([{"$listLocalSessions": {}}]))
        assert e.value.code == 323
        assert [d["a"] for d in s.t.x.aggregate([{"$match": {}}, {"$project": {"a": 1}}])] == [1]
    with pymongo.MongoClient(server.uri, server_api=ServerApi("1")) as ns:
        assert ns.t.x.distinct("a") == [1]  # not strict: any command


def test_explain_execution_stats_by_verbosity(server):
    """explain's default verbosity is allPlansExecution: the plan is run and
    executionStats reports what it returned (pymongo's Cursor.explain sends
    no verbosity); "queryPlanner" only plans; an unknown verbosity is refused.
    https://www.mongodb.com/docs/manual/reference/command/explain/"""
    with pymongo.MongoClient(server.uri) as c:
        c.t.x.insert_many([{"a": i} for i in range(10)])
        e = c.t.x.find({"a": {"$gte": 4}}).skip(1).limit(3).explain()
        st = e["executionStats"]
        assert st["executionSuccess"] is True and st["nReturned"] == 3 and st["allPlansExecution"] == []
        assert st["executionStages"]["stage"] == e["queryPlanner"]["winningPlan"]["stage"]
        e = c.t.command("explain", {"count": "x", "query": {"a": {"$lt": 2}}}, verbosity="executionStats")
        assert e["executionStats"]["nReturned"] == 2 and "allPlansExecution" not in e["executionStats"]
        e = c.t.command("explain", {"find": "x"}, verbosity="queryPlanner")
        assert "executionStats" not in e and e["queryPlanner"]["winningPlan"]["stage"] == "COLLSCAN"
        with pytest.raises(OperationFailure) as err:
            c.t.command("explain", {"find": "x"}, verbosity="everything")
        assert err.value.code == 2


def test_fsync_flushes_and_validate_background(server):
    """fsync answers as mongod's does (the engine flushes its committed
    writes; lock: true is refused), so pymongo's validate_collection with
    background=True -- which runs fsync first -- works; background with full
    is refused (InvalidOptions).
    https://www.mongodb.com/docs/manual/reference/command/fsync/"""
    with pymongo.MongoClient(server.uri) as c:
        c.t.x.insert_one({})
        assert c.admin.command("fsync")["numFiles"] == 1
        with pytest.raises(OperationFailure):
            c.admin.command("fsync", lock=True)
        assert c.t.validate_collection("x", background=True)["valid"] is True
        with pytest.raises(OperationFailure) as e:
            c.t.validate_collection("x", background=True, full=True)
        assert e.value.code == 72
