"""Hostile messages that must not take djongo-server down (issue 19's
hardening campaign): each is answered or its connection closed, and the
server goes on serving everybody else."""
import os
import socket
import struct
import subprocess
import sys

import pymongo

from conftest import TOOL, Server  # noqa: F401 -- Server for the --auth case
from test_auth import add_user


def nested(depth):
    """The BSON bytes of {"a": {"a": ... {} ...}} nested `depth` levels below the top:
    each level is its length, type 0x03, key "a", the level inside, and a terminator."""
    heads = b"".join(struct.pack("<i", 5 + 8 * (depth - k)) + b"\x03a\x00" for k in range(depth))
    return heads + b"\x05\x00\x00\x00\x00" + b"\x00" * depth


def ping_with(value_bytes):
    """An OP_MSG {ping: 1, $db: "admin", x: <value_bytes as a document>} built by hand
    (pymongo itself refuses to encode what it cannot recurse into)."""
    elems = b"\x10ping\x00" + struct.pack("<i", 1) + b"\x02$db\x00" + struct.pack("<i", 6) + b"admin\x00"
    elems += b"\x03x\x00" + value_bytes
    doc = struct.pack("<i", len(elems) + 5) + elems + b"\x00"
    body = struct.pack("<I", 0) + b"\x00" + doc
    return struct.pack("<iiii", 16 + len(body), 1, 0, 2013) + body


def exchange(port, data):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(data)
        head = s.recv(16)
    except ConnectionResetError:
        head = b""
    s.close()
    return head


def alive(srv, creds=""):
    c = pymongo.MongoClient("mongodb://%s127.0.0.1:%d/" % (creds, srv.port), serverSelectionTimeoutMS=5000)
    try:
        return c.admin.command("ping")["ok"] == 1
    finally:
        c.close()


def test_deep_nesting_is_refused_not_a_crash(server):
    # 10,000 and 100,000 levels: ~70 KB and ~700 KB, far past what a recursive
    # bson_validate survives on a thread's stack; both closed without a reply
    for depth in (10_000, 100_000):
        assert exchange(server.port, ping_with(nested(depth))) == b""
        assert alive(server)
    # within the limit the same message is an ordinary ping
    assert len(exchange(server.port, ping_with(nested(150)))) == 16


def test_deep_nesting_before_authentication(tmp_path):
    users = tmp_path / "users"
    assert add_user(users, "alice", "s3cret!pw").returncode == 0
    srv = Server(tmp_path / "data", "--auth", str(users))
    try:
        assert exchange(srv.port, ping_with(nested(10_000))) == b""
        assert alive(srv, "alice:s3cret%21pw@")
    finally:
        assert srv.stop() == 0


def raw_msg(doc):
    body = struct.pack("<I", 0) + b"\x00" + doc
    return struct.pack("<iiii", 16 + len(body), 1, 0, 2013) + body


def test_names_with_nul_are_refused(server):
    # {ping: 1, $db: "admin\0x"}: the database name used to be read as "admin"
    elems = b"\x10ping\x00" + struct.pack("<i", 1) + b"\x02$db\x00" + struct.pack("<i", 8) + b"admin\x00x\x00"
    assert exchange(server.port, raw_msg(struct.pack("<i", len(elems) + 5) + elems + b"\x00")) == b""
    c = pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=5000)
    try:
        db = c.get_database("t")
        db.get_collection("a").insert_one({"_id": 1})
        # a collection name "a\0b" used to be read as "a" (pymongo's Collection
        # refuses such names itself; a command document carries them as it is)
        for cmd in ({"find": "a\x00b"}, {"insert": "a\x00b", "documents": [{"_id": 2}]}):
            try:
                db.command(cmd)
                raise AssertionError("accepted: %r" % cmd)
            except pymongo.errors.OperationFailure as e:
                assert e.code == 73, e
        assert db.get_collection("a").count_documents({}) == 1
    finally:
        c.close()
    assert alive(server)


def test_no_shared_memory_left_behind(server):
    # libmongoc's counters file /dev/shm/mongoc-<pid> outlived processes that
    # end with os._exit (forked test workers); djongo turns the counters off
    prog = ("import os\nfrom djongo import driver\n"
            "c = driver.connect(%r, db='t', autocommit=True).cursor()\n"
            "c.execute('SELECT 1')\nprint(os.getpid(), flush=True)\nos._exit(0)\n" % server.uri)
    p = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert not os.path.exists("/dev/shm/mongoc-%s" % p.stdout.split()[0])
    assert "Falling back to malloc" not in p.stderr


def test_killed_tool_leaves_no_shared_memory(server):
    # the C tools turn libmongoc's counters off too (dj_transport_process_init):
    # djongo-sql talking to a server through libmongoc, then SIGKILLed
    sql = os.path.join(os.path.dirname(TOOL), "djongo-sql")
    p = subprocess.Popen([sql, "--host", server.uri, "--db", "t", "--create"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        p.stdin.write("SELECT 41 + 1;\n")
        p.stdin.flush()
        while "42" not in p.stdout.readline():  # connected, and answered
            assert p.poll() is None, p.stderr.read()
        assert os.path.isdir("/dev/shm") and not os.path.exists("/dev/shm/mongoc-%d" % p.pid)
    finally:
        p.kill()
        p.wait()
    assert not os.path.exists("/dev/shm/mongoc-%d" % p.pid)


def test_users_file_readable_by_others_is_refused(tmp_path):
    users = tmp_path / "users"
    assert add_user(users, "alice", "s3cret!pw").returncode == 0
    os.chmod(users, 0o644)
    p = subprocess.run([TOOL, "--dbpath", str(tmp_path / "d"), "--port", "0", "--auth", str(users)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "chmod 600" in p.stderr, p.stderr

