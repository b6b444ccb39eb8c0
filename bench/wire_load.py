"""Load on djongo-server over loopback: N concurrent pymongo clients doing a
mix of reads and writes for a fixed time; no errors allowed, and every
acknowledged insert must be found afterwards (no lost writes).

    python3 bench/wire_load.py [--clients 8] [--seconds 10] [--markdown FILE]

The server runs on a fresh data directory with fsync on (its default), so
the write rate is that of durable commits. Reported: operations per second
by kind, and the check.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pymongo

from benchutil import report


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--markdown")
    ap.add_argument("--server", default=shutil.which("djongo-server"))
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="djongo-load-")
    proc = subprocess.Popen([a.server, "--dbpath", d, "--port", "0", "--quiet"], stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline().split()[-1])
    uri = "mongodb://127.0.0.1:%d/" % port
    setup = pymongo.MongoClient(uri)
    coll = setup.load.items
    coll.create_index("k")
    coll.insert_many([{"k": i, "v": "seed"} for i in range(1000)])
    stop = time.time() + a.seconds
    counts = [{"insert": 0, "find": 0, "update": 0, "aggregate": 0} for _ in range(a.clients)]
    acked = [[] for _ in range(a.clients)]
    errors = []

    def work(n):
        c = pymongo.MongoClient(uri)
        items = c.load.items
        i = 0
        try:
            while time.time() < stop:
                i += 1
                r = i % 10
                if r < 3:
                    items.insert_one({"_id": "c%d-%d" % (n, i), "k": i % 1000, "v": "w"})
                    acked[n].append("c%d-%d" % (n, i))
                    counts[n]["insert"] += 1
                elif r < 8:
                    items.find_one({"k": i % 1000})
                    counts[n]["find"] += 1
                elif r < 9:
                    items.update_one({"k": i % 1000}, {"$inc": {"hits": 1}})
                    counts[n]["update"] += 1
                else:
                    list(items.aggregate([{"$match": {"k": {"$lt": 50}}}, {"$group": {"_id": None, "n": {"$sum": 1}}}]))
                    counts[n]["aggregate"] += 1
        except Exception as e:  # noqa: BLE001 -- reported
            errors.append(repr(e))
        finally:
            c.close()

    t0 = time.time()
    threads = [threading.Thread(target=work, args=(n,)) for n in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - t0
    ids = [x for lst in acked for x in lst]
    found = coll.count_documents({"_id": {"$in": ids}}) if ids else 0
    setup.close()
    proc.terminate()
    proc.wait(30)
    # the data outlives the server: reopen and count again
    proc = subprocess.Popen([a.server, "--dbpath", d, "--port", "0", "--quiet"], stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline().split()[-1])
    again = pymongo.MongoClient("mongodb://127.0.0.1:%d/" % port)
    found_after_restart = again.load.items.count_documents({"_id": {"$in": ids}}) if ids else 0
    again.close()
    proc.terminate()
    proc.wait(30)
    shutil.rmtree(d, ignore_errors=True)
    total = {k: sum(c[k] for c in counts) for k in counts[0]}
    ops = sum(total.values())
    lines = ["# djongo-server under load: %d pymongo clients, %.0f s, loopback" % (a.clients, a.seconds), "",
             "`python3 bench/wire_load.py --clients %d --seconds %g` on %d cores; fsync on every commit." % (
                 a.clients, a.seconds, os.cpu_count()), "",
             "| operation | count | per second |", "|---|---:|---:|"]
    for k, v in total.items():
        lines.append("| %s | %d | %.0f |" % (k, v, v / elapsed))
    lines.append("| **all** | **%d** | **%.0f** |" % (ops, ops / elapsed))
    lines += ["", "errors: %d; acknowledged inserts %d, found %d, found after a restart %d" % (
        len(errors), len(ids), found, found_after_restart)]
    report(lines, a.markdown)
    if errors or found != len(ids) or found_after_restart != len(ids):
        print("FAILED:", errors[:5])
        sys.exit(1)


if __name__ == "__main__":
    main()
