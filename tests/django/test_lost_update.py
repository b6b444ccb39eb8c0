"""Transactions that lose no update: two processes each doing 200 times
"read, +1, save" inside Django's transaction.atomic() on one data
directory end at exactly 400 -- with a retry loop on the retryable
conflict error (OperationalError, WriteConflict 112), and with
select_for_update() and no retry at all. Also: select_for_update() reaches
the SQL (has_select_for_update), and what Django refuses for it."""
import os
import subprocess
import sys

import pytest

N = 200

# Django configured by hand (no project needed): a Counter model in an
# installed app, the table made by the schema editor.
SETUP = r'''
import os, sys, time
import django
from django.conf import settings
settings.configure(
    DATABASES={"default": {"ENGINE": "djongo", "NAME": "lu", "HOST": os.environ["DJONGO_HOST"]}},
    INSTALLED_APPS=["django.contrib.contenttypes"], USE_TZ=False)
django.setup()
from django.db import OperationalError, connection, models, transaction

class Counter(models.Model):
    n = models.IntegerField()
    class Meta:
        app_label = "contenttypes"
        db_table = "counter"
'''

WORKER = SETUP + r'''
mode, n = sys.argv[1], int(sys.argv[2])
go = os.environ["GO"]
print("ready", flush=True)
while not os.path.exists(go):   # both workers start together
    time.sleep(0.005)
retries = 0
for _ in range(n):
    while True:
        try:
            with transaction.atomic():
                if mode == "select_for_update":
                    c = Counter.objects.select_for_update().get(pk=1)
                else:
                    c = Counter.objects.get(pk=1)
                time.sleep(0.001)  # widen the window between the read and the write
                c.n += 1
                c.save(update_fields=["n"])
            break
        except OperationalError as e:
            # the retryable error: the transaction read a snapshot another
            # one's commit made stale; select_for_update never needs it
            if mode == "select_for_update" or getattr(e.__cause__, "code", None) != 112:
                raise
            retries += 1
print("retries", retries, flush=True)
'''

CREATE = SETUP + r'''
with connection.schema_editor() as editor:
    editor.create_model(Counter)
Counter.objects.create(pk=1, n=0)
'''

READ = SETUP + r'''
print(Counter.objects.get(pk=1).n)
'''


def run(script, env, *args):
    p = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.mark.parametrize("mode", ["retry", "select_for_update"])
def test_two_processes_lose_no_update(tmp_path, mode):
    env = dict(os.environ, DJONGO_HOST=str(tmp_path / "data"), GO=str(tmp_path / "go"))
    run(CREATE, env)
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, mode, str(N)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for w in workers:
        assert w.stdout.readline().strip() == "ready", w.stderr.read()
    (tmp_path / "go").touch()
    outs = [w.communicate(timeout=300) for w in workers]
    for w, (out, err) in zip(workers, outs):
        assert w.returncode == 0, err
    assert int(run(READ, env).strip()) == 2 * N
    if mode == "select_for_update":
        assert all("retries 0" in out for out, _ in outs)


SQL = SETUP + r'''
from django.db import NotSupportedError
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
with connection.schema_editor() as editor:
    editor.create_model(Counter)
Counter.objects.create(pk=1, n=0)
with transaction.atomic(), CaptureQueriesContext(connection) as q:
    Counter.objects.select_for_update().get(pk=1)
print("SQL", q.captured_queries[-1]["sql"].split(" -- ")[0])
for kw in ({"nowait": True}, {"skip_locked": True}, {"of": ("self",)}, {"no_key": True}):
    try:
        with transaction.atomic():
            list(Counter.objects.select_for_update(**kw))
    except NotSupportedError:
        print("refused", sorted(kw))
try:
    list(Counter.objects.select_for_update())
except TransactionManagementError:
    print("outside a transaction: refused")
'''


def test_select_for_update_reaches_the_sql(tmp_path):
    out = run(SQL, dict(os.environ, DJONGO_HOST=str(tmp_path / "data")))
    sql = [line for line in out.splitlines() if line.startswith("SQL ")][0]
    assert 'FROM "counter" WHERE "counter"."id" = ' in sql and sql.endswith(" FOR UPDATE")
    for kw in ("nowait", "skip_locked", "of", "no_key"):
        assert "refused ['%s']" % kw in out
    assert "outside a transaction: refused" in out
