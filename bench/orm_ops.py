"""Django's ORM operations (issue 18's list) on djongo and its peers,
measured in one run.

    python3 bench/orm_ops.py [N] [--rounds R] [--sides a,b,..] [--before DIR] [--markdown FILE]
    python3 bench/orm_ops.py --scale 10000,100000,1000000 [--rounds R] [--sides ..] [--markdown FILE] [--plots DIR]

Plain models (bench/ormbench: 100 authors, N books with an indexed rating
and a foreign key). Sides:

  djongo       djongo's embedded engine (the engine fsyncs each commit)
  sqlite-default  Django's SQLite backend as Django sets it up: a rollback
               journal (journal_mode=DELETE), synchronous=FULL -- what a Django
               project gets, and what issue 18 measured
  sqlite-wal   Django's SQLite backend tuned: WAL, synchronous=FULL (a commit
               fsyncs the log once; equally durable, faster at commits)
  postgres     Django's PostgreSQL backend (psycopg 3) on a cluster this script
               starts (initdb, pg_ctl) on a Unix socket in a temporary
               directory: fsync=on, synchronous_commit=on, full_page_writes=on
  djongo-wire  djongo's backend over the wire protocol (libmongoc) to djongo-server
  dmb          django-mongodb-backend 5.2 (MongoDB's own Django backend) to the
               same djongo-server
  pymongo      the same operations written by hand with pymongo, same server
  djongo-before  with --before DIR: djongo embedded again, from the djongo
               package in DIR (an earlier build: its Python files and _driver
               module), so that a change is measured before and after in the
               same run as its peers

djongo-server ($DJONGO_SERVER, else PATH's) runs on a fresh data
directory with fsync on (its default),
one server for the run, a database per side and round. Each side runs in a
process of its own per round, the rounds interleaved (the order of the sides
rotates), so that a disturbance of the machine falls on all sides alike; in
each process a read is timed three times over (the median kept), a write
once. The report gives each side's median operations per second, and the ratios of
djongo to its peers per round: their median and spread (min..max). A ratio
above 1 means djongo is faster.

--scale times the operations whose cost grows with the table (a filtered
count, an unindexed order_by with a limit, annotate(Count)) at each size,
and draws each one's curve (operations per second against rows, log-log)
into DIR/orm_scaling_<op>.png with matplotlib.
"""
import json
import os
import pathlib
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchutil import django_side, report, timings

HERE = pathlib.Path(__file__).resolve().parent
AUTHORS = 100
EMBEDDED = ("djongo", "sqlite-default", "sqlite-wal", "postgres")
WIRE = ("djongo-wire", "dmb", "pymongo")
# (peer, the djongo side it is compared with)
PAIRS = (("djongo-before", "djongo"), ("sqlite-default", "djongo"), ("sqlite-wal", "djongo"), ("postgres", "djongo"), ("dmb", "djongo-wire"), ("pymongo", "djongo-wire"))
OPS = ("create (autocommit, one row)", "get by pk", "filter on an index", "filter + order_by + [:20]",
       "count with a filter", "select_related [:100]", "annotate(Count) over a foreign key", "bulk_create 1000 rows",
       "delete of a filtered set (1000 rows)")
SCALING = ("count with a filter", "filter + order_by + [:20]", "annotate(Count) over a foreign key")
FSYNC = {
    "djongo": "LMDB, fsync at each commit",
    "sqlite-default": "Django's defaults: rollback journal (DELETE), synchronous=FULL",
    "sqlite-wal": "WAL, synchronous=FULL",
    "postgres": "fsync=on, synchronous_commit=on",
    "djongo-wire": "djongo-server, fsync at each commit",
    "dmb": "djongo-server, fsync at each commit",
    "pymongo": "djongo-server, fsync at each commit",
    "djongo-before": "as djongo (the earlier build given by --before)",
}


# ---- one side, in a process of its own ----------------------------------------

