"""Django ORM on documents vs on normalized SQL tables.

    python3 bench/django_documents.py [N] [--markdown FILE]

The same entries (a headline, an address, three contributors) stored two
ways and used through Django 5.2's ORM in the same run, each side in its own
process: djongo's embedded engine with one document per entry
(EmbeddedField + ArrayField, indexes on the paths), and Django's SQLite
backend with the normalized tables SQL wants (an address row per entry, a
row per contributor, indexed foreign keys). Durability is equal: SQLite in
WAL mode with synchronous=FULL, the engine fsyncs each commit; the writes
run in one transaction on both sides.

Workloads: create N entries; list the entries of one city with their
addresses and contributors (djongo: one query; SQLite: select_related +
prefetch_related); find the entries a contributor worked on; change one
contributor's role in 1% of the entries.
"""
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from benchutil import best, django_side, report

HERE = pathlib.Path(__file__).resolve().parent
CITIES = ["Paris", "Lyon", "Berlin", "Oslo", "Rome", "Lima", "Kyiv", "Pune", "Quito", "Hanoi"]


def side(which, n):
    django_side(which, "docbench", HERE)
    from django.db import connection, transaction

    from docbench.models import DocEntry, NAddress, NContributor, NEntry

    def people(i):
        return [("person%d" % ((i * 7 + k) % 500), ("writer", "photos", "editor")[k]) for k in range(3)]

    timings = {}
    t0 = time.perf_counter()
    with transaction.atomic():
        if which == "djongo":
            for i in range(n):
                DocEntry.objects.create(headline="entry %d" % i,
                                        address={"street": "%d Main St" % i, "city": CITIES[i % len(CITIES)]},
                                        contributors=[{"name": a, "role": r} for a, r in people(i)])
        else:
            for i in range(n):
                e = NEntry.objects.create(headline="entry %d" % i)
                NAddress.objects.create(entry=e, street="%d Main St" % i, city=CITIES[i % len(CITIES)])
                NContributor.objects.bulk_create([NContributor(entry=e, name=a, role=r) for a, r in people(i)])
    timings["create %d entries (one transaction)" % n] = time.perf_counter() - t0

    def city_listing():
        if which == "djongo":
            rows = [(e.headline, e.address.street, [c.name for c in e.contributors])
                    for e in DocEntry.objects.filter(address__city="Oslo")]
        else:
            rows = [(e.headline, e.address.street, [c.name for c in e.contributors.all()])
                    for e in NEntry.objects.filter(address__city="Oslo").select_related("address")
                    .prefetch_related("contributors")]
        assert len(rows) == n // len(CITIES) and all(len(r[2]) == 3 for r in rows)

    def by_contributor():
        for k in range(20):
            name = "person%d" % k
            if which == "djongo":
                got = list(DocEntry.objects.filter(contributors__name=name).values_list("id", flat=True))
            else:
                got = list(NEntry.objects.filter(contributors__name=name).distinct().values_list("id", flat=True))
            assert got

    runs = iter(range(100))

    def update_roles():
        # each run writes a new value, so every run does the same work
        role = "lead%d" % next(runs)
        with transaction.atomic():
            if which == "djongo":
                for e in DocEntry.objects.filter(id__lte=n // 100):
                    e.contributors[0].role = role
                    e.save(update_fields=["contributors"])
            else:
                first = list(NContributor.objects.filter(entry_id__lte=n // 100).order_by("id"))[::3]
                for c in first:
                    c.role = role
                    c.save(update_fields=["role"])

    timings["entries of one city, with address and contributors"] = best(city_listing)
    timings["entries of a contributor (20 lookups)"] = best(by_contributor)
    timings["change a contributor's role in 1% of entries"] = best(update_roles)
    print(json.dumps(timings))


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if "--side" in sys.argv:
        side(sys.argv[sys.argv.index("--side") + 1], int(args[-1]))
        return
    n = int(args[0]) if args else 10000
    out = sys.argv[sys.argv.index("--markdown") + 1] if "--markdown" in sys.argv else None
    results = {}
    for which in ("djongo", "sqlite"):
        p = subprocess.run([sys.executable, __file__, "--side", which, str(n)], capture_output=True, text=True,
                           check=True)
        results[which] = json.loads(p.stdout.strip().splitlines()[-1])
    lines = ["# Django ORM on documents (djongo) vs normalized tables (SQLite)", "",
             "`python3 bench/django_documents.py %d`: each entry with an address and three contributors; djongo "
             "keeps them in the entry's document (EmbeddedField, ArrayField), SQLite in an address table and a "
             "contributor table (select_related / prefetch_related to read them). Same machine, same run, "
             "equal durability. Times in ms (best of 3 for reads)." % n, "",
             "| workload | djongo (documents) | SQLite (joins) | djongo / SQLite |", "|---|---:|---:|---:|"]
    for k in results["djongo"]:
        d, s = results["djongo"][k] * 1000, results["sqlite"][k] * 1000
        lines.append("| %s | %.1f | %.1f | %.2fx |" % (k, d, s, d / s if s else float("nan")))
    report(lines, out)


if __name__ == "__main__":
    main()
