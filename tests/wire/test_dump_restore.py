"""djongo-engine dump / restore (src/tools/dump.c) in mongodump's layout --
https://www.mongodb.com/docs/database-tools/mongodump/#output -- one
.bson file of concatenated documents and one .metadata.json (options,
indexes) per collection, a view as its metadata alone: read back by pymongo's
bson module as mongodump's files are, and round-tripped exactly (every BSON
type, indexes, options, views) between data directories and djongo-server
(--host). The example site moved that way from its data directory into a
fresh djongo-server reads the same (Django's dumpdata of both is equal)."""
import datetime
import os
import pathlib
import subprocess
import sys
import uuid
from decimal import Decimal

import bson
from bson import Binary, Decimal128, Int64, ObjectId, Regex
from bson.json_util import loads
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient

from conftest import TOOL, Server

ROOT = pathlib.Path(__file__).resolve().parents[2]


def engine_tool():
    return os.path.join(os.path.dirname(TOOL), "djongo-engine")  # installed beside djongo-server


def _run(argv, env, ok=True, cwd=None):
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    if ok:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


def engine(*args, ok=True):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)  # the sanitizer build's tools carry their own runtime
    if "DJONGO_SERVER_ASAN_OPTIONS" in env:
        env["ASAN_OPTIONS"] = env["DJONGO_SERVER_ASAN_OPTIONS"]
    return _run([engine_tool(), *args], env, ok)


def _fill(client):
    db = client.shop
    docs = [{"_id": i, "n": Int64(i) if i % 2 else i, "price": Decimal128(Decimal("%d.25" % i)),
             "at": datetime.datetime(2024, 1, 1 + i % 28, tzinfo=datetime.timezone.utc).replace(tzinfo=None),
             "tags": ["t%d" % (i % 3), {"deep": [i, None, True]}], "oid": ObjectId(), "raw": Binary(b"\x00\x01" * 3),
             "u": Binary(uuid.UUID(int=i).bytes, 4), "re": Regex("^a", "i"), "f": i / 3}
            for i in range(2500)]  # several cursor batches and insert batches
    db.items.insert_many(docs)
    db.items.create_index([("n", 1)], unique=True, name="n_1")
    db.items.create_index([("tags.deep", -1), ("n", 1)], name="deep", partialFilterExpression={"n": {"$gt": 5}})
    db.create_collection("capped", capped=True, size=65536)
    db.capped.insert_many([{"_id": i} for i in range(3)])
    db.create_collection("checked", validator={"n": {"$type": "int"}})
    db.checked.insert_one({"n": 1})
    db.create_collection("odd/name%")  # a file name needs escaping
    db["odd/name%"].insert_one({"_id": "x"})
    db.create_collection("cheap", viewOn="items", pipeline=[{"$match": {"n": {"$lt": 3}}}])
    client.other.things.insert_one({"_id": 1, "s": "other database"})


def _snapshot(client):
    """Every database's collections: options, indexes, documents (raw BSON:
    every type exactly) in natural order; views' results."""
    out = {}
    for name in sorted(client.list_database_names()):
        if name in ("admin", "local", "config"):
            continue
        db = client[name]
        for info in sorted(db.list_collections(), key=lambda i: i["name"]):
            coll = db.get_collection(info["name"]).with_options(
                codec_options=db.codec_options.with_options(document_class=RawBSONDocument))
            key = "%s.%s" % (name, info["name"])
            out[key] = {"type": info["type"], "options": info.get("options"),
                        "docs": [d.raw for d in coll.find()]}
            if info["type"] == "collection":
                out[key]["indexes"] = sorted((ix["name"], sorted(ix.items())) for ix in
                                             db.get_collection(info["name"]).list_indexes())
    return out


