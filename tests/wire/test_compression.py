"""Wire compression (issue 15): OP_COMPRESSED (opcode 2012) in and out of
djongo-server, negotiated in the handshake's `compression` list and limited
by --networkMessageCompressors, as mongod does.
https://www.mongodb.com/docs/manual/reference/mongodb-wire-protocol/#op_compressed
https://github.com/mongodb/specifications/blob/master/source/compression/OP_COMPRESSED.md

pymongo (compressors=...) and libmongoc (djongo's transport, OPTIONS
compressors) are shown to really compress with serverStatus's
network.compression counters; raw sockets check the bytes and the
malformed messages, which close their connection and nothing else."""
import socket
import struct
import subprocess
import zlib

import bson
import pymongo
import pytest
import snappy
from backports import zstd

from conftest import TOOL, Server
from djongo import driver

PAYLOAD = [{"_id": i, "text": "the same words again and again " * 20} for i in range(50)]
IDS = {"noop": 0, "snappy": 1, "zlib": 2, "zstd": 3}
CODECS = {"zlib": zlib.compress, "snappy": snappy.compress, "zstd": zstd.compress, "noop": bytes}


def _counters(server, name):
    with pymongo.MongoClient(server.uri) as c:
        return c.admin.command("serverStatus")["network"]["compression"][name]


@pytest.mark.parametrize("name", ["zlib", "zstd", "snappy"])
def test_pymongo_talks_compressed(server, name):
    before = _counters(server, name)
    with pymongo.MongoClient(server.uri, compressors=name) as c:
        coll = c.t.get_collection("docs_" + name)
        coll.insert_many(PAYLOAD)
        assert list(coll.find().sort("_id", 1)) == PAYLOAD
    after = _counters(server, name)
    # the requests came compressed (the inserts: the repeated text shrinks
    # several times) and the replies went compressed (the find's batch)
    d_in = after["decompressor"]["bytesIn"] - before["decompressor"]["bytesIn"]
    d_out = after["decompressor"]["bytesOut"] - before["decompressor"]["bytesOut"]
    c_in = after["compressor"]["bytesIn"] - before["compressor"]["bytesIn"]
    c_out = after["compressor"]["bytesOut"] - before["compressor"]["bytesOut"]
    assert d_out > 30_000 and 0 < d_in * 4 < d_out, after
    assert c_in > 30_000 and 0 < c_out * 4 < c_in, after


@pytest.mark.parametrize("name", ["zlib", "zstd", "snappy"])
def test_libmongoc_talks_compressed(server, name):
    with pymongo.MongoClient(server.uri) as c:
        c.shop.items.insert_many(PAYLOAD)
    before = _counters(server, name)
    with driver.connect(server.uri, db="shop", autocommit=True, options={"compressors": name}) as conn:
        cur = conn.cursor()
        cur.execute('SELECT "items"."text" FROM "items" ORDER BY "items"."_id"')
        assert [r[0] for r in cur.fetchall()] == [d["text"] for d in PAYLOAD]
    after = _counters(server, name)
    assert after["decompressor"]["bytesIn"] > before["decompressor"]["bytesIn"], after
    c_in = after["compressor"]["bytesIn"] - before["compressor"]["bytesIn"]
    c_out = after["compressor"]["bytesOut"] - before["compressor"]["bytesOut"]
    assert c_in > 30_000 and 0 < c_out * 4 < c_in, after


# ---- raw messages ---------------------------------------------------------------

def op_msg(doc, request_id=1):
    body = struct.pack("<I", 0) + b"\x00" + bson.encode(doc)
    return struct.pack("<iiii", 16 + len(body), request_id, 0, 2013) + body


def compressed(message, name, claimed=None, compressor_id=None):
    """message (a whole OP_MSG) as OP_COMPRESSED; claimed: an uncompressedSize to lie with."""
    length, rid, to, opcode = struct.unpack("<iiii", message[:16])
    data = CODECS[name](message[16:])
    size = len(message) - 16 if claimed is None else claimed
    body = struct.pack("<iiB", opcode, size, IDS[name] if compressor_id is None else compressor_id) + data
    return struct.pack("<iiii", 16 + len(body), rid, to, 2012) + body


def wrap(body):
    return struct.pack("<iiii", 16 + len(body), 1, 0, 2012) + body


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            return out
        out += chunk
    return out


