"""Django's GeneratedField with db_persist=True (a stored generated column)
and db_persist=False (VIRTUAL: djongo computes it on each write of the row,
as a stored one) on djongo and on SQLite side by side: every write goes to both databases
and the generated values read back must be the same -- create (the value
comes back through RETURNING), save, update() with constants and F(),
bulk_create, bulk_update, filtering and ordering on a generated column, and
a migration that adds one to a table with rows and removes it again.

https://docs.djangoproject.com/en/5.2/ref/models/fields/#generatedfield
Run in a process of its own (test_models.py); models: genapp/models.py."""
import side_by_side

side_by_side.configure("genapp")

import pytest  # noqa: E402
from django.db import connections, models  # noqa: E402
from django.db.models import F  # noqa: E402
from django.db.utils import ProgrammingError  # noqa: E402
from django.test import TestCase  # noqa: E402
from genapp.models import Item, Plain  # noqa: E402

DBS = side_by_side.DBS
GEN = ("total", "label", "size", "positive", "doubled")


@pytest.fixture(scope="module", autouse=True)
def test_databases():
    side_by_side.create_test_databases()


def rows(db):
    return list(Item.objects.using(db).order_by("pk").values_list("pk", "a", "b", "name", *GEN))


class Generated(TestCase):
    databases = set(DBS)

    def both(self, write):
        """write(db) on each database; the stored rows, generated columns
        included, are then the same."""
        for db in DBS:
            write(db)
        got, want = rows("default"), rows("lite")
        self.assertEqual(got, want)
        self.assertTrue(want)
        return got

    def test_create_returns_the_computed_values(self):
        for db in DBS:
            it = Item.objects.using(db).create(a=2, b=3, name="Ann")
            self.assertEqual((it.total, it.label, it.size, it.positive, it.doubled), (5, "ann-x", "small", True, 4), db)
        got = self.both(lambda db: Item.objects.using(db).create(a=20, b=None, name="BOB"))
        self.assertEqual(got[-1][4:], (None, "bob-x", "big", True, 40))

    def test_save_recomputes(self):
        def write(db):
            it = Item.objects.using(db).create(a=1, b=1, name="x")
            it.a, it.name = -4, "Y"
            it.save()
            it.refresh_from_db()
            self.assertEqual((it.total, it.label, it.positive, it.doubled), (-3, "y-x", False, -8), db)
        self.both(write)

    def test_update_with_constants_and_f(self):
        def write(db):
            for i in range(4):
                Item.objects.using(db).create(a=i, b=i * 10, name="n%d" % i)
            Item.objects.using(db).filter(a__gte=2).update(b=F("b") + F("a"), a=F("a") * 6)
            Item.objects.using(db).filter(a=0).update(name="Zero")
            Item.objects.using(db).filter(a=1).update(b=None)
        got = self.both(write)
        self.assertEqual([r[4] for r in got], [0, None, 34, 51])

    def test_bulk_create_and_bulk_update(self):
        def write(db):
            objs = Item.objects.using(db).bulk_create(
                [Item(a=i, b=1, name="B%d" % i) for i in (5, 11, 0)])
            for o in objs:
                o.a, o.name = o.a + 1, o.name + "z"
            Item.objects.using(db).bulk_update(objs, ["a", "name"])
        got = self.both(write)
        self.assertEqual([(r[4], r[5], r[6]) for r in got], [(7, "b5z-x", "small"), (13, "b11z-x", "big"),
                                                               (2, "b0z-x", "small")])

    def test_filter_and_order_by_generated(self):
        for db in DBS:
            for a, b in ((3, 4), (10, -1), (1, 1)):
                Item.objects.using(db).create(a=a, b=b, name="q")
        got, want = ([list(Item.objects.using(db).filter(total__gt=2).order_by("-total").values_list("a", "total"))
                      for db in DBS])
        self.assertEqual(got, want)
        self.assertEqual(got, [(10, 9), (3, 7)])

    def test_writing_a_generated_column_is_refused(self):
        Item.objects.create(a=1, b=1, name="w")
        with connections["default"].cursor() as c, self.assertRaisesMessage(
                ProgrammingError, 'cannot UPDATE generated column "total"'):
            c.execute('UPDATE "genapp_item" SET "total" = %s', [9])

    def test_introspection_reports_it(self):
        with connections["default"].cursor() as c:
            desc = connections["default"].introspection.get_table_description(c, Item._meta.db_table)
        self.assertEqual({d.name for d in desc if d.generated}, set(GEN))


def test_migration_adds_and_removes_a_generated_field():
    """AddField of a GeneratedField to a table with rows (its values
    computed for them), the writes that follow, RemoveField -- Django's
    migration operations, on both databases."""
    from django.apps import apps
    from django.db import migrations
    from django.db.migrations.state import ProjectState

    before = ProjectState.from_apps(apps)
    add = migrations.AddField("Plain", "triple", models.GeneratedField(
        expression=F("a") * 3, output_field=models.IntegerField(), db_persist=True))
    added = before.clone()
    add.state_forwards("genapp", added)
    remove = migrations.RemoveField("Plain", "triple")
    removed = added.clone()
    remove.state_forwards("genapp", removed)
    Triple = added.apps.get_model("genapp", "Plain")
    for db in DBS:
        Plain.objects.using(db).all().delete()
        Plain.objects.using(db).create(a=2)
        with connections[db].schema_editor() as editor:
            add.database_forwards("genapp", editor, before, added)
        Triple.objects.using(db).create(a=5)
        Triple.objects.using(db).filter(a=2).update(a=4)
    got = [sorted(Triple.objects.using(db).values_list("a", "triple")) for db in DBS]
    assert got[0] == got[1] == [(4, 12), (5, 15)]
    for db in DBS:
        with connections[db].schema_editor() as editor:
            remove.database_forwards("genapp", editor, added, removed)
        Plain.objects.using(db).create(a=7)
        with connections[db].cursor() as c:
            desc = connections[db].introspection.get_table_description(c, Plain._meta.db_table)
        assert "triple" not in {d.name for d in desc}
    assert [sorted(Plain.objects.using(db).values_list("a", flat=True)) for db in DBS] == [[4, 5, 7]] * 2
