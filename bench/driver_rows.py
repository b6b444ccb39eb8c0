"""DB-API driver throughput: insert N rows and fetch N rows through
djongo.driver (SQL -> MongoDB commands -> embedded engine -> Python tuples)
against Python's sqlite3 on the same machine, in the same run; and, against
djongo-server, through the driver's libmongoc transport vs pymongo.

    python3 bench/driver_rows.py [N] [--markdown FILE]

Both sides do the same work the same way: one table (id, name, score,
created), the rows inserted by executemany in one transaction, then
SELECT * fetched with fetchall, then a filtered SELECT with ORDER BY and
LIMIT. Durability is equal: sqlite3 in WAL mode with synchronous=FULL, the
engine fsyncs each commit.
"""
import datetime
import os
import shutil
import sqlite3
import sys
import tempfile
import time

from benchutil import best, report
from djongo import driver

CREATE = ('CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" varchar(50) NOT NULL, '
          '"score" real NULL, "created" datetime NOT NULL)')
INSERT = 'INSERT INTO "t" ("name", "score", "created") VALUES (%s, %s, %s)'
SELECT_ALL = 'SELECT "t"."id", "t"."name", "t"."score", "t"."created" FROM "t"'
SELECT_TOP = ('SELECT "t"."id", "t"."name" FROM "t" WHERE "t"."score" > %s ORDER BY "t"."score" DESC LIMIT 100')


def rows(n):
    base = datetime.datetime(2024, 1, 1)
    return [("name%d" % i, (i * 7919) % 1000 / 10.0, base + datetime.timedelta(seconds=i)) for i in range(n)]


def dbapi_ops(conn, data, n, placeholder="%s"):
    """The measured work on any DB-API connection: create, executemany
    INSERT + commit (timed once), SELECT all and the top-100 query (best of 3)."""
    cur = conn.cursor()
    cur.execute(CREATE)
    conn.commit()
    t0 = time.perf_counter()
    cur.executemany(INSERT.replace("%s", placeholder), data)
    conn.commit()
    insert = time.perf_counter() - t0

    def fetch():
        cur.execute(SELECT_ALL)
        assert len(cur.fetchall()) == n

    def top():
        cur.execute(SELECT_TOP.replace("%s", placeholder), [50.0])
        cur.fetchall()
    out = {"insert": insert, "fetch": best(fetch), "top": best(top)}
    conn.close()
    return out


def bench_djongo(data, n):
    d = tempfile.mkdtemp(prefix="djongo-bench-")
    try:
        return dbapi_ops(driver.connect(d + "/db", db="bench"), data, n)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def bench_server(data, n):
    """The same work through djongo.driver's libmongoc transport and through
    pymongo, both against one djongo-server (the same engine behind the
    wire protocol)."""
    import subprocess

    import pymongo
    d = tempfile.mkdtemp(prefix="djongo-bench-srv-")
    proc = subprocess.Popen([shutil.which("djongo-server"), "--dbpath", d, "--port", "0", "--quiet"],
                            stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline().split()[-1])
    uri = "mongodb://127.0.0.1:%d/" % port
    try:
        dj = dbapi_ops(driver.connect(uri, db="bench", autocommit=True), data, n)

        client = pymongo.MongoClient(uri)
        coll = client.bench.pm
        docs = [{"id": i + 1, "name": r[0], "score": r[1], "created": r[2]} for i, r in enumerate(data)]
        t0 = time.perf_counter()
        coll.insert_many(docs)
        pm = {"insert": time.perf_counter() - t0}

        def pfetch():
            rows = [(d["id"], d["name"], d["score"], d["created"])
                    for d in coll.find({}, {"_id": 0, "id": 1, "name": 1, "score": 1, "created": 1})]
            assert len(rows) == n

        def ptop():
            list(coll.find({"score": {"$gt": 50.0}}, {"_id": 0, "id": 1, "name": 1}).sort("score", -1).limit(100))
        pm["fetch"], pm["top"] = best(pfetch), best(ptop)
        client.close()
        return dj, pm
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(d, ignore_errors=True)


def bench_sqlite(data, n):
    d = tempfile.mkdtemp(prefix="sqlite-bench-")
    try:
        conn = sqlite3.connect(os.path.join(d, "db.sqlite"))
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return dbapi_ops(conn, data, n, placeholder="?")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 100000
    md = sys.argv[sys.argv.index("--markdown") + 1] if "--markdown" in sys.argv else None
    data = rows(n)
    dj = bench_djongo(data, n)
    lite = bench_sqlite(data, n)
    wire_dj, wire_pm = bench_server(data, n) if shutil.which("djongo-server") else (None, None)
    lines = ["# DB-API driver: %d rows through djongo.driver (embedded engine) vs sqlite3" % n, "",
             "`python3 bench/driver_rows.py %d` (best of 3 for reads; one insert run). Same SQL, same rows, " % n,
             "one transaction for the inserts, fsync on commit on both sides. Lower is better.", "",
             "| operation | djongo.driver | sqlite3 | djongo / sqlite3 | djongo rows/s |",
             "|---|---:|---:|---:|---:|"]
    for op, label, count in (("insert", "executemany INSERT, commit", n), ("fetch", "SELECT all, fetchall", n),
                             ("top", "WHERE > ORDER BY DESC LIMIT 100", None)):
        rate = "%.0f" % (count / dj[op]) if count else "-"
        lines.append("| %s | %.3f s | %.3f s | %.2fx | %s |" % (label, dj[op], lite[op], dj[op] / lite[op], rate))
    if wire_dj:
        lines += ["", "Against djongo-server (the same engine over the wire protocol, loopback): djongo.driver",
                  "through its libmongoc transport vs pymongo doing the same inserts and reads (insert_many; find",
                  "with the same projection, rows built as tuples).", "",
                  "| operation | djongo.driver | pymongo | djongo / pymongo |", "|---|---:|---:|---:|"]
        for op, label in (("insert", "INSERT %d rows / insert_many" % n), ("fetch", "SELECT all / find all"),
                          ("top", "WHERE > ORDER BY DESC LIMIT 100")):
            lines.append("| %s | %.3f s | %.3f s | %.2fx |" % (label, wire_dj[op], wire_pm[op], wire_dj[op] / wire_pm[op]))
    report(lines, md)


if __name__ == "__main__":
    main()