def test_dump_layout_and_round_trip_between_data_directories(tmp_path):
    src = Server(tmp_path / "src")
    with MongoClient(src.uri) as c:
        _fill(c)
        before = _snapshot(c)
    assert src.stop() == 0
    out = tmp_path / "dump"
    r = engine("--dbpath", tmp_path / "src", "dump", out)
    assert "dumped" in r.stdout
    # mongodump's layout, as pymongo's bson module reads mongodump's files
    items = bson.decode_all((out / "shop" / "items.bson").read_bytes())
    assert [d["_id"] for d in items] == list(range(2500))
    meta = loads((out / "shop" / "items.metadata.json").read_text())
    assert meta["collectionName"] == "items" and meta["type"] == "collection" and meta["options"] == {}
    assert [ix["name"] for ix in meta["indexes"]] == ["_id_", "n_1", "deep"]
    assert not (out / "shop" / "cheap.bson").exists()
    view = loads((out / "shop" / "cheap.metadata.json").read_text())
    assert view["type"] == "view" and view["options"]["viewOn"] == "items"
    assert (out / "shop" / "odd%2Fname%25.bson").exists()
    assert loads((out / "shop" / "capped.metadata.json").read_text())["options"]["capped"] is True
    assert bson.decode_all((out / "other" / "things.bson").read_bytes()) == [{"_id": 1, "s": "other database"}]
    # restored into a fresh data directory: the same, exactly
    r = engine("--dbpath", tmp_path / "dst", "restore", out)
    assert "restored 6 collections (2506 documents)" in r.stdout, r.stdout
    dst = Server(tmp_path / "dst")
    try:
        with MongoClient(dst.uri) as c:
            assert _snapshot(c) == before
            assert [d["_id"] for d in c.shop.cheap.find()] == [0, 1, 2]
    finally:
        assert dst.stop() == 0
    # again: documents are inserted, never overwritten -- the duplicates are
    # reported; --drop replaces
    r = engine("--dbpath", tmp_path / "dst", "restore", out, ok=False)
    assert r.returncode == 1 and "2506 not inserted" in r.stdout and "E11000" in r.stderr
    r = engine("--dbpath", tmp_path / "dst", "restore", out, "--drop")
    assert "restored 6 collections (2506 documents)" in r.stdout


def test_dump_from_and_restore_into_djongo_server(tmp_path):
    src = Server(tmp_path / "src")
    dst = Server(tmp_path / "dst")
    try:
        with MongoClient(src.uri) as c:
            _fill(c)
            before = _snapshot(c)
        engine("--host", src.uri, "dump", tmp_path / "dump", "--db", "shop")
        assert sorted(os.listdir(tmp_path / "dump")) == ["shop"]  # --db: that database only
        engine("--host", dst.uri, "restore", tmp_path / "dump")
        with MongoClient(dst.uri) as c:
            after = _snapshot(c)
        assert after == {k: v for k, v in before.items() if k.startswith("shop.")}
    finally:
        assert src.stop() == 0 and dst.stop() == 0


def test_usage_errors(tmp_path):
    r = engine("--dbpath", tmp_path / "none", "dump", tmp_path / "out", ok=False)
    assert r.returncode == 1 and "no database at" in r.stderr, r.stderr
    r = engine("--dbpath", tmp_path / "d", "restore", tmp_path / "missing", ok=False)
    assert r.returncode == 1 and "is not a dump directory" in r.stderr
    r = engine("--dbpath", tmp_path / "d", "--host", "mongodb://127.0.0.1:1/", "dump", tmp_path / "o", ok=False)
    assert r.returncode == 2


def _site(args, host):
    """manage.py of the example site, with HOST (DJONGO_HOST) host."""
    path = os.pathsep.join([str(ROOT / "example"), os.environ.get("PYTHONPATH", "")])
    return _run([sys.executable, *args], dict(os.environ, DJONGO_HOST=str(host), PYTHONPATH=path),
                cwd=ROOT / "example").stdout


def test_the_example_site_moves_into_a_fresh_djongo_server(tmp_path):
    data = tmp_path / "site-data"
    _site(["manage.py", "migrate", "--no-input"], data)
    _site(["manage.py", "seed"], data)
    before = _site(["manage.py", "dumpdata", "--indent", "1"], data)
    engine("--dbpath", data, "dump", tmp_path / "dump")
    server = Server(tmp_path / "server-data")
    try:
        engine("--host", server.uri, "restore", tmp_path / "dump")
        uri = server.uri.rstrip("/") + "/?directConnection=true"
        after = _site(["manage.py", "dumpdata", "--indent", "1"], uri)
        assert after == before and '"headline": "Abbey Road at 55"' in after
        # and it goes on working there: migrations known as applied, writes too
        assert "No migrations to apply" in _site(["manage.py", "migrate", "--no-input"], uri)
        assert "already there" in _site(["manage.py", "seed"], uri)
    finally:
        assert server.stop() == 0
