"""Connections cannot be hoarded (issue 19, finding 3): idle and
unauthenticated sockets are closed, a message trickled byte by byte
(slowloris) is cut off, connections beyond --max-conns are closed at once,
and failed logins are slowed down without locking the rightful user out."""
import socket
import struct
import time

import bson
import pymongo
import pytest
from pymongo.errors import OperationFailure

from conftest import Server
from test_auth import add_user


def closed_within(sock, seconds):
    """True when the server closes sock (recv gives EOF) within seconds."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b""
    except (socket.timeout, TimeoutError):
        return False
    except ConnectionResetError:
        return True


def reply(sock):
    """Reads one whole reply message."""
    def more(data, n):
        chunk = sock.recv(n - len(data))
        if not chunk:  # closed: recv gives b"" for ever, so a loop would spin
            raise ConnectionResetError("closed by the server")
        return data + chunk

    head = b""
    while len(head) < 16:
        head = more(head, 16)
    length = struct.unpack("<i", head[:4])[0]
    body = b""
    while len(body) < length - 16:
        body = more(body, length - 16)
    return head + body


def op_msg(cmd, request_id=1):
    body = struct.pack("<I", 0) + b"\x00" + bson.encode(cmd)
    return struct.pack("<iiii", 16 + len(body), request_id, 0, 2013) + body


@pytest.fixture
def users(tmp_path):
    path = tmp_path / "users"
    assert add_user(path, "alice", "right pw").returncode == 0
    return path


def test_unauthenticated_connections_are_closed(tmp_path, users):
    s = Server(tmp_path / "data", "--auth", str(users), "--auth-timeout", "1")
    try:
        idle = socket.create_connection(("127.0.0.1", s.port))
        chatty = socket.create_connection(("127.0.0.1", s.port))
        chatty.sendall(op_msg({"hello": 1, "$db": "admin"}))  # talks, never logs in
        assert reply(chatty)
        assert closed_within(idle, 5) and closed_within(chatty, 5)
        # a client that logs in stays, past the timeout
        with pymongo.MongoClient("mongodb://alice:right%%20pw@127.0.0.1:%d/" % s.port,
                                 serverSelectionTimeoutMS=5000) as c:
            c.db.c.insert_one({"a": 1})
            time.sleep(1.5)
            assert c.db.c.count_documents({}) == 1
    finally:
        assert s.stop() == 0


def test_idle_timeout(tmp_path):
    s = Server(tmp_path / "data", "--idle-timeout", "1")
    try:
        sock = socket.create_connection(("127.0.0.1", s.port))
        sock.sendall(op_msg({"ping": 1, "$db": "admin"}))
        assert reply(sock)
        assert closed_within(sock, 5)
    finally:
        assert s.stop() == 0


def test_no_idle_timeout_by_default(server):
    sock = socket.create_connection(("127.0.0.1", server.port))
    assert not closed_within(sock, 1.5)  # mongod keeps idle connections too
    sock.sendall(op_msg({"ping": 1, "$db": "admin"}))
    assert len(reply(sock)) > 16


def test_slowloris_is_cut_off(tmp_path):
    s = Server(tmp_path / "data", "--message-timeout", "1")
    try:
        sock = socket.create_connection(("127.0.0.1", s.port))
        msg = op_msg({"ping": 1, "$db": "admin"})
        closed = False
        for b in msg:  # one byte every 0.3 s: the message would take ~15 s
            try:
                sock.sendall(bytes([b]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.3)
            if closed_within(sock, 0.01):
                closed = True
                break
        assert closed
        with pymongo.MongoClient(s.uri, serverSelectionTimeoutMS=5000) as c:  # others are served
            assert c.admin.command("ping")["ok"] == 1
    finally:
        assert s.stop() == 0


def served(port):
    """A connection the server answered a ping on, or None if it was closed."""
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        sock.settimeout(5)
        sock.sendall(op_msg({"ping": 1, "$db": "admin"}))
        reply(sock)
        return sock
    except (OSError, struct.error):
        sock.close()
        return None


def test_max_conns(tmp_path):
    s = Server(tmp_path / "data", "--max-conns", "2")
    try:
        held = []
        for _ in range(50):  # (Server() probed the port: that connection may still be counted a moment)
            sock = served(s.port)
            if sock:
                held.append(sock)
            if len(held) == 2:
                break
            time.sleep(0.1)
        assert len(held) == 2
        extra = socket.create_connection(("127.0.0.1", s.port))
        assert closed_within(extra, 5)
        for h in held:
            h.close()
        for _ in range(50):  # the two slots come free
            sock = served(s.port)
            if sock:
                sock.close()
                break
            time.sleep(0.1)
        else:
            pytest.fail("no connection served after the others closed")
    finally:
        assert s.stop() == 0


def test_failed_logins_are_slowed_not_locked_out(tmp_path, users):
    s = Server(tmp_path / "data", "--auth", str(users))
    try:
        start = time.monotonic()
        for _ in range(5):  # waits 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s
            with pymongo.MongoClient("mongodb://alice:wrong@127.0.0.1:%d/" % s.port,
                                     serverSelectionTimeoutMS=5000) as c:
                with pytest.raises(OperationFailure) as e:
                    c.admin.command("ping")
                assert e.value.code == 18
        assert time.monotonic() - start >= 3.0  # not 50 guesses in 2 s any more
        with pymongo.MongoClient("mongodb://alice:right%%20pw@127.0.0.1:%d/" % s.port,
                                 serverSelectionTimeoutMS=5000) as c:
            assert c.db.c.count_documents({}) == 0  # the rightful user gets in at once
    finally:
        assert s.stop() == 0


def test_bad_limit_values_are_usage_errors(tmp_path):
    import subprocess
    from conftest import TOOL
    for flag in ("--max-conns", "--auth-timeout", "--idle-timeout", "--message-timeout", "--max-incoming-mb"):
        out = subprocess.run([TOOL, "--dbpath", str(tmp_path / "d"), flag, "0"], capture_output=True, text=True,
                             timeout=30)
        assert out.returncode == 2 and "not a positive whole number" in out.stderr


def test_memory_of_incoming_messages_is_bounded(tmp_path):
    """The messages being received hold at most --max-incoming-mb together:
    one that would pass it closes its connection (each is bounded by the
    48 MB message limit, their sum by this); others are served."""
    s = Server(tmp_path / "data", "--max-incoming-mb", "1")
    try:
        with pymongo.MongoClient(s.uri, serverSelectionTimeoutMS=5000, retryWrites=False) as c:
            with pytest.raises(pymongo.errors.AutoReconnect):
                c.db.c.insert_one({"big": "x" * (2 << 20)})
            c.db.c.insert_one({"small": 1})
            assert c.db.c.count_documents({}) == 1
    finally:
        assert s.stop() == 0
    assert "would pass --max-incoming-mb" in s.proc.stderr.read()
