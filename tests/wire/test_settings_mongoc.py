"""Connection settings reach libmongoc (issue 20): DATABASES' OPTIONS/CLIENT
become MongoDB connection-string options set through libmongoc's URI API
(djongo.base.connection_settings -> djongo.driver.connect(options=...) ->
src/transport/uri.c), and they are seen at the other end, djongo-server:
the application name in the handshake (the failCommand fail point's
appName filter matches only connections whose hello said it), the write
concern on writes (w: 3 is more than a one-member set can acknowledge),
TLS files against the TLS server, readPreference secondary on a direct
connection."""
import os
import subprocess
import sys

import pytest
from pymongo import MongoClient

from conftest import Server
from djongo import driver
from djongo.base import connection_settings


@pytest.fixture
def test_server(tmp_path):
    s = Server(tmp_path / "data", "--setParameter", "enableTestCommands=1")
    yield s
    assert s.stop() == 0


def _connect(settings, db="shop"):
    """A connection made as the Django backend makes it."""
    host, options = connection_settings(settings)
    return driver.connect(host, db=db, autocommit=True, options=options)


def _fail_finds_of(server, app_name):
    with MongoClient(server.uri) as c:
        c.admin.command({"configureFailPoint": "failCommand", "mode": "alwaysOn",
                         "data": {"failCommands": ["find"], "errorCode": 2, "appName": app_name}})


def _seed(server):
    with MongoClient(server.uri) as c:
        c.shop.items.insert_many([{"_id": i, "n": i} for i in range(3)])


SELECT = 'SELECT "items"."n" FROM "items" ORDER BY "items"."n"'


def test_appname_reaches_the_servers_handshake(test_server):
    _seed(test_server)
    _fail_finds_of(test_server, "shopfront")
    settings = {"HOST": test_server.uri, "OPTIONS": {"appname": "shopfront"}}
    with _connect(settings) as conn:
        with pytest.raises(driver.ProgrammingError) as e:
            conn.cursor().execute(SELECT)
    assert "failCommand" in str(e.value) or e.value.code == 2
    # another application name: the fail point does not match it
    with _connect({"HOST": test_server.uri, "CLIENT": {"appname": "backoffice"}}) as conn:
        cur = conn.cursor()
        cur.execute(SELECT)
        assert cur.fetchall() == [(0,), (1,), (2,)]


def test_default_appname_is_djongo_and_values_are_not_spliced_into_the_uri(test_server):
    _seed(test_server)
    _fail_finds_of(test_server, "djongo")
    with _connect({"HOST": test_server.uri}) as conn:
        with pytest.raises(driver.ProgrammingError):
            conn.cursor().execute(SELECT)
    # a value holding URI syntax stays one value: the application name is
    # all of it, and no w=0 option appears
    _fail_finds_of(test_server, "a&w=0/b")
    with _connect({"HOST": test_server.uri, "OPTIONS": {"appname": "a&w=0/b"}}) as conn:
        with pytest.raises(driver.ProgrammingError):
            conn.cursor().execute(SELECT)


def test_write_concern_reaches_the_server(server):
    with _connect({"HOST": server.uri, "OPTIONS": {"w": 3, "wTimeoutMS": 100}}) as conn:
        cur = conn.cursor()
        with pytest.raises(driver.OperationalError) as e:
            cur.execute('CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY)')
        assert e.value.code == 100  # UnsatisfiableWriteConcern: one member cannot acknowledge w: 3
        # (the write itself was applied, as MongoDB's writeConcernError says)
    with _connect({"HOST": server.uri, "OPTIONS": {"w": "majority", "journal": True, "wTimeoutMS": 1000}}) as conn:
        cur = conn.cursor()
        cur.execute('CREATE TABLE "u" ("id" integer NOT NULL PRIMARY KEY)')
        cur.execute('INSERT INTO "u" ("id") VALUES (1)')
        cur.execute('SELECT "u"."id" FROM "u"')
        assert cur.fetchall() == [(1,)]


