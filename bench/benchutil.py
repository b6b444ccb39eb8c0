"""What the Python benchmarks share, so that they time and report alike:
best() and timings() time a read, report() prints the Markdown table and writes
it to the --markdown file."""
import time


def timings(fn, repeat):
    """The times of `repeat` runs of fn(), in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def best(fn, repeat=3):
    """The fastest of `repeat` runs of fn(), in seconds: the run the rest of
    the machine disturbed least."""
    return min(timings(fn, repeat))


def report(lines, md=None):
    text = "\n".join(lines) + "\n"
    print(text)
    if md:
        with open(md, "w") as f:
            f.write(text)


def django_side(which, app, bench_dir, db=None, auto="django.db.models.AutoField"):
    """Configures Django for one side of an ORM benchmark in this process
    and makes its tables: djongo's embedded engine ("djongo"); SQLite in
    WAL mode with synchronous=FULL ("sqlite", or "sqlite-wal": a commit
    fsyncs the log once; the engine fsyncs each commit: equal durability);
    SQLite as Django configures it ("sqlite-default": a rollback journal,
    synchronous=FULL, no PRAGMA of ours); or the database `db` (a DATABASES
    entry) with primary keys of class `auto`. `app` is a models package in
    bench_dir, without migrations."""
    import os
    import sys
    import tempfile

    sys.path.insert(0, str(bench_dir))
    from django.conf import settings

    data = tempfile.mkdtemp(prefix="djongo-bench-")
    if db is None:
        db = ({"ENGINE": "djongo", "NAME": "bench", "HOST": os.path.join(data, "d")} if which == "djongo" else
              {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(data, "bench.sqlite3")})
    settings.configure(INSTALLED_APPS=[app], DATABASES={"default": db}, USE_TZ=True,
                       DEFAULT_AUTO_FIELD=auto, MIGRATION_MODULES={app: None})
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    if which in ("sqlite", "sqlite-wal"):
        with connection.cursor() as c:
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=FULL")
    call_command("migrate", run_syncdb=True, verbosity=0)
