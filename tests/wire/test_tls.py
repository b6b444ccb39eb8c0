"""djongo-server over TLS (--tls-cert-key-file, --tls-ca-file, --tls-mode):
pymongo and libmongoc (djongo's driver, djongo-sql) connect with tls=true
and verify the server's certificate; the server verifies theirs; plain
clients are refused under requireTLS and served under allowTLS/preferTLS, as
mongod's net.tls.mode says:
https://www.mongodb.com/docs/manual/reference/configuration-options/#mongodb-setting-net.tls.mode

The certificates are made per run by conftest.py's `certs` fixture (the
openssl command, in a temporary directory): nothing is committed, nothing
leaves loopback."""
import os
import shutil
import subprocess

import pytest
from pymongo import MongoClient
from pymongo.errors import ServerSelectionTimeoutError

from conftest import TOOL, Server

@pytest.fixture
def tls_server(tmp_path, certs):
    servers = []

    def start(*extra):
        s = Server(tmp_path / ("data%d" % len(servers)), "--tls-cert-key-file", certs["server"], *extra)
        servers.append(s)
        return s
    yield start
    for s in servers:
        assert s.stop() == 0, "djongo-server did not stop cleanly on SIGTERM"


def _log(server):
    """The server's log lines so far (it must be stopped)."""
    assert server.stop() == 0
    return server.proc.stderr.read()


def _client(server, **kw):
    kw.setdefault("serverSelectionTimeoutMS", 3000)
    return MongoClient("127.0.0.1", server.port, directConnection=True, **kw)


def test_pymongo_crud_over_tls_with_a_client_certificate(tls_server, certs):
    s = tls_server("--tls-ca-file", certs["ca"])
    with _client(s, tls=True, tlsCAFile=certs["ca"], tlsCertificateKeyFile=certs["client"]) as c:
        coll = c.shop.items
        coll.insert_many([{"_id": i, "name": "item%d" % i, "n": i} for i in range(5)])
        assert coll.update_one({"_id": 2}, {"$set": {"n": 20}}).modified_count == 1
        assert coll.delete_one({"_id": 4}).deleted_count == 1
        assert [d["n"] for d in coll.find({}, sort=[("_id", 1)])] == [0, 1, 20, 3]
        # a reply larger than one TLS record (16 KiB) arrives whole
        coll.insert_one({"_id": "big", "blob": "x" * 200000})
        assert len(coll.find_one({"_id": "big"})["blob"]) == 200000
    log = _log(s)
    assert "(TLS: requireTLS)" in log


def test_a_client_that_does_not_trust_the_servers_ca_refuses_it(tls_server, certs):
    s = tls_server()
    with _client(s, tls=True, tlsCAFile=certs["other-ca"], serverSelectionTimeoutMS=1500) as c:
        with pytest.raises(ServerSelectionTimeoutError) as e:
            c.admin.command("ping")
    assert "certificate verify failed" in str(e.value)


def test_a_plain_client_is_refused_under_requireTLS(tls_server, certs):
    s = tls_server("--tls-mode", "requireTLS")
    with _client(s, serverSelectionTimeoutMS=1500) as c:
        with pytest.raises(ServerSelectionTimeoutError):
            c.admin.command("ping")
    assert "plain (non-TLS) connection refused: the server runs with --tls-mode requireTLS" in _log(s)


@pytest.mark.parametrize("mode", ["allowTLS", "preferTLS"])
def test_allow_and_prefer_serve_tls_and_plain_clients(tls_server, certs, mode):
    s = tls_server("--tls-mode", mode)
    with _client(s) as plain, _client(s, tls=True, tlsCAFile=certs["ca"]) as secure:
        plain.d.t.insert_one({"_id": 1, "by": "plain"})
        secure.d.t.insert_one({"_id": 2, "by": "tls"})
        assert sorted(d["by"] for d in plain.d.t.find()) == ["plain", "tls"]
        assert sorted(d["by"] for d in secure.d.t.find()) == ["plain", "tls"]
    assert "(TLS: %s)" % mode in _log(s)