def test_read_preference_secondary_on_a_direct_connection_still_reads(server):
    _seed(server)
    options = {"directConnection": True, "readPreference": "secondary", "maxStalenessSeconds": 90,
               "readPreferenceTags": [{"dc": "ny"}, {}], "readConcernLevel": "local", "retryReads": True,
               "retryWrites": True, "compressors": ["zstd", "zlib", "snappy"], "serverSelectionTimeoutMS": 5000,
               "connectTimeoutMS": 5000, "socketTimeoutMS": 30000, "maxPoolSize": 10, "localThresholdMS": 15}
    with _connect({"HOST": server.uri, "OPTIONS": options}) as conn:
        cur = conn.cursor()
        cur.execute(SELECT)
        assert cur.fetchall() == [(0,), (1,), (2,)]


def test_tls_options_from_settings_connect_to_the_tls_server(tmp_path, certs):
    s = Server(tmp_path / "data", "--tls-cert-key-file", certs["server"], "--tls-ca-file", certs["ca"])
    try:
        good = {"HOST": "127.0.0.1", "PORT": s.port,
                "OPTIONS": {"tls": True, "tlsCAFile": certs["ca"], "tlsCertificateKeyFile": certs["client"],
                            "directConnection": True, "serverSelectionTimeoutMS": 3000}}
        with _connect(good) as conn:
            cur = conn.cursor()
            cur.execute('CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY)')
            cur.execute('INSERT INTO "t" ("id") VALUES (5)')
            cur.execute('SELECT "t"."id" FROM "t"')
            assert cur.fetchall() == [(5,)]
        untrusted = dict(good, OPTIONS=dict(good["OPTIONS"], tlsCAFile=certs["other-ca"]))
        with _connect(untrusted) as conn:
            with pytest.raises(driver.OperationalError):
                conn.cursor().execute('SELECT "t"."id" FROM "t"')
        # development only: the server's certificate is not checked
        allowed = dict(untrusted, OPTIONS=dict(untrusted["OPTIONS"], tlsAllowInvalidCertificates=True))
        with _connect(allowed) as conn:
            cur = conn.cursor()
            cur.execute('SELECT "t"."id" FROM "t"')
            assert cur.fetchall() == [(5,)]
    finally:
        assert s.stop() == 0


def test_a_bad_option_is_refused_by_name_before_connecting():
    with pytest.raises(driver.OperationalError) as e:
        driver.connect("mongodb://127.0.0.1:1/", db="d", options={"readPreference": "secundary"})
    assert "readPreference must be primary, primaryPreferred, secondary, secondaryPreferred or nearest" in str(e.value)
    with pytest.raises(driver.OperationalError) as e:
        driver.connect("127.0.0.1", db="d", options={"port": 70000})
    assert "must be a number from 1 to 65535" in str(e.value)


DJANGO = r'''
import os, sys
from django.conf import settings
settings.configure(INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
                   DATABASES={"default": {"ENGINE": "djongo", "NAME": "site", "HOST": os.environ["URI"],
                                          "OPTIONS": {"appname": "django-site", "w": "majority", "retryWrites": True,
                                                      "readPreference": "secondaryPreferred",
                                                      "readConcernLevel": "majority", "directConnection": True}}},
                   DEFAULT_AUTO_FIELD="django.db.models.AutoField")
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth.models import Group
Group.objects.create(name="editors")
assert list(Group.objects.values_list("name", flat=True)) == ["editors"]
print("django over options: ok")
'''