def exchange(port, data):
    """Sends data; the reply's (opcode, plain body), or None when the server closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        try:
            head = recv_exact(s, 16)
        except ConnectionResetError:
            return None
        if len(head) < 16:
            return None
        length, _, _, opcode = struct.unpack("<iiii", head)
        return opcode, recv_exact(s, length - 16)


def reply_doc(opcode, body):
    if opcode == 2012:
        orig, size, cid = struct.unpack("<iiB", body[:9])
        name = {v: k for k, v in IDS.items()}[cid]
        plain = {"zlib": zlib.decompress, "snappy": snappy.uncompress, "zstd": zstd.decompress,
                 "noop": bytes}[name](body[9:])
        assert orig == 2013 and size == len(plain)
        body = plain
    return bson.decode(body[5:])


def hello_compression(port, offered):
    opcode, body = exchange(port, op_msg({"hello": 1, "compression": offered, "$db": "admin"}))
    assert opcode == 2013
    return reply_doc(opcode, body).get("compression")


def test_hello_agrees_in_the_clients_order(server):
    assert hello_compression(server.port, ["zlib", "bogus", "snappy", 7]) == ["zlib", "snappy"]
    assert hello_compression(server.port, ["zstd", "zlib", "snappy"]) == ["zstd", "zlib", "snappy"]
    assert hello_compression(server.port, ["bogus"]) is None


def test_server_option_limits_the_compressors(tmp_path):
    srv = Server(tmp_path / "d", "--networkMessageCompressors", "zlib")
    try:
        assert hello_compression(srv.port, ["snappy", "zstd", "zlib"]) == ["zlib"]
        # a compressor the server has not enabled: closed
        assert exchange(srv.port, compressed(op_msg({"ping": 1, "$db": "admin"}), "snappy")) is None
        assert exchange(srv.port, compressed(op_msg({"ping": 1, "$db": "admin"}), "zlib"))[0] == 2012
        assert set(_counters(srv, "zlib")) == {"compressor", "decompressor"}
    finally:
        assert srv.stop() == 0
    srv = Server(tmp_path / "d2", "--networkMessageCompressors", "disabled")
    try:
        assert hello_compression(srv.port, ["snappy", "zstd", "zlib"]) is None
        assert exchange(srv.port, compressed(op_msg({"ping": 1, "$db": "admin"}), "zlib")) is None
    finally:
        assert srv.stop() == 0
    p = subprocess.run([TOOL, "--dbpath", str(tmp_path / "d3"), "--port", "0", "--networkMessageCompressors",
                        "zlib,lz4"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "lz4" in p.stderr, p.stderr


@pytest.mark.parametrize("name", ["zlib", "zstd", "snappy"])
def test_reply_uses_the_requests_compressor(server, name):
    opcode, body = exchange(server.port, compressed(op_msg({"ping": 1, "$db": "admin"}), name))
    assert opcode == 2012 and body[8] == IDS[name]
    assert reply_doc(opcode, body)["ok"] == 1
    # an uncompressed request gets an uncompressed reply
    assert exchange(server.port, op_msg({"ping": 1, "$db": "admin"}))[0] == 2013


def test_noop_only_when_listed(server, tmp_path):
    # mongod's default list leaves the noop compressor out
    ping = compressed(op_msg({"ping": 1, "$db": "admin"}), "noop")
    assert exchange(server.port, ping) is None
    srv = Server(tmp_path / "d", "--networkMessageCompressors", "noop,zlib")
    try:
        opcode, body = exchange(srv.port, ping)
        assert opcode == 2012 and body[8] == 0 and reply_doc(opcode, body)["ok"] == 1
        n = len(op_msg({"ping": 1, "$db": "admin"})) - 16
        for claimed in (n - 1, n + 1):  # noop's data is the message: its size must be the claim
            assert exchange(srv.port, compressed(op_msg({"ping": 1, "$db": "admin"}), "noop", claimed)) is None
    finally:
        assert srv.stop() == 0


def test_handshake_replies_are_never_compressed(server):
    for cmd in ({"hello": 1}, {"isMaster": 1}, {"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": b""}):
        opcode, body = exchange(server.port, compressed(op_msg(dict(cmd, **{"$db": "admin"})), "zlib"))
        assert opcode == 2013, cmd
        assert "ok" in reply_doc(opcode, body)


def test_compressed_legacy_query(server):
    q = b"\x00\x00\x00\x00admin.$cmd\x00" + struct.pack("<ii", 0, -1) + bson.encode({"isMaster": 1})
    msg = struct.pack("<iiii", 16 + len(q), 3, 0, 2004) + q
    opcode, body = exchange(server.port, compressed(msg, "snappy"))
    assert opcode == 1  # OP_REPLY, uncompressed: the handshake
    assert bson.decode(body[20:])["ismaster"] is True


def _alive(server):
    with pymongo.MongoClient(server.uri, compressors="zlib", serverSelectionTimeoutMS=5000) as c:
        return c.admin.command("ping")["ok"] == 1


def test_malformed_compressed_messages_close_the_connection(server):
    ping = op_msg({"ping": 1, "$db": "admin"})
    n = len(ping) - 16
    cases = [
        compressed(ping, "zlib", claimed=n - 1),        # decompresses to more than it claims
        compressed(ping, "zlib", claimed=n + 1),        # to less
        compressed(ping, "zstd", claimed=n + 100),
        compressed(ping, "snappy", claimed=n - 3),
        compressed(ping, "zlib", compressor_id=7),      # no such compressor
        compressed(ping, "zlib", claimed=-5),
        compressed(ping, "zlib", claimed=48_000_000),   # over maxMessageSizeBytes
        # a bomb: 60 MB of zeros in ~60 KB, claimed small, then claimed at its size
        wrap(struct.pack("<iiB", 2013, 1000, 2) + zlib.compress(b"\x00" * 60_000_000)),
        wrap(struct.pack("<iiB", 2013, 60_000_000, 2) + zlib.compress(b"\x00" * 60_000_000)),
        wrap(struct.pack("<iiB", 2013, n, 2) + b"not zlib at all"),
        wrap(struct.pack("<iiB", 2013, n, 1) + b"\xff\xff\xff\xff\x0fgarbage"),
        wrap(struct.pack("<iiB", 2012, n, 2) + zlib.compress(ping[16:])),  # wraps itself
        wrap(struct.pack("<iB", 2013, 2)),                                 # shorter than its own header
    ]
    for i, case in enumerate(cases):
        assert exchange(server.port, case) is None, i
        assert _alive(server), i
    # and the same message well formed is answered (compressed)
    assert exchange(server.port, compressed(ping, "zlib"))[0] == 2012
