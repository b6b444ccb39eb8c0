"""The crash campaign (issue 19): processes killed with SIGKILL in the middle
of writing, then every write they had acknowledged looked for.

  python3 scripts/crash_campaign.py [--rounds N] [--out docs/crash_campaign.md]

Two parts, each N rounds (default 50):
  embedded  two writer processes (the DB-API driver on one data directory,
            autocommit: each INSERT is a committed transaction) append rows
            and, after each INSERT returns, the row's key to a file of their
            own; both are killed at a random moment. Then the directory is
            opened again: every acknowledged key must be there, every row must
            read back whole (its payload's checksum), and the database must
            take writes.
  server    djongo-server killed while a pymongo client inserts (each
            insert_one that returned is acknowledged, journaled by the
            engine's commit); restarted on the same directory, it must hold
            every acknowledged document, whole.
Writes a markdown table (rounds, acknowledged, lost, corrupt, seconds) and
exits 1 if anything acknowledged was lost or a row came back damaged.
Needs djongo installed (pip install .) and djongo-server on PATH.
"""
import argparse
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

WRITER = r"""
import hashlib, os, sys
from djongo import driver
path, who, ack = sys.argv[1], sys.argv[2], sys.argv[3]
conn = driver.connect(path, db="crash", autocommit=True)
cur = conn.cursor()
with open(ack, "a", buffering=1) as out:
    n = 0
    while True:
        key = "%s-%d" % (who, n)
        payload = os.urandom(64 + n % 2000).hex()
        cur.execute('INSERT INTO "rows" ("key", "payload", "sum") VALUES (%s, %s, %s)',
                    [key, payload, hashlib.sha256(payload.encode()).hexdigest()])
        out.write(key + "\n")  # written only once the INSERT returned
        n += 1
"""


def acked_keys(files):
    keys = set()
    for f in files:
        if os.path.exists(f):
            with open(f) as fh:
                # a line cut by the kill was never finished: the INSERT before
                # it returned, but the key's line is incomplete -- not counted
                keys.update(line[:-1] for line in fh if line.endswith("\n"))
    return keys


def embedded_round(tmp, rnd):
    from djongo import driver

    path = os.path.join(tmp, "db")
    if rnd == 0:
        conn = driver.connect(path, db="crash", autocommit=True)
        conn.cursor().execute('CREATE TABLE "rows" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, '
                              '"key" text NOT NULL UNIQUE, "payload" text, "sum" text)')
        conn.close()
    acks = [os.path.join(tmp, "ack-%d-%s" % (rnd, w)) for w in "ab"]
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, path, "r%d%s" % (rnd, w), acks[i]],
                              stderr=subprocess.DEVNULL) for i, w in enumerate("ab")]
    # the kill lands a random while after both writers' first acknowledged
    # row (waited for: starting Python and the driver can take a second on
    # a busy machine, and a kill before any write tests nothing)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(os.path.exists(a) and os.path.getsize(a) for a in acks):
        time.sleep(0.02)
    time.sleep(random.uniform(0.05, 1.0))
    for p in procs:
        p.send_signal(signal.SIGKILL)
    for p in procs:
        p.wait()
    conn = driver.connect(path, db="crash", autocommit=True)
    cur = conn.cursor()
    cur.execute('SELECT "rows"."key", "rows"."payload", "rows"."sum" FROM "rows"')
    rows = cur.fetchall()
    present = {k for k, _, _ in rows}
    corrupt = sum(1 for _, p, s in rows if hashlib.sha256(p.encode()).hexdigest() != s)
    cur.execute('INSERT INTO "rows" ("key", "payload", "sum") VALUES (%s, %s, %s)',
                ["after-%d" % rnd, "x", hashlib.sha256(b"x").hexdigest()])  # still writable
    conn.close()
    mine = acked_keys(acks)
    return len(mine), len(mine - present), corrupt


def server_round(tmp, rnd, tool):
    import pymongo

    path = os.path.join(tmp, "srv")

    def start():
        p = subprocess.Popen([tool, "--dbpath", path, "--port", "0", "--quiet"], stdout=subprocess.PIPE, text=True)
        port = int(p.stdout.readline().split()[-1])
        # (no retried writes: an insert the kill interrupted stays unacknowledged)
        return p, pymongo.MongoClient("mongodb://127.0.0.1:%d/" % port, serverSelectionTimeoutMS=2000,
                                      retryWrites=False)

    proc, client = start()
    coll = client.crash.docs
    acked = set()
    deadline = time.monotonic() + random.uniform(0.3, 1.5)
    killed = False
    n = 0
    try:
        while True:
            if not killed and time.monotonic() > deadline:
                proc.send_signal(signal.SIGKILL)  # the insert in flight is not acknowledged
                killed = True
            payload = os.urandom(64 + n % 2000).hex()
            key = "s%d-%d" % (rnd, n)
            coll.insert_one({"_id": key, "payload": payload, "sum": hashlib.sha256(payload.encode()).hexdigest()})
            acked.add(key)
            n += 1
    except pymongo.errors.PyMongoError:
        pass
    client.close()
    proc.wait()
    proc, client = start()
    docs = list(client.crash.docs.find({"_id": {"$regex": "^s%d-" % rnd}}))
    present = {d["_id"] for d in docs}
    corrupt = sum(1 for d in docs if hashlib.sha256(d["payload"].encode()).hexdigest() != d["sum"])
    client.close()
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    return len(acked), len(acked - present), corrupt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "docs", "crash_campaign.md"))
    args = ap.parse_args()
    tool = shutil.which("djongo-server")
    if not tool:
        sys.exit("crash_campaign: djongo-server is not on PATH (pip install .)")
    results = {}
    for part in ("embedded", "server"):
        tmp = tempfile.mkdtemp(prefix="djongo-crash-")
        total = [0, 0, 0]
        start = time.monotonic()
        for rnd in range(args.rounds):
            r = embedded_round(tmp, rnd) if part == "embedded" else server_round(tmp, rnd, tool)
            total = [a + b for a, b in zip(total, r)]
            print("%s round %d: %d acknowledged, %d lost, %d corrupt" % (part, rnd, *r), flush=True)
        results[part] = (*total, time.monotonic() - start)
        shutil.rmtree(tmp, ignore_errors=True)
    lines = ["# Crash campaign", "",
             "`python3 scripts/crash_campaign.py --rounds %d` (SIGKILL in the middle of writing; then every "
             "acknowledged write looked for). Measured %s." % (args.rounds, time.strftime("%Y-%m-%d")), "",
             "| part | what is killed | rounds | acknowledged writes | lost | corrupt | seconds |",
             "|---|---|---|---|---|---|---|"]
    what = {"embedded": "two DB-API writer processes on one data directory",
            "server": "djongo-server under a pymongo client inserting"}
    for part, (acked, lost, corrupt, secs) in results.items():
        lines.append("| %s | %s | %d | %d | %d | %d | %.0f |" % (part, what[part], args.rounds, acked, lost, corrupt,
                                                                  secs))
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    bad = any(r[1] or r[2] for r in results.values())
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