def test_django_settings_options_end_to_end(test_server):
    env = dict(os.environ, URI=test_server.uri)
    p = subprocess.run([sys.executable, "-c", DJANGO], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "django over options: ok" in p.stdout
    # its connections said the application name: the fail point picks them out
    _fail_finds_of(test_server, "django-site")
    p = subprocess.run([sys.executable, "-c", DJANGO.replace('call_command("migrate", verbosity=0)', "")],
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode != 0 and "failCommand" in p.stderr, p.stderr


def test_retryable_writes_never_reuse_a_transaction_number(server):
    # the transport numbers its retryable writes on one session; libmongoc
    # numbers findAndModify itself: on the same session that repeated the
    # number of the update before it, and the server answered the
    # findAndModify with the update's recorded reply (djongo.cache's incr
    # after set_many found no key)
    with driver.connect(server.uri, db="d", autocommit=True) as c:
        up = {"update": "t", "updates": [{"q": {"_id": 1}, "u": {"$set": {"v": 1}}, "upsert": True}]}
        assert c.command(up)["n"] == 1
        fam = c.command({"findAndModify": "t", "query": {"_id": 1}, "update": {"$inc": {"v": 5}}, "new": True})
        assert fam["value"] == {"_id": 1, "v": 6}
        assert c.command({"insert": "t", "documents": [{"_id": 2}]})["n"] == 1
        fam = c.command({"findAndModify": "t", "query": {"_id": 2}, "remove": True})
        assert fam["value"] == {"_id": 2}
        assert c.command({"count": "t"})["n"] == 1


def test_retryable_writes_of_successive_connections_are_all_applied(server):
    # A closed connection's client goes back to the process's pool and the
    # next connection pops it. Its retryable writes once took their session
    # from libmongoc's session pool and numbered from 1 again: the same lsid
    # and txnNumber as the first connection's insert, so the server
    # answered with that insert's stored reply and applied nothing -- n: 1
    # acknowledged, the row never written. Then findAndModify on an
    # implicit session (libmongoc's own numbering) met the same repeat.
    for i in range(4):
        with driver.connect(server.uri, db="d", autocommit=True) as c:
            assert c.command({"insert": "t", "documents": [{"_id": i}]})["n"] == 1
            fam = c.command({"findAndModify": "n", "query": {"_id": 0}, "update": {"$inc": {"v": 1}},
                             "upsert": True, "new": True})
            assert fam["value"] == {"_id": 0, "v": i + 1}
    with MongoClient(server.uri) as m:
        assert sorted(d["_id"] for d in m.d.t.find()) == [0, 1, 2, 3]


def test_a_new_process_first_write_after_an_implicit_findandmodify_is_applied(server):
    # A process whose tables already exist: its first create reserves ids by
    # findAndModify (libmongoc numbers it on an implicit session: txnNumber
    # 1), then inserts. The insert's session came out of libmongoc's pool
    # as that same lsid and was numbered 1 again; the server answered with
    # the findAndModify's stored reply and the row was never written (the
    # driver said rowcount -1, Django said the object had pk 2).
    with driver.connect(server.uri, db="d", autocommit=True) as c:
        c.cursor().execute('CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" text NOT NULL)')
    script = (
        "import sys\n"
        "from djongo import driver\n"
        "c = driver.connect(sys.argv[1], db='d', autocommit=True)\n"
        "cur = c.cursor()\n"
        "cur.execute('INSERT INTO \"t\" (\"name\") VALUES (%s)', ['sql'])\n"
        "assert cur.rowcount == 1, cur.rowcount\n"
        "fam = c.command({'findAndModify': 'n', 'query': {'_id': 0}, 'update': {'$inc': {'v': 1}},"
        " 'upsert': True, 'new': True})\n"
        "assert c.command({'insert': 'u', 'documents': [{'_id': fam['value']['v']}]})['n'] == 1\n"
        "c.close()\n")
    for _ in range(3):
        p = subprocess.run([sys.executable, "-c", script, server.uri], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
    with MongoClient(server.uri) as m:
        assert [d["name"] for d in m.d.t.find()] == ["sql"] * 3
        assert sorted(d["_id"] for d in m.d.u.find()) == [1, 2, 3]


def test_a_retryable_write_numbered_below_the_sessions_newest_is_too_old(server):
    from pymongo.errors import OperationFailure

    with MongoClient(server.uri) as m, m.start_session() as s:
        # (pymongo puts the session's lsid on each command; the numbers are ours)
        ok = m.d.command({"insert": "old", "documents": [{"_id": 1}], "txnNumber": 5}, session=s)
        assert ok["n"] == 1
        # the same number again: the first reply, not a second insert
        again = m.d.command({"insert": "old", "documents": [{"_id": 2}], "txnNumber": 5}, session=s)
        assert again["n"] == 1
        with pytest.raises(OperationFailure) as e:
            m.d.command({"insert": "old", "documents": [{"_id": 3}], "txnNumber": 4}, session=s)
        assert e.value.code == 225
        assert [d["_id"] for d in m.d.old.find()] == [1]
