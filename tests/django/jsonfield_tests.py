"""Django's own models.JSONField on djongo's embedded engine (djongo/jsonfield.py):
stored as BSON, JSON null kept apart from SQL NULL, key paths as JSON
reads them, has_key*, key__isnull, key lookups, contains / contained_by,
ordering and annotations by key, JSONObject, encoder/decoder, inspectdb.
Each query's answer is what Django's other backends give (its docs:
https://docs.djangoproject.com/en/5.2/topics/db/queries/#querying-jsonfield).
Run in a process of its own (test_models.py); models: jsonapp/models.py."""
import datetime
import io
import pathlib
import sys
import tempfile
import uuid

from django.conf import settings

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
if not settings.configured:
    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "jsonapp"],
        DATABASES={"default": {"ENGINE": "djongo", "NAME": "jsonapp",
                               "HOST": tempfile.mkdtemp(prefix="djongo-jsonfield-")}},
        USE_TZ=True, DEFAULT_AUTO_FIELD="django.db.models.AutoField", MIGRATION_MODULES={"jsonapp": None},
        SECRET_KEY="jsonfield-tests")
    import django

    django.setup()

import pytest  # noqa: E402
from bson import json_util  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import IntegrityError, connection  # noqa: E402
from django.db.models import Count, F, JSONField, Q, Value  # noqa: E402
from django.db.models.fields.json import KT, KeyTransform  # noqa: E402
from django.db.models.functions import JSONObject, Upper  # noqa: E402
from django.test import TestCase  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from djongo import driver  # noqa: E402
from jsonapp.models import Doc, Strict  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def test_database():
    """One test database for the module; each TestCase rolls back its own."""
    setup_test_environment()
    connection.creation.create_test_db(verbosity=0, autoclobber=True)


def names(qs):
    return sorted(qs.values_list("name", flat=True))


def stored(flt):
    """The names of the documents a MongoDB filter matches, asked of the
    collection itself."""
    reply = connection.command({"find": Doc._meta.db_table, "filter": flt, "projection": {"name": 1}})
    return sorted(d["name"] for d in reply["cursor"]["firstBatch"])


class StorageTests(TestCase):
    def test_documents_and_arrays_not_json_text(self):
        Doc.objects.create(name="d", value={"a": {"b": [1, "x", None]}, "n": 1.5})
        Doc.objects.create(name="l", value=[1, {"k": True}])
        Doc.objects.create(name="s", value="text")
        assert stored({"value.n": 1.5}) == ["d"]  # MongoDB queries see inside
        assert stored({"value.a.b": "x"}) == ["d"]
        assert stored({"value": {"$size": 2}}) == ["l"]
        assert stored({"value": "text"}) == ["s"]  # a JSON string is a string, not '"text"'
        assert Doc.objects.get(name="d").value == {"a": {"b": [1, "x", None]}, "n": 1.5}
        assert Doc.objects.get(name="l").value == [1, {"k": True}]

    def test_json_null_and_sql_null_are_kept_apart(self):
        Doc.objects.create(name="sql", value=None)
        Doc.objects.create(name="json", value=Value(None, JSONField()))
        Doc.objects.create(name="key", value={"a": None})
        assert names(Doc.objects.filter(value=None)) == ["json"]
        assert names(Doc.objects.filter(value__isnull=True)) == ["sql"]
        assert names(Doc.objects.filter(value__isnull=False)) == ["json", "key"]
        assert names(Doc.objects.exclude(value=None)) == ["key", "sql"]
        assert names(Doc.objects.filter(value__a=None)) == ["key"]
        # stored: SQL NULL is null as in every column, a top-level JSON null
        # BSON undefined; both read back as None
        assert stored({"value": {"$type": "null"}}) == ["sql"]
        assert stored({"value": {"$type": "undefined"}}) == ["json"]
        assert Doc.objects.get(name="json").value is None and Doc.objects.get(name="sql").value is None
        # an UPDATE sets either one
        Doc.objects.filter(name="sql").update(value=Value(None, JSONField()))
        Doc.objects.filter(name="json").update(value=None)
        assert names(Doc.objects.filter(value=None)) == ["sql"]
        assert names(Doc.objects.filter(value__isnull=True)) == ["json"]

    def test_not_null_column_takes_json_null_not_sql_null(self):
        Strict.objects.create(value=Value(None, JSONField()))
        assert Strict.objects.filter(value=None).count() == 1
        reply = connection.command({"count": Strict._meta.db_table, "query": {"value": {"$type": "undefined"}}})
        assert reply["n"] == 1
        with pytest.raises(IntegrityError):
            Strict.objects.create(value=None)

    def test_encoder_and_decoder(self):
        u = uuid.UUID("12345678-1234-5678-1234-567812345678")
        when = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
        d = Doc.objects.create(name="c", custom={"uuid": u, "when": when})
        # stored as the encoder's JSON (text for a UUID and a datetime)...
        assert stored({"custom.uuid": str(u)}) == ["c"]
        # ...and read back through the decoder, as on Django's other backends
        got = Doc.objects.get(pk=d.pk).custom
        assert got["uuid"] == u and got["when"] == "2024-05-06T07:08:09Z"

    def test_stored_as_json_data(self):
        # what JSON makes of a value, as Django's other backends store it:
        # keys as text, tuples as lists; what JSON cannot hold is refused
        Doc.objects.create(name="t", value={1: (1, 2)})
        assert stored({"value.1": [1, 2]}) == ["t"]
        assert Doc.objects.get(name="t").value == {"1": [1, 2]}
        with pytest.raises(TypeError):
            Doc.objects.create(name="x", value={"when": datetime.date(2024, 1, 1)})


class QueryTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        for name, value in (
                ("sqlnull", None),
                ("empty", {}),
                ("list", [1, [2], {"a": "b"}]),
                ("obj", {"a": "b", "c": 14, "d": ["e", {"f": "g"}], "j": None, "k": {"l": "m"}, "n": [None, 1],
                         "1": "one", "dot.ted": 1, "$x": 2, "it's": "q"}),
                ("obj2", {"a": "B", "c": 3, "k": {"l": "n"}, "tags": ["x", "y"]}),
                ("arrdocs", [{"a": "b"}, {"c": 14}]),
                ("num", 7)):
            Doc.objects.create(name=name, value=value)

    def test_key_and_index_paths(self):
        assert names(Doc.objects.filter(value__a="b")) == ["obj"]
        assert names(Doc.objects.filter(value__k__l="m")) == ["obj"]
        assert names(Doc.objects.filter(value__d__0="e")) == ["obj"]
        assert names(Doc.objects.filter(value__d__1__f="g")) == ["obj"]
        assert names(Doc.objects.filter(value__2__a="b")) == ["list"]
        assert names(Doc.objects.filter(value__1=[2])) == ["list"]
        # a path is the stored JSON's: it does not reach through an array
        # (MongoDB's "value.a" would match the array of documents)
        assert names(Doc.objects.filter(value__a__isnull=False)) == ["obj", "obj2"]
        assert names(Doc.objects.filter(value__0__a="b")) == ["arrdocs"]
        assert names(Doc.objects.filter(value__tags="x")) == []  # an array is not its element
        # any key is a key: a dot, a dollar, a quote
        assert names(Doc.objects.filter(**{"value__dot.ted": 1})) == ["obj"]
        assert names(Doc.objects.filter(**{"value__$x": 2})) == ["obj"]
        assert names(Doc.objects.filter(**{"value__it's": "q"})) == ["obj"]

    def test_has_key_has_keys_has_any_keys(self):
        assert names(Doc.objects.filter(value__has_key="a")) == ["obj", "obj2"]
        assert names(Doc.objects.filter(value__has_key="j")) == ["obj"]  # a key holding null is there
        assert names(Doc.objects.filter(value__has_key="1")) == ["obj"]  # a digit key is a key here
        assert names(Doc.objects.filter(value__has_key="dot.ted")) == ["obj"]
        assert names(Doc.objects.filter(value__k__has_key="l")) == ["obj", "obj2"]
        assert names(Doc.objects.filter(value__d__1__has_key="f")) == ["obj"]
        assert names(Doc.objects.filter(value__has_key=KT("value__k__l"))) == ["obj", "obj2"]
        assert names(Doc.objects.filter(value__has_keys=["a", "tags"])) == ["obj2"]
        assert names(Doc.objects.filter(value__has_any_keys=["tags", "j"])) == ["obj", "obj2"]
        assert names(Doc.objects.exclude(value__has_key="a")) == ["arrdocs", "empty", "list", "num", "sqlnull"]

    def test_key_isnull(self):
        assert names(Doc.objects.filter(value__j__isnull=True)) == ["arrdocs", "empty", "list", "num", "obj2",
                                                                   "sqlnull"]
        assert names(Doc.objects.filter(value__j__isnull=False)) == ["obj"]
        assert names(Doc.objects.filter(value__2__isnull=False)) == ["list"]  # a digit: an index here
        assert names(Doc.objects.filter(value__d__5__isnull=True, value__has_key="d")) == ["obj"]

    def test_key_null_is_unknown_where_the_key_is_absent(self):
        # SQL's three values, as Django's other backends: exclude() keeps
        # only rows where the key holds something else
        assert names(Doc.objects.filter(value__j=None)) == ["obj"]
        assert names(Doc.objects.exclude(value__j=None)) == []
        assert names(Doc.objects.filter(value__a="b", value__j=None)) == ["obj"]

    def test_key_lookups(self):
        assert names(Doc.objects.filter(value__a__iexact="B")) == ["obj", "obj2"]
        assert names(Doc.objects.filter(value__k__l__icontains="M")) == ["obj"]
        assert names(Doc.objects.filter(value__k__l__startswith="n")) == ["obj2"]
        assert names(Doc.objects.filter(value__a__in=["b", "z"])) == ["obj"]
        assert names(Doc.objects.filter(value__c__in=[3, 14])) == ["obj", "obj2"]
        assert names(Doc.objects.filter(value__c__lt=10)) == ["obj2"]
        assert names(Doc.objects.filter(value__c__gte=3)) == ["obj", "obj2"]
        assert names(Doc.objects.filter(value__k=KeyTransform("k", "value"))) == ["obj", "obj2"]
        assert names(Doc.objects.filter(value__exact={})) == ["empty"]
        assert names(Doc.objects.filter(value=7)) == ["num"]
        assert names(Doc.objects.filter(value=[1, [2], {"a": "b"}])) == ["list"]

    def test_contains_and_contained_by(self):
        assert names(Doc.objects.filter(value__contains={"a": "b"})) == ["obj"]
        assert names(Doc.objects.filter(value__contains={"k": {"l": "m"}, "c": 14})) == ["obj"]
        assert names(Doc.objects.filter(value__contains={"d": ["e"]})) == ["obj"]
        assert names(Doc.objects.filter(value__contains={"d": [{"f": "g"}]})) == ["obj"]
        assert names(Doc.objects.filter(value__contains={"j": None})) == ["obj"]
        assert names(Doc.objects.filter(value__contains=[[2]])) == ["list"]
        assert names(Doc.objects.filter(value__contains={})) == ["empty", "obj", "obj2"]
        assert names(Doc.objects.filter(value__tags__contains="x")) == ["obj2"]  # an array holds a scalar
        assert names(Doc.objects.filter(value__contained_by={"a": "B", "c": 3, "k": {"l": "n", "z": 1},
                                                            "tags": ["y", "x", "w"]})) == ["empty", "obj2"]
        assert names(Doc.objects.filter(value__k__contained_by={"l": "m"})) == ["obj"]

    def test_ordering_annotations_and_values(self):
        qs = Doc.objects.filter(value__c__isnull=False).order_by("-value__c")
        assert list(qs.values_list("name", "value__c")) == [("obj", 14), ("obj2", 3)]
        assert list(Doc.objects.filter(value__has_key="k").order_by(KeyTransform("l", KeyTransform("k", "value")))
                    .values_list("name", flat=True)) == ["obj", "obj2"]
        got = (Doc.objects.filter(value__has_key="k").annotate(l=KeyTransform("l", "value__k"), kt=KT("value__a"))
               .order_by("name").values_list("l", "kt"))
        assert list(got) == [("m", "b"), ("n", "B")]
        assert list(Doc.objects.filter(name="obj").values_list("value__d", flat=True)) == [["e", {"f": "g"}]]
        assert list(Doc.objects.filter(name="obj").values_list("value__k", flat=True)) == [{"l": "m"}]
        counts = (Doc.objects.filter(value__has_key="k").values("value__k__l").annotate(n=Count("id"))
                  .order_by("value__k__l"))
        assert [(c["value__k__l"], c["n"]) for c in counts] == [("m", 1), ("n", 1)]
        assert names(Doc.objects.filter(Q(value__a="b") | Q(value__c=3))) == ["obj", "obj2"]
        assert names(Doc.objects.annotate(a=F("value__a")).filter(a="B")) == ["obj2"]

    def test_an_index_on_a_key_serves_its_filters(self):
        indexes = connection.command({"listIndexes": Doc._meta.db_table})["cursor"]["firstBatch"]
        assert {"value.a": 1} in [dict(i["key"]) for i in indexes]
        for qs in (Doc.objects.filter(value__a="b"), Doc.objects.filter(value__a__in=["b", "c"])):
            sql, params = qs.query.sql_with_params()
            cmd = json_util.loads(driver.translate(sql, list(params), connection.settings_dict["NAME"])[0])
            plan = connection.command({"explain": {"find": cmd["find"], "filter": cmd["filter"]}})
            assert "doc_value_a" in json_util.dumps(plan["queryPlanner"]["winningPlan"])
            assert names(qs) == ["obj"]

    def test_json_object(self):
        got = Doc.objects.filter(name="obj2").annotate(o=JSONObject(name=Upper("name"), a="value__a")).get().o
        assert got == {"name": "OBJ2", "a": "B"}


class InspectTests(TestCase):
    def test_inspectdb_prints_djangos_jsonfield(self):
        out = io.StringIO()
        call_command("inspectdb", Doc._meta.db_table, stdout=out)
        text = out.getvalue()
        assert "value = models.JSONField(" in text and "djongo" not in text.split("class ")[1]