def configure(which, db_name):
    """Django for one side in this process: benchutil.django_side, with the
    DATABASES entry of the sides it does not know itself."""
    auto, db = "django.db.models.AutoField", None
    if which == "djongo-before":
        import djongo

        # the earlier build must be the one imported, not this tree's or an
        # installed djongo: a mix-up would report a change of nothing
        if not djongo.__file__.startswith(os.environ["BENCH_BEFORE"]):
            raise SystemExit("djongo-before imported %s, not the package in %s" % (djongo.__file__,
                                                                                os.environ["BENCH_BEFORE"]))
        which = "djongo"
    if which == "postgres":
        db = {"ENGINE": "django.db.backends.postgresql", "NAME": db_name, "USER": "postgres",
              "HOST": os.environ["BENCH_PG_SOCKET"]}
    elif which == "djongo-wire":
        db = {"ENGINE": "djongo", "NAME": db_name, "HOST": os.environ["BENCH_SERVER_URI"]}
    elif which == "dmb":
        db = {"ENGINE": "django_mongodb_backend", "NAME": db_name, "HOST": os.environ["BENCH_SERVER_URI"]}
        auto = "django_mongodb_backend.fields.ObjectIdAutoField"
    elif which not in ("djongo", "sqlite-default", "sqlite-wal"):
        raise SystemExit("unknown side " + which)
    django_side(which, "ormbench", HERE, db, auto)


def spread(i):
    """The i-th rating bound of a range query: 0..99 spread out, so that a
    few repetitions (the scaling runs' largest sizes) still cover small and
    large ranges alike."""
    return (i * 37 + 50) % 100


# The operations that change nothing: each is timed in READ_BLOCKS blocks of
# the same repetitions, and the median block kept -- a block of
# select_related is 0.2 s, which one disturbance of the machine can slow by
# a third, and the median drops it. Not the fastest block: Python's full
# garbage collection comes every ~200 queries of a page of 100 models
# (~15 ms each), and a block that happens to miss it would stand for a
# speed no process keeps; the median block has it as a typical block does.
# The writes are timed once: a second block would create more rows, or
# delete none.
READS = ("get by pk", "filter on an index", "filter + order_by + [:20]", "count with a filter",
         "select_related [:100]", "annotate(Count) over a foreign key")
READ_BLOCKS = 3


def timed(out, name, fn, reps):
    def block():
        for i in range(reps):
            fn(i)
    out[name] = reps / statistics.median(timings(block, READ_BLOCKS if name in READS else 1))