def test_the_ca_file_makes_client_certificates_required_and_verified(tls_server, certs):
    s = tls_server("--tls-ca-file", certs["ca"])
    with _client(s, tls=True, tlsCAFile=certs["ca"], serverSelectionTimeoutMS=1500) as c:
        with pytest.raises(ServerSelectionTimeoutError):
            c.admin.command("ping")  # no certificate
    with _client(s, tls=True, tlsCAFile=certs["ca"], tlsCertificateKeyFile=certs["stranger"],
                 serverSelectionTimeoutMS=1500) as c:
        with pytest.raises(ServerSelectionTimeoutError):
            c.admin.command("ping")  # signed by a CA the server does not trust
    log = _log(s)
    assert "TLS handshake failed" in log
    assert "client certificate: unable to get local issuer certificate" in log


def test_without_certificates_allowed_a_presented_one_is_still_checked(tls_server, certs):
    s = tls_server("--tls-ca-file", certs["ca"], "--tls-allow-connections-without-certificates")
    with _client(s, tls=True, tlsCAFile=certs["ca"]) as c:
        assert c.admin.command("ping")["ok"] == 1
    with _client(s, tls=True, tlsCAFile=certs["ca"], tlsCertificateKeyFile=certs["stranger"],
                 serverSelectionTimeoutMS=1500) as c:
        with pytest.raises(ServerSelectionTimeoutError):
            c.admin.command("ping")


def _tls_uri(s, certs):
    return ("mongodb://127.0.0.1:%d/?directConnection=true&tls=true&tlsCAFile=%s&tlsCertificateKeyFile=%s"
            "&serverSelectionTimeoutMS=3000" % (s.port, certs["ca"], certs["client"]))


def test_djongo_driver_over_libmongoc_speaks_tls(tls_server, certs):
    from djongo import driver
    s = tls_server("--tls-ca-file", certs["ca"])
    with driver.connect(_tls_uri(s, certs), db="d", autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute('CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY, "name" text NULL)')
        cur.execute('INSERT INTO "t" ("id", "name") VALUES (%s, %s), (%s, %s)', [1, "a", 2, "b"])
        cur.execute('UPDATE "t" SET "name" = %s WHERE "t"."id" = %s', ["B", 2])
        cur.execute('SELECT "t"."id", "t"."name" FROM "t" ORDER BY "t"."id"')
        assert cur.fetchall() == [(1, "a"), (2, "B")]
    wrong = _tls_uri(s, certs).replace(certs["ca"], certs["other-ca"])
    with driver.connect(wrong, db="d", autocommit=True) as conn:
        with pytest.raises(driver.OperationalError):
            conn.cursor().execute('SELECT "t"."id" FROM "t"')


def test_djongo_sql_connects_with_tls_true(tls_server, certs):
    tool = os.path.join(os.path.dirname(TOOL), "djongo-sql")
    if not os.path.exists(tool):
        tool = shutil.which("djongo-sql")
    assert tool, "djongo-sql is installed beside djongo-server"
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)  # the sanitizer build's tools carry their own runtime
    s = tls_server()
    uri = _tls_uri(s, certs).replace("&tlsCertificateKeyFile=" + certs["client"], "")
    r = subprocess.run([tool, "--host", uri, "--db", "d", "--create",
                        'CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY)',
                        'INSERT INTO "t" ("id") VALUES (7)', 'SELECT "t"."id" FROM "t"'],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "7" in r.stdout.split()
    r = subprocess.run([tool, "--host", uri.replace(certs["ca"], certs["other-ca"]), "--db", "d",
                        'SELECT "t"."id" FROM "t"'], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1
    assert "TLS handshake failed" in r.stderr or "certificate" in r.stderr.lower(), r.stderr


def test_inconsistent_tls_options_stop_the_server_at_start(tmp_path, certs):
    r = subprocess.run([TOOL, "--dbpath", str(tmp_path / "a"), "--port", "0", "--tls-mode", "requireTLS"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "--tls-mode requireTLS needs the server's certificate" in r.stderr
    r = subprocess.run([TOOL, "--dbpath", str(tmp_path / "b"), "--port", "0", "--tls-mode", "sometimes"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "unknown --tls-mode 'sometimes'" in r.stderr
    r = subprocess.run([TOOL, "--dbpath", str(tmp_path / "c"), "--port", "0", "--tls-cert-key-file",
                        certs["ca"]], capture_output=True, text=True, timeout=30)  # a certificate without its key
    assert r.returncode == 1 and "cannot read the private key of --tls-cert-key-file" in r.stderr
