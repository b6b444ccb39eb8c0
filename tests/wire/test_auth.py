"""djongo-server --auth: SCRAM-SHA-256 through pymongo (negotiated and
named), refusals before authentication, wrong passwords, and the users
file (keys only, owner-readable)."""
import base64
import hashlib
import hmac
import os
import socket
import stat
import struct
import subprocess

import bson
import pymongo
import pytest
from bson.binary import Binary
from pymongo.errors import OperationFailure

from conftest import TOOL, Server


def add_user(path, user, password):
    p = subprocess.run([TOOL, "--add-user", str(path), user], input=password + "\n", capture_output=True, text=True,
                       timeout=60)
    return p


@pytest.fixture
def auth_server(tmp_path):
    users = tmp_path / "users"
    assert add_user(users, "alice", "s3cret!pw").returncode == 0
    assert add_user(users, "bob", "other pw").returncode == 0
    s = Server(tmp_path / "data", "--auth", str(users))
    yield s
    assert s.stop() == 0


def client(s, creds="", opts=""):
    return pymongo.MongoClient("mongodb://%s127.0.0.1:%d/%s" % (creds, s.port, opts), serverSelectionTimeoutMS=5000)


def test_users_file_holds_keys_not_passwords(tmp_path):
    users = tmp_path / "users"
    assert add_user(users, "alice", "pw-one").returncode == 0
    assert add_user(users, "alice", "pw-two").returncode == 0  # replaces the line
    text = users.read_text()
    assert text.count("alice:") == 1 and "pw-two" not in text and "pw-one" not in text
    assert stat.S_IMODE(os.stat(users).st_mode) == 0o600
    assert add_user(users, "carol", "caf\u00e9").returncode == 1  # beyond printable ASCII: refused
    assert add_user(users, "x:y", "pw").returncode == 1


def test_scram_sha_256(auth_server):
    with client(auth_server) as anon:
        assert anon.admin.command("ping")["ok"] == 1  # the handshake needs no user
        with pytest.raises(OperationFailure) as e:
            anon.db.c.insert_one({"a": 1})
        assert e.value.code == 13  # Unauthorized
    with client(auth_server, "alice:s3cret!pw@") as c:  # mechanism negotiated (saslSupportedMechs)
        c.db.c.insert_one({"a": 1})
        assert c.db.c.count_documents({}) == 1
    with client(auth_server, "bob:other%20pw@", "?authMechanism=SCRAM-SHA-256&authSource=db") as c:
        assert c.db.c.find_one({}, {"_id": 0}) == {"a": 1}
        # the same connection authenticating again (as another user), the
        # exchange written out: RFC 5802's client side
        cnonce = base64.b64encode(os.urandom(18)).decode()
        first = "n=alice,r=" + cnonce
        r = c.admin.command("saslStart", 1, mechanism="SCRAM-SHA-256", payload=Binary(b"n,," + first.encode()),
                            options={"skipEmptyExchange": True})
        server_first = bytes(r["payload"]).decode()
        fields = dict(kv.split("=", 1) for kv in server_first.split(","))
        salted = hashlib.pbkdf2_hmac("sha256", b"s3cret!pw", base64.b64decode(fields["s"]), int(fields["i"]))
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        without_proof = "c=biws,r=" + fields["r"]
        auth_msg = ",".join([first, server_first, without_proof]).encode()
        sig = hmac.new(hashlib.sha256(client_key).digest(), auth_msg, "sha256").digest()
        proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, sig))).decode()
        r = c.admin.command("saslContinue", 1, conversationId=r["conversationId"],
                            payload=Binary((without_proof + ",p=" + proof).encode()))
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        assert r["done"] and bytes(r["payload"]).decode() == "v=" + base64.b64encode(
            hmac.new(server_key, auth_msg, "sha256").digest()).decode()  # the server proves itself too