def orm_side(which, n, ops, db_name):
    configure(which, db_name)
    from django.db import transaction
    from django.db.models import Count

    from ormbench.models import Author, Book

    rnd = random.Random(7)
    authors = Author.objects.bulk_create([Author(name="author%d" % i) for i in range(AUTHORS)])
    if which == "dmb" or authors[0].pk is None:
        authors = list(Author.objects.order_by("name"))
    for lo in range(0, n, 10000):
        # a transaction per 10,000 rows (an LMDB write transaction holds
        # its dirty pages in memory: a million rows at once is too big)
        with transaction.atomic():
            Book.objects.bulk_create([Book(title="book%d" % i, author=authors[i % AUTHORS], rating=i % 100,
                                           pages=rnd.randrange(50, 900)) for i in range(lo, min(n, lo + 10000))])
    ids = list(Book.objects.values_list("pk", flat=True))
    a0 = Author.objects.first()
    out = {}

    def bulk(i):
        with transaction.atomic():
            Book.objects.bulk_create([Book(title="b", author=a0, rating=200 + i, pages=1) for _ in range(1000)])

    table = {
        "create (autocommit, one row)": (lambda i: Book.objects.create(title="new", author=a0, rating=1, pages=1), 300),
        "get by pk": (lambda i: Book.objects.get(pk=ids[(i * 7919) % len(ids)]), 2000),
        "filter on an index": (lambda i: list(Book.objects.filter(rating=i % 100)[:50]), 500),
        "filter + order_by + [:20]": (
            lambda i: list(Book.objects.filter(rating__gte=spread(i)).order_by("-pages")[:20]), 100),
        "count with a filter": (lambda i: Book.objects.filter(rating__lt=spread(i)).count(), 200),
        "select_related [:100]": (lambda i: list(Book.objects.select_related("author")[i % 50:i % 50 + 100]), 200),
        "annotate(Count) over a foreign key": (lambda i: list(Author.objects.annotate(n=Count("book"))), 10),
        "bulk_create 1000 rows": (bulk, 10),
        "delete of a filtered set (1000 rows)": (lambda i: Book.objects.filter(rating=200 + i).delete(), 10),
    }
    for name in ops:
        fn, reps = table[name]
        timed(out, name, fn, max(3, reps * 10000 // max(n, 10000)) if name in SCALING else reps)
    return out


def pymongo_side(n, ops, db_name):
    """The same operations by hand: what an application written against
    pymongo would send (documents with ObjectId _ids, the author's _id as the
    book's reference, the same indexes as the models')."""
    import pymongo

    client = pymongo.MongoClient(os.environ["BENCH_SERVER_URI"])
    db = client[db_name]
    authors, books = db.authors, db.books
    books.create_index("rating")
    books.create_index("author_id")
    rnd = random.Random(7)
    aids = authors.insert_many([{"name": "author%d" % i} for i in range(AUTHORS)]).inserted_ids
    for lo in range(0, n, 10000):
        books.insert_many([{"title": "book%d" % i, "author_id": aids[i % AUTHORS], "rating": i % 100,
                            "pages": rnd.randrange(50, 900)} for i in range(lo, min(n, lo + 10000))])
    ids = [d["_id"] for d in books.find({}, {"_id": 1})]
    a0 = aids[0]
    out = {}
    table = {
        "create (autocommit, one row)": (
            lambda i: books.insert_one({"title": "new", "author_id": a0, "rating": 1, "pages": 1}), 300),
        "get by pk": (lambda i: books.find_one({"_id": ids[(i * 7919) % len(ids)]}), 2000),
        "filter on an index": (lambda i: list(books.find({"rating": i % 100}).limit(50)), 500),
        "filter + order_by + [:20]": (
            lambda i: list(books.find({"rating": {"$gte": spread(i)}}).sort("pages", -1).limit(20)), 100),
        "count with a filter": (lambda i: books.count_documents({"rating": {"$lt": spread(i)}}), 200),
        "select_related [:100]": (lambda i: list(books.aggregate([
            {"$skip": i % 50}, {"$limit": 100},
            {"$lookup": {"from": "authors", "localField": "author_id", "foreignField": "_id", "as": "author"}},
            {"$unwind": "$author"}])), 200),
        "annotate(Count) over a foreign key": (lambda i: list(authors.aggregate([
            {"$lookup": {"from": "books", "localField": "_id", "foreignField": "author_id",
                         "pipeline": [{"$count": "n"}], "as": "n"}},
            {"$set": {"n": {"$ifNull": [{"$first": "$n.n"}, 0]}}}])), 10),
        "bulk_create 1000 rows": (lambda i: books.insert_many(
            [{"title": "b", "author_id": a0, "rating": 200 + i, "pages": 1} for _ in range(1000)]), 10),
        "delete of a filtered set (1000 rows)": (lambda i: books.delete_many({"rating": 200 + i}), 10),
    }
    for name in ops:
        fn, reps = table[name]
        timed(out, name, fn, max(3, reps * 10000 // max(n, 10000)) if name in SCALING else reps)
    client.drop_database(db_name)
    return out


def side(which, n, ops, db_name):
    out = pymongo_side(n, ops, db_name) if which == "pymongo" else orm_side(which, n, ops, db_name)
    if which == "dmb":
        from django.db import connection

        connection.database.client.drop_database(db_name)
    print(json.dumps(out))


# ---- the services: PostgreSQL and djongo-server ------------------------------------

class Services:
    def __init__(self, sides):
        self.tmp = tempfile.mkdtemp(prefix="djongo-bench-svc-")
        self.pg = self.server = None
        self.env = dict(os.environ)
        if "postgres" in sides:
            self.start_postgres()
        if set(sides) & set(WIRE):
            self.start_server()

    def as_postgres(self, args):
        """PostgreSQL refuses to run as root: as the postgres user, then."""
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--"] + args
        return args

    def start_postgres(self):
        bindir = pathlib.Path(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
                              or "/usr/lib/postgresql/15/bin")
        if not (bindir / "initdb").exists():
            bindir = pathlib.Path(shutil.which("initdb")).parent
        pgdir = os.path.join(self.tmp, "pg")
        os.makedirs(pgdir)
        if os.geteuid() == 0:
            shutil.chown(self.tmp, "postgres")
            shutil.chown(pgdir, "postgres")
        subprocess.run(self.as_postgres([str(bindir / "initdb"), "-D", pgdir, "-A", "trust", "-U", "postgres"]),
                       check=True, capture_output=True)
        opts = "-k %s -c listen_addresses='' -c fsync=on -c synchronous_commit=on -c full_page_writes=on" % self.tmp
        subprocess.run(self.as_postgres([str(bindir / "pg_ctl"), "-D", pgdir, "-w", "-l", os.path.join(pgdir, "log"),
                                         "-o", opts, "start"]), check=True, capture_output=True)
        self.pg = (bindir, pgdir)
        self.env["BENCH_PG_SOCKET"] = self.tmp

    def start_server(self):
        # DJONGO_SERVER, else PATH's (a pyenv shim puts its own bin
        # directory, with any djongo installed there, first on PATH)
        exe = os.environ.get("DJONGO_SERVER") or shutil.which("djongo-server")
        if not exe:
            sys.exit("djongo-server: set DJONGO_SERVER or put build/src/tools on PATH")
        d = os.path.join(self.tmp, "server")
        # its output to a file, not a pipe nobody reads once the port is
        # known: a full pipe would stall the server at its next line
        log = os.path.join(self.tmp, "server.log")
        with open(log, "w") as out:
            self.server = subprocess.Popen([exe, "--dbpath", d, "--port", "0", "--quiet"], stdout=out,
                                           stderr=subprocess.STDOUT)
        for _ in range(600):
            with open(log) as f:
                first = f.readline()
            if first.endswith("\n"):
                break
            time.sleep(0.05)
        port = int(first.split()[-1])
        self.env["BENCH_SERVER_URI"] = "mongodb://127.0.0.1:%d/" % port

    def create_pg_db(self, name):
        subprocess.run(self.as_postgres([str(self.pg[0] / "createdb"), "-h", self.tmp, "-U", "postgres", name]),
                       check=True, capture_output=True)

    def drop_pg_db(self, name):
        subprocess.run(self.as_postgres([str(self.pg[0] / "dropdb"), "-h", self.tmp, "-U", "postgres", name]),
                       capture_output=True)

    def stop(self):
        if self.server:
            self.server.terminate()
            self.server.wait()
        if self.pg:
            subprocess.run(self.as_postgres([str(self.pg[0] / "pg_ctl"), "-D", self.pg[1], "-m", "fast", "stop"]),
                           capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def run_rounds(svc, sides, n, ops, rounds):
    """{side: [one result dict per round]}, the sides' order rotating per round."""
    runs = {s: [] for s in sides}
    for r in range(rounds):
        order = sides[r % len(sides):] + sides[:r % len(sides)]
        for which in order:
            db_name = "bench_%s_%d_%d" % (which.replace("-", "_"), n, r)
            if which == "postgres":
                svc.create_pg_db(db_name)
            env = svc.env
            if which == "djongo-before":
                env = dict(env, PYTHONPATH=os.pathsep.join(filter(None, (env["BENCH_BEFORE"], env.get("PYTHONPATH")))))
            p = subprocess.run([sys.executable, __file__, "--side", which, str(n), db_name, json.dumps(ops)],
                               capture_output=True, text=True, timeout=3600, cwd="/tmp", env=env)
            if which == "postgres":
                svc.drop_pg_db(db_name)
            if p.returncode:
                sys.exit("%s failed:\n%s" % (which, p.stderr[-3000:]))
            runs[which].append(json.loads(p.stdout.strip().splitlines()[-1]))
    return runs


def ratios(runs, mine, peer, op):
    """djongo's ops/s over the peer's, round by round."""
    return [a[op] / b[op] for a, b in zip(runs[mine], runs[peer])]


def fmt_ratio(rs):
    return "%.2f (%.2f..%.2f)" % (statistics.median(rs), min(rs), max(rs))


def table_lines(runs, sides, n, rounds):
    lines = ["Django 5.2 ORM, %d books / %d authors, %d interleaved rounds (`python3 bench/orm_ops.py`). Median "
             "operations per second per side (a read: the median of %d blocks in its process; a write: one); ratios "
             "are djongo's over the peer's per round: median (min..max), above 1 = djongo faster."
             % (n, AUTHORS, rounds, READ_BLOCKS), "",
             "Durability: " + "; ".join("%s: %s" % (s, FSYNC[s]) for s in sides) + ".", ""]
    pairs = [(p, m) for p, m in PAIRS if p in sides and m in sides]
    head = "| operation | " + " | ".join("%s ops/s" % s for s in sides) + "".join(
        " | %s / %s" % (m, p) for p, m in pairs) + " |"
    lines += [head, "|---|" + "---:|" * (len(sides) + len(pairs))]
    for op in OPS:
        if op not in runs[sides[0]][0]:
            continue
        row = "| %s | " % op + " | ".join("%.0f" % statistics.median(r[op] for r in runs[s]) for s in sides)
        row += "".join(" | " + fmt_ratio(ratios(runs, m, p, op)) for p, m in pairs)
        lines.append(row + " |")
    return lines


def scaling(svc, sides, sizes, rounds, plots):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    med = {}
    for n in sizes:
        runs = run_rounds(svc, sides, n, list(SCALING), rounds)
        med[n] = {s: {op: statistics.median(r[op] for r in runs[s]) for op in SCALING} for s in sides}
        med[n]["ratios"] = {(p, m, op): fmt_ratio(ratios(runs, m, p, op)) for p, m in PAIRS
                            if p in sides and m in sides for op in SCALING}
    lines = ["Scaling, %d interleaved rounds per size (`python3 bench/orm_ops.py --scale`): median operations per "
             "second (the median of %d blocks in each process); ratios djongo / peer per round, median (min..max)."
             % (rounds, READ_BLOCKS), "",
             "Durability: " + "; ".join("%s: %s" % (s, FSYNC[s]) for s in sides) + ".", ""]
    pairs = [(p, m) for p, m in PAIRS if p in sides and m in sides]
    for op in SCALING:
        lines += ["### " + op, "", "| books | " + " | ".join(sides) + "".join(
            " | %s / %s" % (m, p) for p, m in pairs) + " |", "|---:|" + "---:|" * (len(sides) + len(pairs))]
        for n in sizes:
            lines.append("| %d | " % n + " | ".join("%.1f" % med[n][s][op] for s in sides) +
                         "".join(" | " + med[n]["ratios"][(p, m, op)] for p, m in pairs) + " |")
        lines.append("")
        if plots:
            fig, ax = plt.subplots(figsize=(6, 4))
            for s in sides:
                ax.plot(sizes, [med[n][s][op] for n in sizes], marker="o", label=s)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("books (rows)")
            ax.set_ylabel("operations per second")
            ax.set_title(op)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
            fig.tight_layout()
            slug = "_".join("".join(ch if ch.isalnum() else " " for ch in op.split(" over")[0]).lower().split())
            os.makedirs(plots, exist_ok=True)  # (a new directory: made, not an error after the whole run)
            fig.savefig(os.path.join(plots, "orm_scaling_%s.png" % slug), dpi=100)
            plt.close(fig)
    return lines


def take(args, flag, default):
    if flag in args:
        v = args[args.index(flag) + 1]
        del args[args.index(flag):args.index(flag) + 2]
        return v
    return default


def main():
    args = sys.argv[1:]
    md = take(args, "--markdown", None)
    rounds = int(take(args, "--rounds", "3"))
    sides = take(args, "--sides", ",".join(EMBEDDED + WIRE)).split(",")
    scale = take(args, "--scale", None)
    plots = take(args, "--plots", None)
    before = take(args, "--before", None)
    n = int(args[0]) if args else 10000
    if before:
        sides.append("djongo-before")
    svc = Services(sides)
    if before:
        svc.env["BENCH_BEFORE"] = os.path.abspath(before)
    try:
        if scale:
            lines = scaling(svc, sides, [int(x) for x in scale.split(",")], rounds, plots)
        else:
            runs = run_rounds(svc, sides, n, list(OPS), rounds)
            lines = table_lines(runs, sides, n, rounds)
            if md:
                with open(os.path.splitext(md)[0] + ".json", "w") as f:
                    json.dump(runs, f, indent=1)  # every round's ops/s per side
    finally:
        svc.stop()
    report(lines, md)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--side":
        side(sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[5]), sys.argv[4])
    else:
        main()
