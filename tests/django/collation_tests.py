"""Collations on djongo and on SQLite side by side: a CharField's
db_collation ("nocase", "binary": the names SQLite knows) decides
filters and ordering on that column, Collate() those of an expression, and
the column's collation is introspected and follows AlterField. What SQLite
lacks (ICU locales, a UNIQUE under a case-blind collation, which djongo
refuses) is checked on djongo alone.

https://docs.djangoproject.com/en/5.2/ref/models/fields/#db-collation
https://docs.djangoproject.com/en/5.2/ref/models/database-functions/#collate
Run in a process of its own (test_models.py); models: collapp/models.py."""
import side_by_side

side_by_side.configure("collapp")

import pytest  # noqa: E402
from collapp.models import Person  # noqa: E402
from django.db import NotSupportedError, connections, models  # noqa: E402
from django.db.models import F, Value  # noqa: E402
from django.db.models.functions import Collate  # noqa: E402
from django.test import TestCase  # noqa: E402

DBS = side_by_side.DBS


@pytest.fixture(scope="module", autouse=True)
def test_databases():
    side_by_side.create_test_databases()


class Collations(TestCase):
    databases = set(DBS)

    @classmethod
    def setUpTestData(cls):
        for db in DBS:
            for i, (name, code, note) in enumerate((("ANDREW", "a", "x"), ("andrew", "A", "Y"), ("Bob", "b", None),
                                                    ("bob", "B", "y"), ("Cy", "c", "X"))):
                Person.objects.using(db).create(id=i + 1, name=name, code=code, note=note)

    def same(self, make):
        got, want = (list(make(db)) for db in DBS)
        self.assertEqual(got, want)
        self.assertTrue(want)
        return got

    def test_filter_on_a_nocase_column(self):
        got = self.same(lambda db: Person.objects.using(db).filter(name="Andrew").order_by("id")
                        .values_list("id", flat=True))
        self.assertEqual(got, [1, 2])
        self.same(lambda db: Person.objects.using(db).filter(name__in=["BOB", "cy"]).order_by("id")
                  .values_list("id", flat=True))
        self.same(lambda db: Person.objects.using(db).exclude(name="bob").order_by("id").values_list("id", flat=True))
        self.same(lambda db: Person.objects.using(db).filter(name__gt="b").order_by("id").values_list("id", flat=True))

    def test_filter_on_a_binary_column(self):
        got = self.same(lambda db: Person.objects.using(db).filter(code="a").values_list("id", flat=True))
        self.assertEqual(got, [1])

    def test_order_by_a_collated_column(self):
        self.same(lambda db: Person.objects.using(db).order_by("name", "id").values_list("id", flat=True))
        self.same(lambda db: Person.objects.using(db).order_by("-name", "-code").values_list("id", flat=True))

    def test_collate_expression(self):
        self.same(lambda db: Person.objects.using(db).filter(note=Collate(Value("x"), "nocase")).order_by("id")
                  .values_list("id", flat=True))
        self.same(lambda db: Person.objects.using(db).order_by(Collate(F("note"), "nocase").desc(), "id")
                  .values_list("id", flat=True))

    def test_icu_collation_and_refusals(self):
        got = list(Person.objects.order_by(Collate("code", "sv-u-ks-level2"), "id").values_list("code", flat=True))
        self.assertEqual(got, ["a", "A", "b", "B", "c"])
        with self.assertRaisesMessage(NotSupportedError, 'collation "klingon"'):
            list(Person.objects.order_by(Collate("code", "klingon")))
        with self.assertRaisesMessage(NotSupportedError, "non-deterministic collation"):
            list(Person.objects.values("name").annotate(n=models.Count("id")))

    def test_introspection_reports_the_collation(self):
        with connections["default"].cursor() as c:
            desc = connections["default"].introspection.get_table_description(c, Person._meta.db_table)
        self.assertEqual({d.name: d.collation for d in desc}, {"id": None, "name": "nocase", "code": "binary",
                                                                "note": None})

    def test_only_collated_columns_take_the_vendor_hook(self):
        """Django's compiler calls as_djongo when a node has one, as_sql
        otherwise: a column without db_collation has none (no call of ours
        per column per query), a collated one has the collating method;
        a query holding one pickles and still filters by the collation."""
        import pickle

        plain = Person._meta.get_field("id").get_col(Person._meta.db_table)
        collated = Person._meta.get_field("name").get_col(Person._meta.db_table)
        self.assertIsNone(plain.as_djongo)
        self.assertIsNotNone(collated.as_djongo)
        qs = Person.objects.using("default").filter(name="Andrew").order_by("id").values_list("id", flat=True)
        self.assertEqual(list(qs), [1, 2])  # compiled: its Cols hold their as_djongo now
        again = Person.objects.using("default").values_list("id", flat=True)
        again.query = pickle.loads(pickle.dumps(qs.query))
        self.assertEqual([r["id"] for r in again], [1, 2])  # (a query set this way answers dicts)


def test_alter_field_collation():
    """AlterField from no collation to nocase and back, as Django's schema
    test does: the column compares case-insensitively, then again exactly."""
    old = Person._meta.get_field("note")
    ci = models.TextField(null=True, db_collation="nocase")
    ci.set_attributes_from_name("note")
    ci.model = Person
    Person.objects.create(id=10, name="n", code="n10", note="ANDREW")
    with connections["default"].schema_editor() as editor:
        editor.alter_field(Person, old, ci, strict=True)
    try:
        with connections["default"].cursor() as c:
            c.execute('SELECT "id" FROM "collapp_person" WHERE "note" = (%s COLLATE "nocase")', ["andrew"])
            assert c.fetchall() == [(10,)]
            desc = connections["default"].introspection.get_table_description(c, Person._meta.db_table)
        assert {d.name: d.collation for d in desc}["note"] == "nocase"
    finally:
        with connections["default"].schema_editor() as editor:
            editor.alter_field(Person, ci, old, strict=True)
    with connections["default"].cursor() as c:
        desc = connections["default"].introspection.get_table_description(c, Person._meta.db_table)
    assert {d.name: d.collation for d in desc}["note"] is None
    Person.objects.filter(id=10).delete()


def test_unique_under_a_case_blind_collation_is_refused():
    field = models.CharField(max_length=5, db_collation="nocase", unique=True, null=True)
    field.set_attributes_from_name("tag")
    field.model = Person
    with pytest.raises(NotSupportedError, match="non-deterministic collation"):
        with connections["default"].schema_editor() as editor:
            editor.add_field(Person, field)

