"""Django's ORM operations on djongo's embedded engine vs SQLite (issue 18's
list), measured in one run.

    python3 bench/orm_ops.py [N] [--rounds R] [--markdown FILE]

Plain models (bench/ormbench: authors, and N books with an indexed rating
and a foreign key), each side in a process of its own per round, the rounds
alternating between the sides; the median of each side's rounds is reported
and their ratio (djongo / SQLite, operations per second: above 1 means
djongo is faster). Durability is equal: SQLite in WAL mode with
synchronous=FULL, the engine fsyncs each commit.
"""
import json
import pathlib
import random
import statistics
import subprocess
import sys
import time

from benchutil import django_side, report

HERE = pathlib.Path(__file__).resolve().parent
AUTHORS = 100


def side(which, n):
    django_side(which, "ormbench", HERE)
    from django.db import transaction
    from django.db.models import Count

    from ormbench.models import Author, Book

    rnd = random.Random(7)
    with transaction.atomic():
        authors = Author.objects.bulk_create([Author(name="author%d" % i) for i in range(AUTHORS)])
        Book.objects.bulk_create([Book(title="book%d" % i, author=authors[i % AUTHORS], rating=i % 100,
                                       pages=rnd.randrange(50, 900)) for i in range(n)])
    ids = list(Book.objects.values_list("pk", flat=True))
    out = {}

    def rate(name, fn, reps):
        t0 = time.perf_counter()
        for i in range(reps):
            fn(i)
        out[name] = reps / (time.perf_counter() - t0)

    a0 = Author.objects.first()
    rate("create (autocommit, one row)", lambda i: Book.objects.create(title="new", author=a0, rating=1, pages=1), 300)
    rate("get by pk", lambda i: Book.objects.get(pk=ids[(i * 7919) % len(ids)]), 2000)
    rate("filter on an index", lambda i: list(Book.objects.filter(rating=i % 100)[:50]), 500)
    rate("filter + order_by + [:20]", lambda i: list(Book.objects.filter(rating__gte=i % 100).order_by("-pages")[:20]),
         100)
    rate("count with a filter", lambda i: Book.objects.filter(rating__lt=i % 100).count(), 200)
    rate("select_related [:100]", lambda i: list(Book.objects.select_related("author")[i % 50:i % 50 + 100]), 200)
    rate("annotate(Count) over a foreign key", lambda i: list(Author.objects.annotate(n=Count("book"))), 10)

    def bulk(i):
        with transaction.atomic():
            Book.objects.bulk_create([Book(title="b", author=a0, rating=200 + i, pages=1) for _ in range(1000)])
    rate("bulk_create 1000 rows", bulk, 10)
    rate("delete of a filtered set (1000 rows)", lambda i: Book.objects.filter(rating=200 + i).delete(), 10)
    print(json.dumps(out))


def main():
    args = sys.argv[1:]
    n, rounds, md = 10000, 3, None
    if "--markdown" in args:
        md = args[args.index("--markdown") + 1]
        args.remove(md)
        args.remove("--markdown")
    if "--rounds" in args:
        rounds = int(args[args.index("--rounds") + 1])
        args.remove(str(rounds))
        args.remove("--rounds")
    if args:
        n = int(args[0])
    runs = {"djongo": [], "sqlite": []}
    for r in range(rounds):
        for which in (("djongo", "sqlite") if r % 2 == 0 else ("sqlite", "djongo")):
            p = subprocess.run([sys.executable, __file__, "--side", which, str(n)], capture_output=True, text=True,
                               timeout=3600, cwd="/tmp")
            if p.returncode:
                sys.exit("%s failed:\n%s" % (which, p.stderr[-3000:]))
            runs[which].append(json.loads(p.stdout.strip().splitlines()[-1]))
    lines = ["Django 5.2 ORM, %d books / %d authors, %d alternating rounds, median operations per second "
             "(`python3 bench/orm_ops.py`). SQLite: WAL, synchronous=FULL; the engine fsyncs each commit." % (
                 n, AUTHORS, rounds), "",
             "| operation | djongo (embedded) ops/s | SQLite ops/s | djongo / SQLite |", "|---|---:|---:|---:|"]
    for op in runs["djongo"][0]:
        d = statistics.median(r[op] for r in runs["djongo"])
        s = statistics.median(r[op] for r in runs["sqlite"])
        lines.append("| %s | %.0f | %.0f | %.2f |" % (op, d, s, d / s))
    report(lines, md)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--side":
        side(sys.argv[2], int(sys.argv[3]))
    else:
        main()
