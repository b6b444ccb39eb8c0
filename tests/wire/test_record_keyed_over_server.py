"""A table's INTEGER PRIMARY KEY over the wire: djongo's compiler asks
createIndexes for djongoRecordKeyed (src/compile/ddl.c; the engine then keys
the table's records by it, src/engine/storage/ridkey.c), and the libmongoc
transport sends the field only to a server whose hello announces
"recordKeyed" (djongo-server does). A MongoDB server refuses an index
option it does not know; it gets the plain unique index the spec stands
for (and no spec for the _id index, which djongo asks record-keyed too for
an AUTOINCREMENT key: every collection has one). The server seen without its announcement is djongo-server behind a
proxy that takes the "djongo" document out of its hello replies: what the
server's profiler (level 2) then shows of the createIndexes is the spec
without the field, and the table behaves as a plain unique index's table
(rows in insertion order, a duplicate refused)."""
import socket
import struct
import threading

import bson
import pymongo
import pytest

from djongo import driver
from test_compression import recv_exact

OP_REPLY, OP_MSG = 1, 2013
TABLE = 'CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "v" text NOT NULL)'


def _without_djongo(msg):
    """msg (a whole server message) with the "djongo" field taken out of a
    hello reply's document (OP_REPLY's first document, OP_MSG's body
    section); any other message as it is."""
    length, req, to, op = struct.unpack("<iiii", msg[:16])
    if op == OP_REPLY:
        head, at = msg[16:36], 36
    elif op == OP_MSG and msg[20] == 0 and not struct.unpack("<I", msg[16:20])[0] & 1:  # (no checksum)
        head, at = msg[16:21], 21
    else:
        return msg
    dlen = struct.unpack("<i", msg[at:at + 4])[0]
    doc = bson.decode(msg[at:at + dlen])
    if "djongo" not in doc:
        return msg
    del doc["djongo"]
    body = head + bson.encode(doc) + msg[at + dlen:]
    return struct.pack("<iiii", 16 + len(body), req, to, op) + body


class HidingProxy:
    """127.0.0.1:port -> the server, its hello replies without "djongo"."""

    def __init__(self, port):
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.uri = "mongodb://127.0.0.1:%d/" % self.port
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:  # (the server stopped: a monitor's reconnection)
                client.close()
                continue
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    @staticmethod
    def _pipe(src, dst, rewrite):
        try:
            while True:
                head = recv_exact(src, 16)
                msg = head + recv_exact(src, struct.unpack("<i", head[:4])[0] - 16) if len(head) == 16 else b""
                if len(msg) < 16 or len(msg) != struct.unpack("<i", msg[:4])[0]:
                    break  # (closed)
                dst.sendall(_without_djongo(msg) if rewrite else msg)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.listener.close()


@pytest.fixture
def hidden(server):
    p = HidingProxy(server.port)
    yield p
    p.close()


def _create_and_fill(uri):
    """The table made and three rows inserted in the order 3, 1, 2 through
    djongo over uri; the specs of the createIndexes the server ran, and the
    ids in the collection's natural order."""
    with pymongo.MongoClient(uri, directConnection=True) as mc:
        mc.d.command("profile", 2)
        c = driver.connect(uri, db="d", autocommit=True, tables=driver.TABLES_STRICT)
        cur = c.cursor()
        cur.execute(TABLE)
        for i in (3, 1, 2):
            cur.execute('INSERT INTO "t" ("id", "v") VALUES (%s, %s)', [i, "v%d" % i])
        with pytest.raises(driver.IntegrityError):
            cur.execute('INSERT INTO "t" ("id", "v") VALUES (%s, %s)', [1, "again"])
        c.close()
        mc.d.command("profile", 0)
        specs = [s for d in mc.d.system.profile.find({"op": "command", "command.createIndexes": "t"})
                 for s in d["command"]["indexes"]]
        docs = list(mc.d.t.find({}, {"id": 1}))
        assert all(d["_id"] == d["id"] for d in docs), docs  # each row's key is its _id too
        return specs, [d["id"] for d in docs]


def test_hello_hidden_by_the_proxy(server, hidden):
    # (directConnection: pymongo would otherwise follow the hello's hosts,
    # the server's own address; libmongoc takes one host as the server)
    with pymongo.MongoClient(hidden.uri, directConnection=True) as mc:
        assert "djongo" not in mc.admin.command("hello")
    with pymongo.MongoClient(server.uri) as mc:
        assert mc.admin.command("hello")["djongo"]["recordKeyed"] is True


def test_sent_to_a_server_that_announces_it(server):
    specs, ids = _create_and_fill(server.uri)
    assert [s["djongoRecordKeyed"] for s in specs if s["name"] == "t_id_pk"] == [True], specs
    # the _id index asked record-keyed too: the rows' _ids are their keys
    assert [s["djongoRecordKeyed"] for s in specs if s["name"] == "_id_"] == [True], specs
    assert ids == [1, 2, 3]  # the records keyed by id: its order


def test_taken_out_for_a_server_that_does_not(server, hidden):
    specs, ids = _create_and_fill(hidden.uri)
    pk = [s for s in specs if s["name"] == "t_id_pk"]
    assert pk and all("djongoRecordKeyed" not in s for s in specs), specs
    assert [s["name"] for s in specs] == ["t_id_pk"]  # (the _id index's spec left out: it is there)
    assert pk[0]["unique"] is True and pk[0]["key"] == {"id": 1}
    assert ids == [3, 1, 2]  # a plain unique index: insertion order