def test_wrong_password_and_mechanisms(auth_server):
    with client(auth_server, "alice:wrong@", "?authMechanism=SCRAM-SHA-256") as c:
        with pytest.raises(OperationFailure) as e:
            c.db.c.find_one()
        assert e.value.code == 18  # AuthenticationFailed
    with client(auth_server, "nobody:x@", "?authMechanism=SCRAM-SHA-256") as c:
        with pytest.raises(OperationFailure) as e:
            c.db.c.find_one()
        assert e.value.code == 18  # the same answer as a wrong password
    with client(auth_server, "alice:s3cret!pw@", "?authMechanism=SCRAM-SHA-1") as c:
        with pytest.raises(OperationFailure):
            c.db.c.find_one()


def test_without_auth_sasl_is_refused(server):
    with client(server, "alice:pw@", "?authMechanism=SCRAM-SHA-256") as c:
        with pytest.raises(OperationFailure):
            c.db.c.find_one()


def test_malformed_conversations_fail_cleanly(auth_server):
    with client(auth_server) as c:
        for payload in (b"", b"garbage", b"n,,n=alice", b"n,,n=alice,r=short", b"p=tls,,n=alice,r=0123456789ab",
                        b"n,,n=al=ZZice,r=0123456789abcdef", b"n,,n=alice,r=0123456789abcdef\x00x", b"x" * 70000):
            with pytest.raises(OperationFailure) as e:
                c.admin.command("saslStart", 1, mechanism="SCRAM-SHA-256", payload=Binary(payload))
            assert e.value.code == 18, payload
        with pytest.raises(OperationFailure):  # no conversation
            c.admin.command("saslContinue", 1, conversationId=1, payload=Binary(b"c=biws,r=x,p=AAAA"))
        r = c.admin.command("saslStart", 1, mechanism="SCRAM-SHA-256", payload=Binary(b"n,,n=alice,r=0123456789abcdef"))
        assert r["done"] is False and bytes(r["payload"]).startswith(b"r=0123456789abcdef")
        for bad in (b"c=biws,r=0123456789abcdef,p=AAAA", b"c=biws,r=" + bytes(r["payload"])[2:34] + b",p=!!!!",
                    b"c=eSws,r=x,p=AAAA"):
            with pytest.raises(OperationFailure) as e:
                c.admin.command("saslContinue", 1, conversationId=1, payload=Binary(bad))
            assert e.value.code == 18
        assert c.admin.command("ping")["ok"] == 1  # the server is still there


def test_cursors_belong_to_the_user_who_opened_them(auth_server):
    """getMore and killCursors of another user's cursor: Unauthorized (13),
    as mongod (https://www.mongodb.com/docs/manual/reference/command/getMore/);
    ids are random, so they cannot be guessed from one's own."""
    with client(auth_server, "alice:s3cret!pw@") as a, client(auth_server, "bob:other%20pw@") as b:
        a.db.c.insert_many([{"i": i} for i in range(10)])
        first = a.db.command("find", "c", batchSize=2)["cursor"]["id"]
        second = a.db.command("find", "c", batchSize=2)["cursor"]["id"]
        assert first > 0 and second > 0 and abs(first - second) > 1 << 20  # not a counter
        with pytest.raises(OperationFailure) as e:
            b.db.command("getMore", first, collection="c")
        assert e.value.code == 13 and "not created by the authenticated user" in str(e.value)
        with pytest.raises(OperationFailure) as e:
            b.db.command("killCursors", "c", cursors=[first])
        assert e.value.code == 13
        r = a.db.command("getMore", first, collection="c", batchSize=3)  # still alive, still alice's
        assert [d["i"] for d in r["cursor"]["nextBatch"]] == [2, 3, 4]
        assert a.db.command("killCursors", "c", cursors=[first, second])["cursorsKilled"] == [first, second]


def test_without_auth_there_are_no_users(server):
    """Without --auth no user exists: usersInfo lists none and updateUser /
    dropUser find none (UserNotFound), as on a mongod that has no users;
    createUser is refused (users live in the users file --auth names)."""
    with pymongo.MongoClient(server.uri) as c:
        assert c.admin.command("usersInfo", 1)["users"] == []
        assert c.t.command("usersInfo", "nobody")["users"] == []
        with pytest.raises(OperationFailure) as e:
            c.admin.command("dropUser", "nobody")
        assert e.value.code == 11
        with pytest.raises(OperationFailure) as e:
            c.admin.command("updateUser", "nobody", pwd="x")
        assert e.value.code == 11
        with pytest.raises(OperationFailure) as e:
            c.admin.command("createUser", "somebody", pwd="x", roles=[])
        assert e.value.code == 2


