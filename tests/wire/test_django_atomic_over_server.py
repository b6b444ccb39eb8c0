"""What Django's own suite found over djongo-server (tests/django_suite/
run_suite.py --transport server) that the embedded engine does not show:
inside an atomic block a server runs a MongoDB transaction, which refuses
every command but CRUD, create and createIndexes, and which a write error
aborts whole when no savepoint is open (djongo-server's savepoints:
test_savepoints_over_server.py).
https://www.mongodb.com/docs/manual/core/transactions-operations/"""
from conftest import run_django


def test_is_usable_inside_atomic(server):
    # Django's TestCase asks is_usable() before its constraint check, inside
    # the test's transaction: a ping sent in the transaction is refused by
    # MongoDB, so the connection looked unusable and the check never ran
    run_django(server.uri, "usable", r'''
from django.contrib.auth.models import Group
from django.db import connection, transaction
with transaction.atomic():
    assert connection.is_usable()  # before the transaction's first command
    Group.objects.create(name="a")
    assert connection.is_usable()
    assert Group.objects.count() == 1  # the transaction goes on
assert Group.objects.count() == 1
# a failed statement aborts a MongoDB transaction (as an error does
# PostgreSQL's, where is_usable()'s SELECT 1 then fails): not usable, so
# TestCase skips its constraint check rather than fail in it
from django.db import IntegrityError
with transaction.atomic():
    try:
        Group.objects.create(name="a")
        raise AssertionError("a duplicate name")
    except IntegrityError:
        pass
    assert not connection.is_usable()
    transaction.set_rollback(True)
assert connection.is_usable()
print("ok")
''')


def test_m2m_add_twice(server):
    # Django adds many-to-many rows with INSERT ... ON CONFLICT DO NOTHING,
    # in a transaction (atomic(savepoint=False)), when the backend ignores
    # conflicts; in a MongoDB transaction the duplicate-key write error
    # aborts the transaction, so on a server djongo does not offer it and
    # Django inserts only the missing rows (_get_missing_target_ids)
    run_django(server.uri, "m2m", r'''
from django.contrib.auth.models import Group, User
from django.db import NotSupportedError, transaction
g = Group.objects.create(name="g")
u = User.objects.create(username="u")
u.groups.add(g)
u.groups.add(g)  # already there, in autocommit: nothing to insert
with transaction.atomic():
    v = User.objects.create(username="v")
    v.groups.add(g)
    v.groups.add(g)  # and inside a transaction
    assert list(v.groups.all()) == [g]
    assert User.objects.count() == 2  # the transaction goes on
assert [list(x.groups.all()) for x in User.objects.order_by("username")] == [[g], [g]]
try:
    Group.objects.bulk_create([Group(name="g")], ignore_conflicts=True)
    raise AssertionError("ignore_conflicts on a server")
except NotSupportedError:
    pass
print("ok")
''')


def test_introspection_inside_atomic(server):
    # loaddata checks the foreign keys it wrote inside its transaction
    # (check_constraints: the tables, their primary keys); MongoDB refuses
    # listCollections and listIndexes in a transaction, and the refusal
    # left the transaction aborted ("Problem installing fixtures")
    run_django(server.uri, "introspect", r'''
import json, os, tempfile
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.db import connection, transaction
with transaction.atomic():
    Group.objects.create(name="a")
    with connection.cursor() as c:
        assert "auth_group" in connection.introspection.table_names(c)
        assert connection.introspection.get_primary_key_column(c, "auth_group") == "id"
    connection.check_constraints()
    assert Group.objects.count() == 1  # the transaction goes on
assert Group.objects.count() == 1
with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "users.json")
    with open(path, "w") as f:
        json.dump([{"model": "auth.user", "pk": 7, "fields": {"username": "w", "password": "x",
                                                             "groups": [Group.objects.get().pk]}}], f)
    call_command("loaddata", path, verbosity=0)
assert [g.name for g in User.objects.get(pk=7).groups.all()] == ["a"]
print("ok")
''')


def test_bulk_create_update_conflicts(server):
    # ON CONFLICT (cols) DO UPDATE checks its target against the table's
    # unique indexes (listIndexes); Django's bulk_create runs in a
    # transaction, where MongoDB refuses listIndexes
    run_django(server.uri, "upsert", r'''
from django.contrib.auth.models import User
User.objects.create(username="u", first_name="A")
User.objects.bulk_create([User(username="u", first_name="B"), User(username="v", first_name="C")],
                         update_conflicts=True, unique_fields=["username"], update_fields=["first_name"])
assert list(User.objects.order_by("username").values_list("username", "first_name")) == [("u", "B"), ("v", "C")]
print("ok")
''')


def test_explain_inside_atomic(server):
    # MongoDB refuses explain in a transaction; QuerySet.explain() inside an
    # atomic block gets the plan from outside it
    run_django(server.uri, "explain", r'''
from django.contrib.auth.models import Group
from django.db import transaction
with transaction.atomic():
    Group.objects.create(name="a")
    plan = Group.objects.filter(name="a").explain()
    assert "queryPlanner" in plan, plan
    assert Group.objects.count() == 1  # the transaction goes on
print("ok")
''')
