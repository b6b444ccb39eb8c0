"""The backend's own contracts, outside Django's suite: how settings become a
HOST for the driver (Django's keys and the original djongo's CLIENT keys),
and that the djongo logger and connection.queries carry each statement's
MongoDB commands."""
import os
import pathlib
import subprocess
import sys

from djongo.base import host_for_settings

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_host_rule_from_settings(tmp_path):
    assert host_for_settings({"HOST": str(tmp_path)}) == str(tmp_path)
    assert host_for_settings({"HOST": "file:" + str(tmp_path)}) == str(tmp_path)
    assert host_for_settings({"HOST": "./var/data"}) == "./var/data"
    assert host_for_settings({}) == "mongodb://localhost:27017/"  # the original djongo's default
    assert host_for_settings({"HOST": "db.example.com", "PORT": 27018, "USER": "u@x", "PASSWORD": "p:w"}) == \
        "mongodb://u%40x:p%3Aw@db.example.com:27018/"
    assert host_for_settings({"HOST": "mongodb://h1,h2/?replicaSet=rs"}) == "mongodb://h1,h2/?replicaSet=rs"
    # the original djongo's CLIENT dict: host/port/credentials and any URI option
    assert host_for_settings({"CLIENT": {"host": "h", "port": 1, "username": "a", "password": "b",
                                         "authSource": "admin", "tls": True}}) == \
        "mongodb://a:b@h:1/?authSource=admin&tls=true"


SCRIPT = r'''
import io, logging, os, sys
sys.path.insert(0, os.environ["EXAMPLE"])
os.environ["DJANGO_SETTINGS_MODULE"] = "publishing.settings"
import django
django.setup()
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
call_command("migrate", verbosity=0)
from blog.models import Blog
stream = io.StringIO()
log = logging.getLogger("djongo")
log.addHandler(logging.StreamHandler(stream))
log.setLevel(logging.DEBUG)
Blog.objects.create(name="b1")
with CaptureQueriesContext(connection) as q:
    assert Blog.objects.filter(name__istartswith="B").count() == 1
print("QUERY", q.captured_queries[-1]["sql"])
print("MONGODB", q.captured_queries[-1]["mongodb"])
print("LOG", stream.getvalue().strip().splitlines()[0])
'''


LAZY_SCRIPT = r'''
import sys
from django.conf import settings
settings.configure(DATABASES={"default": {"ENGINE": "djongo", "NAME": "t", "HOST": sys.argv[1]}})
import django
django.setup()
from django.db import connection
with connection.cursor() as c:
    c.execute("SELECT 1")
    assert c.fetchall() == [(1,)]
import djongo.models  # DjongoManager and its djongo.mongo.Collection
print("PYMONGO", "pymongo" in sys.modules)
'''