def test_user_management_commands(auth_server, tmp_path):
    """createUser, updateUser, dropUser and usersInfo work on the users file
    (SCRAM keys; a change is written and taken at once), as a driver and
    mongosh call them. https://www.mongodb.com/docs/manual/reference/command/createUser/"""
    users_file = tmp_path / "users"
    with client(auth_server, "alice:s3cret!pw@") as a:
        a.admin.command("createUser", "carol", pwd="first pw", roles=[])
        assert "carol:" in users_file.read_text() and "first pw" not in users_file.read_text()
        with pytest.raises(OperationFailure) as e:
            a.admin.command("createUser", "carol", pwd="again", roles=[])
        assert e.value.code == 51003
        names = sorted(u["user"] for u in a.admin.command("usersInfo", 1)["users"])
        assert names == ["alice", "bob", "carol"]
        info = a.admin.command("usersInfo", "carol")["users"]
        assert info[0]["_id"] == "admin.carol" and info[0]["mechanisms"] == ["SCRAM-SHA-256"]
        with client(auth_server, "carol:first%20pw@") as c:
            assert c.admin.command("ping")["ok"] == 1
        a.admin.command("updateUser", "carol", pwd="second pw")
        with client(auth_server, "carol:first%20pw@") as c:
            with pytest.raises(OperationFailure):
                c.admin.command("ping")
        with client(auth_server, "carol:second%20pw@") as c:
            assert c.admin.command("ping")["ok"] == 1
        a.admin.command("dropUser", "carol")
        assert "carol:" not in users_file.read_text()
        assert a.admin.command("usersInfo", "carol")["users"] == []
        with pytest.raises(OperationFailure) as e:
            a.admin.command("dropUser", "carol")
        assert e.value.code == 11
    with client(auth_server) as anon:
        with pytest.raises(OperationFailure) as e:
            anon.admin.command("createUser", "mallory", pwd="x", roles=[])
        assert e.value.code == 13  # only an authenticated user manages users


def test_cluster_time_is_signed_under_auth(auth_server, server):
    """With --auth, $clusterTime carries an HMAC of the time under the
    server's key, and one a client forges is refused (TimeProofMismatch),
    so no client can move the clock; without --auth it is unsigned, as an
    unauthenticated mongod's."""
    from bson import Int64, Timestamp
    with client(auth_server, "alice:s3cret!pw@") as a:
        ct = a.admin.command("ping")["$clusterTime"]
        assert bytes(ct["signature"]["hash"]) != bytes(20) and ct["signature"]["keyId"] != 0
        a.db.c.insert_one({"x": 1})  # pymongo sends the signed time back: accepted
        forged = {"clusterTime": Timestamp(ct["clusterTime"].time + 100000, 1),
                  "signature": {"hash": Binary(bytes(20)), "keyId": Int64(ct["signature"]["keyId"])}}
    # (pymongo puts its own $clusterTime into what it sends: the forged one goes over a socket of our own)
    sock = socket.create_connection(("127.0.0.1", auth_server.port))
    for ct_sent, code in ((forged, 204), (ct, None)):
        body = struct.pack("<I", 0) + b"\x00" + bson.encode({"ping": 1, "$db": "admin", "$clusterTime": ct_sent})
        sock.sendall(struct.pack("<iiii", 16 + len(body), 1, 0, 2013) + body)
        head = sock.recv(16, socket.MSG_WAITALL)
        rest = sock.recv(struct.unpack("<i", head[:4])[0] - 16, socket.MSG_WAITALL)
        assert bson.decode(rest[5:]).get("code") == code  # the forged one refused, the signed one taken
    with pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=5000) as c:
        ct = c.admin.command("ping")["$clusterTime"]
        assert bytes(ct["signature"]["hash"]) == bytes(20) and ct["signature"]["keyId"] == 0