def test_backend_does_not_import_pymongo(tmp_path):
    """The backend, its models package and djongo.mongo load without pymongo:
    importing it loads its whole client (a hundred-odd modules, some 8,000
    objects), which each full collection of the garbage collector would walk
    in every Django process on djongo; djongo.mongo imports pymongo's result
    classes when it makes one (tests/django/surface_tests.py: they are
    pymongo's)."""
    p = subprocess.run([sys.executable, "-c", LAZY_SCRIPT, str(tmp_path / "d")], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert "PYMONGO False" in p.stdout.splitlines()


INSERT_SCRIPT = r'''
import sys
from django.conf import settings
settings.configure(DATABASES={"default": {"ENGINE": "djongo", "NAME": "t", "HOST": sys.argv[1]}},
                   INSTALLED_APPS=["django.contrib.contenttypes"])
import django
django.setup()
from django.core.management import call_command
from django.db import connection
from django.db.models import Value
from django.db.models.functions import Lower
from django.db.models.sql import compiler as generic
from django.db.models.sql.subqueries import InsertQuery
from django.contrib.contenttypes.models import ContentType as CT
call_command("migrate", verbosity=0)

def both(objs):
    fields = [f for f in CT._meta.local_concrete_fields if f is not CT._meta.pk]
    q = InsertQuery(CT)
    q.insert_values(fields, objs)
    ours = connection.ops.compiler("SQLInsertCompiler")(q, connection, "default")
    theirs = generic.SQLInsertCompiler(q, connection, "default")
    ours.returning_fields = theirs.returning_fields = CT._meta.db_returning_fields
    return type(ours), ours.as_sql(), theirs.as_sql()

calls = []
field_as_sql = generic.SQLInsertCompiler.field_as_sql
generic.SQLInsertCompiler.field_as_sql = lambda self, *a: calls.append(type(self)) or field_as_sql(self, *a)
kind, ours, theirs = both([CT(app_label="a%d" % i, model="m") for i in range(3)])
print("PLAIN", kind is not generic.SQLInsertCompiler, ours == theirs, [c for c in calls if c is kind] == [])
del calls[:]
kind, ours, theirs = both([CT(app_label="a", model="m"), CT(app_label=Lower(Value("X")), model="m")])
print("EXPR", ours == theirs, "LOWER" in ours[0][0], len([c for c in calls if c is kind]) == 4)
made = CT.objects.bulk_create([CT(app_label="b%d" % i, model="m") for i in range(3)])
print("IDS", [o.pk for o in made] == list(CT.objects.filter(app_label__startswith="b").order_by("pk")
                                          .values_list("pk", flat=True)))
'''


def test_insert_compiler_gives_djangos_sql(tmp_path):
    """djongo.compiler's SQLInsertCompiler: rows of plain values compiled
    without field_as_sql() per value, to the SQL and parameters Django's own
    compiler gives; a row holding an expression (Lower(...)) takes Django's
    way, the same SQL too; bulk_create's ids come back in order."""
    p = subprocess.run([sys.executable, "-c", INSERT_SCRIPT, str(tmp_path / "d")], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert "PLAIN True True True" in out and "EXPR True True True" in out and "IDS True" in out, p.stdout


def test_logger_and_queries_carry_mongodb_commands(tmp_path):
    env = dict(os.environ, DJONGO_HOST=str(tmp_path / "d"), EXAMPLE=str(ROOT / "example"))
    p = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    query = [line for line in p.stdout.splitlines() if line.startswith("QUERY")][0]
    # Django-like: the parameters written in as SQL literals, no MongoDB in the SQL
    assert """ILIKE 'B%' ESCAPE""" in query and "MongoDB" not in query and "$regex" not in query
    mongodb = [line for line in p.stdout.splitlines() if line.startswith("MONGODB")][0]
    assert '"$regex" : "^B", "$options" : "is"' in mongodb
    log = [line for line in p.stdout.splitlines() if line.startswith("LOG")][0]
    assert 'INSERT INTO "blog_blog"' in log and '"insert" : "blog_blog"' in log


# the example site's Django, set up and migrated (EXAMPLE: its folder)
EXAMPLE_SETUP = r'''
import os, sys
sys.path.insert(0, os.environ["EXAMPLE"])
os.environ["DJANGO_SETTINGS_MODULE"] = "publishing.settings"
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
'''


KEY_ID_SCRIPT = EXAMPLE_SETUP + r'''
from django.db import connection
from blog.models import Blog
first = Blog.objects.create(name="k1")
Blog.objects.bulk_create([Blog(name="k2"), Blog(name="k3")])
Blog.objects.create(pk=50, name="k50")
Blog.objects.filter(pk=first.pk).update(tagline="t")
connection.ensure_connection()
db = connection.connection
docs = db.command({"find": "blog_blog", "filter": {}, "projection": {"id": 1}})["cursor"]["firstBatch"]
print("IDS", [(d["_id"], d["id"]) for d in docs])
print("SIZES", db.command({"collStats": "blog_blog"})["indexSizes"])
Blog.objects.filter(pk__in=[first.pk, 50]).delete()
print("LEFT", list(Blog.objects.values_list("pk", flat=True)), Blog.objects.get(pk=first.pk + 1).name)
'''


def test_autofield_rows_have_their_key_as_id(tmp_path):
    """A model with Django's integer AutoField: each row's _id is its key
    (src/compile/ddl.c asks for the table's _id index record-keyed, and
    src/exec/exec.c gives a row its key as its _id, a given key too), so
    that the _id index and the key's have no entries of their own: a row is
    its record and its other indexes' entries (src/engine/storage/ridkey.c)."""
    env = dict(os.environ, DJONGO_HOST=str(tmp_path / "d"), EXAMPLE=str(ROOT / "example"))
    p = subprocess.run([sys.executable, "-c", KEY_ID_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    out = dict(line.split(" ", 1) for line in p.stdout.splitlines())
    assert out["IDS"] == "[(1, 1), (2, 2), (3, 3), (50, 50)]", p.stdout
    sizes = eval(out["SIZES"])
    assert sizes["_id_"] == 0 and sizes["blog_blog_id_pk"] == 0 and sizes["blog_blog_name_uniq"] > 0, sizes
    assert out["LEFT"] == "[2, 3] k2", p.stdout


SCHEMA_SCRIPT = r'''
import os, sys
sys.path.insert(0, os.environ["EXAMPLE"])
os.environ["DJANGO_SETTINGS_MODULE"] = "publishing.settings"
import django
from django.conf import settings
django.setup()
from django.db import connection, models, utils

class Note(models.Model):   # no migration ever creates this table
    text = models.CharField(max_length=20)
    class Meta:
        app_label = "blog"
        db_table = "unmigrated_note"

class Other(models.Model):  # nor this one
    text = models.CharField(max_length=20)
    class Meta:
        app_label = "blog"
        db_table = "other_note"

a = Note.objects.create(text="a")
b = Note.objects.create(text="b")
print("IDS", a.pk, b.pk, Note.objects.get(pk=b.pk).text, Note.objects.count())
connection.close()
connection.settings_dict["ENFORCE_SCHEMA"] = True
Note.objects.create(text="c")  # its first INSERT gave it an entry: a table now
print("STRICT NOTE ok")
try:
    Other.objects.create(text="c")
    print("STRICT accepted")
except utils.ProgrammingError as e:
    print("STRICT", e)
'''


def test_enforce_schema(tmp_path):
    """ENFORCE_SCHEMA False (the default): a model works without migrations,
    integer ids included. True: writes to a table no migration made fail."""
    env = dict(os.environ, DJONGO_HOST=str(tmp_path / "d"), EXAMPLE=str(ROOT / "example"))
    p = subprocess.run([sys.executable, "-c", SCHEMA_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "IDS 1 2 b 2" in p.stdout
    assert "STRICT NOTE ok" in p.stdout and "STRICT no such table: other_note" in p.stdout


def test_decimal_converter_rounds_columns_not_computed_values():
    """A DecimalField column's value comes back to its decimal places; a
    computed one (Sum("price", default=Pi())) as the database gave it, as
    Django's SQLite backend converts them."""
    script = r'''
from decimal import Decimal
from django.conf import settings
settings.configure()
from django.db.models import DecimalField, Value
from django.db.models.expressions import Col
from djongo.operations import DatabaseOperations
ops = DatabaseOperations(None)
f = DecimalField(max_digits=6, decimal_places=2)
print(ops.convert_decimalfield_value(3.14159265, Col("t", f), None),
      ops.convert_decimalfield_value(3.14159265, Value(Decimal(1), output_field=f), None))
'''
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["3.14", "3.14159265"], p.stdout


CURSOR_SCRIPT = EXAMPLE_SETUP + r'''
from django.db import connection, transaction, utils
from blog.models import Blog
b = Blog.objects.create(name="b1")
# Python per statement: Django's wrapper enters connection.wrap_database_errors
# when the cursor is made, at execute and at each fetch (a get() fetches
# twice), each fetch through a closure made for the call
entered = []
enter, call = utils.DatabaseErrorWrapper.__enter__, utils.DatabaseErrorWrapper.__call__
utils.DatabaseErrorWrapper.__enter__ = lambda self: (entered.append(1), enter(self))[1]
utils.DatabaseErrorWrapper.__call__ = lambda self, f: (entered.append(2), call(self, f))[1]
assert Blog.objects.get(pk=b.pk).name == "b1"
print("WRAPPERS", entered)
utils.DatabaseErrorWrapper.__enter__, utils.DatabaseErrorWrapper.__call__ = enter, call
# errors still become Django's, the connection marked as Django's wrapper does
with connection.cursor() as c:
    try:
        c.execute("SELEC 1")
    except utils.ProgrammingError as e:
        print("EXECUTE", type(e.__cause__).__module__, connection.errors_occurred)
connection.errors_occurred = False
c = connection.cursor()
c.execute('SELECT "name" FROM "blog_blog"')
print("ROWS", c.fetchone(), c.fetchmany(5), c.fetchall(), c.rowcount, c.description[0][0])
c.close()
for fetch in (c.fetchone, lambda: c.fetchmany(1), c.fetchall):
    try:
        fetch()
    except utils.InterfaceError as e:
        print("FETCH", type(e.__cause__).__module__, connection.errors_occurred)
# execute wrappers still see each statement
seen = []
with connection.execute_wrapper(lambda execute, sql, params, many, context: (seen.append(sql), execute(sql, params, many, context))[1]):
    Blog.objects.count()
print("WRAPPED", len(seen))
# a broken atomic block refuses statements, as Django's wrapper does
try:
    with transaction.atomic():
        connection.needs_rollback = True
        Blog.objects.count()
except Exception as e:
    print("BROKEN", type(e).__name__)
'''


def test_cursor_wrapper_less_python_same_behaviour(tmp_path):
    """make_cursor's wrapper (djongo/cursor.py): a get() enters the error
    wrapper once (Django's cursor() does), not again at execute and per
    fetch with a closure each; errors, execute wrappers and broken transactions
    behave as with Django's own CursorWrapper."""
    # (DEBUG off: the cursor is then make_cursor's, as in production)
    env = dict(os.environ, DJONGO_HOST=str(tmp_path / "d"), EXAMPLE=str(ROOT / "example"), DJANGO_DEBUG="0")
    p = subprocess.run([sys.executable, "-c", CURSOR_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert "WRAPPERS [1]" in out, out
    assert "EXECUTE djongo._exceptions True" in out, out
    assert "ROWS ('b1',) [] [] 1 name" in out, out
    assert out.count("FETCH djongo._exceptions True") == 3, out
    assert "WRAPPED 1" in out and "BROKEN TransactionManagementError" in out, out
