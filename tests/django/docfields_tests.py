"""djongo.models' document fields on the embedded engine: round trips,
validation, null/blank rules, lookups into embedded/array/JSON paths (each
checked against the same data queried directly with MongoDB filters through
DjongoManager), references with on_delete, ObjectIds, and the form fields
the admin uses. Models: tests/django/docfields/models.py."""
import datetime
import pathlib
import sys
import tempfile

from django.conf import settings

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
if not settings.configured:
    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.admin",
                        "django.contrib.sessions", "django.contrib.messages", "docfields"],
        DATABASES={"default": {"ENGINE": "djongo", "NAME": "docfields",
                               "HOST": tempfile.mkdtemp(prefix="djongo-docfields-")}},
        USE_TZ=True, DEFAULT_AUTO_FIELD="django.db.models.AutoField", MIGRATION_MODULES={"docfields": None},
        ROOT_URLCONF="docfields.urls", SECRET_KEY="docfields-tests", ALLOWED_HOSTS=["testserver"],
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware",
                    "django.contrib.auth.middleware.AuthenticationMiddleware",
                    "django.contrib.messages.middleware.MessageMiddleware"],
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
                    "OPTIONS": {"context_processors": ["django.template.context_processors.request",
                                                       "django.contrib.auth.context_processors.auth",
                                                       "django.contrib.messages.context_processors.messages"]}}])
    import django

    django.setup()

import bson  # noqa: E402
import pytest  # noqa: E402
from django import forms  # noqa: E402
from django.core.exceptions import ValidationError  # noqa: E402
from django.db import IntegrityError, connection, transaction  # noqa: E402
from django.db.models.deletion import ProtectedError  # noqa: E402
from django.db import NotSupportedError  # noqa: E402
from django.test import TestCase, TransactionTestCase  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from docfields.models import Address, Author, Doc, Entry, Event, Reader, Tag  # noqa: E402

_db_ready = False


def setUpModule():
    global _db_ready
    if not _db_ready:
        setup_test_environment()
        connection.creation.create_test_db(verbosity=0, autoclobber=True)
        _db_ready = True


def ids(qs):
    return sorted(qs.values_list("id", flat=True))


def mongo_ids(flt):
    """The same question asked of the collection directly (MongoDB filter)."""
    return sorted(d["id"] for d in Entry.objects.mongo_find(flt, {"id": 1}))


class EmbeddedFieldTests(TestCase):
    def test_round_trip_dict_and_instance(self):
        e = Entry.objects.create(headline="h", address={"city": "Paris", "since": datetime.date(2020, 1, 2),
                                                         "geo": {"lat": 48.8, "lng": 2.3}})
        assert isinstance(e.address, Address) and e.address.city == "Paris"
        doc = Entry.objects.mongo_find_one({"id": e.id})
        assert doc["address"] == {"city": "Paris", "homepage": "", "since": datetime.datetime(2020, 1, 2),
                                  "geo": {"lat": 48.8, "lng": 2.3}}
        got = Entry.objects.get(pk=e.pk)
        assert isinstance(got.address, Address) and got.address.since == datetime.date(2020, 1, 2)
        assert got.address.geo.lat == 48.8
        got.address.city = "Lyon"
        got.save()
        assert Entry.objects.mongo_find_one({"id": e.id})["address"]["city"] == "Lyon"

    def test_pickle(self):
        import pickle

        e = Entry.objects.create(headline="p", address={"city": "Paris", "geo": {"lat": 1.0, "lng": 2.0}},
                                 authors=[{"name": "Ann"}])
        back = pickle.loads(pickle.dumps(Entry.objects.get(pk=e.pk)))  # e.g. a cache of model instances
        assert isinstance(back.address, Address) and back.address.geo.lat == 1.0 and back.authors[0].name == "Ann"
        back.address.city = "Lyon"
        back.save()
        assert Entry.objects.get(pk=e.pk).address.city == "Lyon"

    def test_validators_of_the_container_run(self):
        e = Entry(headline="h", address={"city": "Paris", "homepage": "http://x.org/<script>"})
        with pytest.raises(ValidationError) as err:
            e.full_clean()
        assert "Script injection" in str(err.value.message_dict["address"])
        e.address = {"city": "", "homepage": "not a url"}
        with pytest.raises(ValidationError) as err:
            e.full_clean()
        msgs = err.value.message_dict["address"]
        assert any(m.startswith("city:") for m in msgs) and any("valid URL" in m for m in msgs)

    def test_null_false_blank_false_never_stores_missing(self):
        e = Entry(headline="h")
        with pytest.raises(ValidationError) as err:
            e.full_clean()
        assert "address" in err.value.message_dict
        with pytest.raises(IntegrityError):
            Entry.objects.create(headline="no address")
        assert Entry.objects.mongo_count_documents({"headline": "no address"}) == 0

    def test_index_on_embedded_paths(self):
        indexes = connection.command({"listIndexes": Entry._meta.db_table, "cursor": {}})["cursor"]["firstBatch"]
        (ix,) = [i for i in indexes if i["name"] == "entry_city_author"]
        assert list(ix["key"].items()) == [("address.city", 1), ("authors.name", -1)]
        from django.db.models import Index, UniqueConstraint
        from django.db.models.functions import Lower

        # an index or unique constraint on other expressions: on a hidden
        # computed field (src/compile/ddl.c), kept up to date by writes
        with connection.schema_editor() as editor:
            editor.add_index(Entry, Index(Lower("headline"), name="entry_lower"))
            editor.add_constraint(Entry, UniqueConstraint(Lower("headline"), name="entry_lower_uniq"))
        indexes = connection.command({"listIndexes": Entry._meta.db_table, "cursor": {}})["cursor"]["firstBatch"]
        assert {"entry_lower", "entry_lower_uniq"} <= {i["name"] for i in indexes}
        Entry.objects.create(headline="Loud", address={"city": "Paris"})
        from django.db import transaction

        with pytest.raises(IntegrityError), transaction.atomic():
            Entry.objects.create(headline="LOUD", address={"city": "Lyon"})
        with connection.schema_editor() as editor:
            editor.remove_constraint(Entry, UniqueConstraint(Lower("headline"), name="entry_lower_uniq"))
            editor.remove_index(Entry, Index(Lower("headline"), name="entry_lower"))
        Entry.objects.create(headline="LOUD", address={"city": "Lyon"})
        assert "__djongo_ix_entry_lower_uniq_0" not in Entry.objects.mongo_find_one({"headline": "LOUD"})

    def test_checks_name_what_is_not_indexed(self):
        from django.db.models import Exists, Index, OuterRef, UniqueConstraint
        from django.db.models.functions import Lower

        Entry._meta.indexes.append(Index(Lower("headline"), name="entry_lower"))
        Entry._meta.constraints.append(UniqueConstraint(Lower("headline"), name="entry_lower_uniq"))
        try:
            assert [w.id for w in connection.validation.check()] == []  # paths and computed fields are fine
        finally:
            Entry._meta.indexes.pop()
            Entry._meta.constraints.pop()
        # a subquery cannot be computed from the row
        sub = Exists(Entry.objects.filter(pk=OuterRef("pk")))
        Entry._meta.indexes.append(Index(sub, name="entry_sub"))
        try:
            (w,) = connection.validation.check()
            assert w.id == "djongo.W002" and "entry_sub" in w.msg and "subquery" in w.msg
        finally:
            Entry._meta.indexes.pop()

    def test_unknown_key_refused(self):
        with pytest.raises(ValidationError):
            Entry(headline="h", address={"city": "Paris", "nope": 1})

    def test_lookups_into_the_sub_document(self):
        a = Entry.objects.create(headline="a", address={"city": "Paris", "geo": {"lat": 48.8, "lng": 2.3}})
        b = Entry.objects.create(headline="b", address={"city": "Lyon", "geo": {"lat": 45.7, "lng": 4.8}})
        Entry.objects.create(headline="c", address={"city": "Nice"})
        assert ids(Entry.objects.filter(address__city="Paris")) == [a.id] == mongo_ids({"address.city": "Paris"})
        assert ids(Entry.objects.filter(address__geo__lat__lt=46)) == [b.id] == \
            mongo_ids({"address.geo.lat": {"$lt": 46}})
        assert ids(Entry.objects.filter(address__city__istartswith="l")) == [b.id]
        assert ids(Entry.objects.filter(address__geo__isnull=True)) == mongo_ids({"address.geo": None})
        assert list(Entry.objects.order_by("-address__city").values_list("address__city", flat=True)) == \
            ["Paris", "Nice", "Lyon"]
        assert list(Entry.objects.filter(pk=a.pk).values("address__geo__lng")) == [{"address__geo__lng": 2.3}]


class ArrayFieldTests(TestCase):
    def setUp(self):
        self.a = Entry.objects.create(headline="a", address={"city": "P"},
                                      authors=[{"name": "Ann"}, {"name": "Bob", "email": "bob@x.org"}],
                                      keywords=["db", "c"])
        self.b = Entry.objects.create(headline="b", address={"city": "P"}, authors=[{"name": "Bob"}],
                                      keywords=["web"])

    def test_round_trip(self):
        got = Entry.objects.get(pk=self.a.pk)
        assert all(isinstance(x, Author) for x in got.authors) and len(got.authors) == 2
        assert [x.name for x in got.authors] == ["Ann", "Bob"] and got.authors[1].email == "bob@x.org"
        assert got.keywords == ["db", "c"]
        assert Entry.objects.mongo_find_one({"id": self.a.id})["authors"] == [
            {"name": "Ann", "email": ""}, {"name": "Bob", "email": "bob@x.org"}]

    def test_element_lookups_match_mongodb(self):
        assert ids(Entry.objects.filter(authors__name="Bob")) == [self.a.id, self.b.id] == \
            mongo_ids({"authors.name": "Bob"})
        assert ids(Entry.objects.filter(authors__0__name="Bob")) == [self.b.id] == mongo_ids({"authors.0.name": "Bob"})
        assert ids(Entry.objects.filter(keywords__has="db")) == [self.a.id] == mongo_ids({"keywords": "db"})
        assert ids(Entry.objects.filter(keywords__contains=["c", "db"])) == [self.a.id] == \
            mongo_ids({"keywords": {"$all": ["c", "db"]}})
        assert ids(Entry.objects.filter(keywords__len=1)) == [self.b.id] == mongo_ids({"keywords": {"$size": 1}})
        assert ids(Entry.objects.filter(keywords=["web"])) == [self.b.id]
        assert list(Entry.objects.filter(pk=self.a.pk).values_list("authors__1__name", flat=True)) == ["Bob"]

    def test_item_validation_names_the_item(self):
        e = Entry(headline="h", address={"city": "P"}, authors=[{"name": "ok"}, {"name": "x", "email": "bad"}],
                  keywords=["x" * 30])
        with pytest.raises(ValidationError) as err:
            e.full_clean()
        assert any(m.startswith("item 2 email:") for m in err.value.message_dict["authors"])
        assert any(m.startswith("item 1:") for m in err.value.message_dict["keywords"])

    def test_not_a_list(self):
        with pytest.raises(ValidationError):
            Entry(headline="h", address={"city": "P"}, keywords="abc")


class ArrayReferenceFieldTests(TestCase):
    def test_both_sides_and_on_delete(self):
        t1, t2, t3 = (Tag.objects.create(name=n) for n in ("t1", "t2", "t3"))
        e = Entry.objects.create(headline="h", address={"city": "P"})
        e.tags.add(t1, t2)
        e.tags.add(t1)
        assert Entry.objects.mongo_find_one({"id": e.id})["tags"] == [t1.pk, t2.pk]
        assert sorted(t.name for t in e.tags.all()) == ["t1", "t2"] and list(t1.entry_set.all()) == [e]
        e.tags.remove(t1)
        t3.entry_set.add(e)
        assert Entry.objects.get(pk=e.pk).tags_ids == [t2.pk, t3.pk]
        e.tags.set([t1])
        assert Entry.objects.get(pk=e.pk).tags_ids == [t1.pk]
        with pytest.raises(ProtectedError), transaction.atomic():  # Entry.tags: PROTECT (the delete is undone)
            t1.delete()
        assert Tag.objects.filter(pk=t1.pk).exists()
        e.tags.clear()
        t1.delete()
        r = Reader.objects.create(name="r")
        r.liked.add(t2)
        r.watched.add(t2, t3)
        assert list(t3.watchers.all()) == [r]
        t3.delete()  # watched: SET_NULL pulls the key out of the array
        assert Reader.objects.get().watched_ids == [t2.pk]
        t2.delete()  # liked: CASCADE deletes the readers that liked it
        assert Reader.objects.count() == 0


class ObjectIdTests(TestCase):
    def test_primary_key_id(self):
        d = Doc.objects.create(title="t")
        assert isinstance(d.pk, bson.ObjectId) and Doc._meta.pk.name == "_id"
        assert Doc.objects.get(pk=str(d.pk)) == d
        raw = connection.command({"find": Doc._meta.db_table, "filter": {}})["cursor"]["firstBatch"]
        assert raw[0]["_id"] == d.pk
        with pytest.raises(ValidationError):
            Doc._meta.pk.to_python("zz")
        with pytest.raises(ValueError):
            Doc.objects.get(pk="not-an-oid")

    def test_generic_object_id(self):
        d = Doc.objects.create(title="a")
        e = Doc.objects.create(title="b", ref=str(d.pk))
        got = Doc.objects.get(ref=d.pk)
        assert got == e and got.ref == d.pk and isinstance(got.ref, bson.ObjectId)


class JSONFieldTests(TestCase):
    def setUp(self):
        self.a = Entry.objects.create(headline="a", address={"city": "P"},
                                      data={"a": {"b": 1}, "n": None, "l": [1, 2], "it's": "q"})
        self.b = Entry.objects.create(headline="b", address={"city": "P"}, data={"a": {"b": 2}, "x": "y"})
        self.c = Entry.objects.create(headline="c", address={"city": "P"}, data=None)

    def test_native_storage(self):
        assert Entry.objects.mongo_find_one({"id": self.a.id})["data"]["a"] == {"b": 1}
        assert Entry.objects.get(pk=self.a.pk).data["l"] == [1, 2]

    def test_path_lookups_match_mongodb(self):
        assert ids(Entry.objects.filter(data__a__b=1)) == [self.a.id] == mongo_ids({"data.a.b": 1})
        assert ids(Entry.objects.filter(data__a__b__gte=1)) == [self.a.id, self.b.id]
        assert ids(Entry.objects.filter(data__l__1=2)) == [self.a.id] == mongo_ids({"data.l.1": 2})
        assert ids(Entry.objects.filter(**{"data__it's": "q"})) == [self.a.id]
        assert ids(Entry.objects.filter(data__contains={"a": {"b": 2}})) == [self.b.id]
        assert ids(Entry.objects.filter(data__contains={"l": [2]})) == [self.a.id]
        assert ids(Entry.objects.filter(data__has_key="n")) == [self.a.id] == mongo_ids({"data.n": {"$exists": 1}})
        assert ids(Entry.objects.filter(data__has_keys=["a", "x"])) == [self.b.id]
        assert ids(Entry.objects.filter(data__has_any_keys=["x", "l"])) == [self.a.id, self.b.id]
        assert ids(Entry.objects.filter(data__n__isnull=True)) == [self.b.id, self.c.id]  # key absent
        assert ids(Entry.objects.filter(data__isnull=True)) == [self.c.id]
        assert list(Entry.objects.order_by("data__a__b").filter(data__a__b__gt=0).values_list("data__a__b", flat=True)) \
            == [1, 2]

    def test_hostile_keys_are_keys_not_operators(self):
        # a key is a value of the path (JSON_GET: $getField with $literal),
        # never a MongoDB path or operator
        h = Entry.objects.create(headline="h", address={"city": "P"}, data={"$where": 1, "a.b": 2, "": 3})
        for key, value in (("$where", 1), ("a.b", 2), ("", 3)):
            assert ids(Entry.objects.filter(**{"data__%s" % key: value})) == [h.id]
            assert ids(Entry.objects.filter(data__has_key=key)) == [h.id]
        assert ids(Entry.objects.filter(data__a__b=2)) == [self.b.id]  # "a" -> "b", not the key "a.b"


class DjongoManagerTests(TestCase):
    def test_pymongo_methods_on_the_collection(self):
        r = Entry.objects.mongo_insert_one({"headline": "raw", "id": 999})
        assert isinstance(r.inserted_id, bson.ObjectId)
        assert Entry.objects.mongo_count_documents({"headline": "raw"}) == 1
        u = Entry.objects.mongo_update_many({"headline": "raw"}, {"$set": {"address": {"city": "Rome"}}})
        assert (u.matched_count, u.modified_count) == (1, 1)
        assert Entry.objects.get(id=999).address.city == "Rome"  # the ORM sees what pymongo-style wrote
        out = list(Entry.objects.mongo_aggregate([{"$group": {"_id": "$address.city", "n": {"$sum": 1}}}]))
        assert out == [{"_id": "Rome", "n": 1}]
        assert Entry.objects.mongo_delete_many({"id": 999}).deleted_count == 1

    def test_raw_aggregate_gives_instances(self):
        Entry.objects.create(headline="x", address={"city": "Oslo"}, keywords=["k"])
        got = Entry.objects.raw_aggregate([{"$match": {"address.city": "Oslo"}}])
        assert len(got) == 1 and isinstance(got[0], Entry) and got[0].address.city == "Oslo"
        assert got[0].keywords == ["k"]

    def test_joins_the_django_transaction(self):
        try:
            with transaction.atomic():
                Entry.objects.mongo_insert_one({"headline": "gone", "id": 5000})
                raise RuntimeError
        except RuntimeError:
            pass
        assert Entry.objects.mongo_count_documents({"headline": "gone"}) == 0

    def test_duplicate_key(self):
        Entry.objects.mongo_insert_one({"_id": 1, "headline": "d"})
        with pytest.raises(IntegrityError):
            Entry.objects.mongo_insert_one({"_id": 1, "headline": "d"})


class DjongoManagerWatchTests(TransactionTestCase):
    """Model.objects.watch(): a change stream on the model's collection, fed
    by the embedded engine's change log (not in a transaction: autocommit)."""

    def test_watch_yields_the_orm_changes(self):
        keep = Entry.objects.create(headline="kept", address={"city": "Oslo"})
        with Entry.objects.watch(full_document="updateLookup", max_await_time_ms=50) as stream:
            e = Entry.objects.create(headline="new", address={"city": "Rome"})
            Entry.objects.filter(id=e.id).update(headline="renamed")
            e.delete()
            ins = stream.try_next()
            assert ins["operationType"] == "insert" and ins["fullDocument"]["headline"] == "new"
            assert ins["ns"] == {"db": connection.settings_dict["NAME"], "coll": Entry._meta.db_table}
            upd = next(stream)
            assert upd["operationType"] == "update"
            assert upd["updateDescription"]["updatedFields"] == {"headline": "renamed"}
            assert upd["fullDocument"] is None  # looked up when read: deleted by then
            assert next(stream)["operationType"] == "delete"
            assert stream.try_next() is None
            token = stream.resume_token
        # resuming after a token; a $match stage on the events
        Entry.objects.filter(id=keep.id).update(headline="again")
        with Entry.objects.watch([{"$match": {"operationType": "update"}}], resume_after=token,
                                 max_await_time_ms=50) as stream:
            ev = stream.try_next()
            assert ev["operationType"] == "update" and ev["updateDescription"]["updatedFields"] == {"headline": "again"}
            assert stream.try_next() is None

    def test_watch_refused_in_a_transaction(self):
        with transaction.atomic():
            with pytest.raises(NotSupportedError):
                Entry.objects.watch()


class EntryForm(forms.ModelForm):
    class Meta:
        model = Entry
        fields = ["headline", "address", "authors", "keywords", "tags"]


def form_data(**over):
    data = {"headline": "h", "address-city": "Paris", "address-homepage": "https://x.org/",
            "address-since": "", "address-geo-lat": "", "address-geo-lng": "",
            "authors-TOTAL_FORMS": "3", "authors-INITIAL_FORMS": "0",
            "authors-0-name": "Ann", "authors-0-ORDER": "2", "authors-1-name": "Bob", "authors-1-ORDER": "1",
            "authors-2-name": "", "authors-2-ORDER": "",
            "keywords-TOTAL_FORMS": "2", "keywords-INITIAL_FORMS": "0",
            "keywords-0-value": "db", "keywords-1-value": ""}
    data.update(over)
    return data


class FormTests(TestCase):
    def test_nested_form_and_formset_save(self):
        f = EntryForm(form_data())
        assert f.is_valid(), f.errors
        e = f.save()
        doc = Entry.objects.mongo_find_one({"id": e.id})
        assert doc["address"]["city"] == "Paris" and doc["address"].get("geo") is None
        assert [a["name"] for a in doc["authors"]] == ["Bob", "Ann"]  # ORDER, blank extra row left out
        assert doc["keywords"] == ["db"]

    def test_edit_remove_and_errors_keep_input(self):
        e = Entry.objects.create(headline="h", address={"city": "Paris"}, authors=[{"name": "A"}, {"name": "B"}])
        html = EntryForm(instance=e).as_p()
        assert 'name="address-city"' in html and 'value="Paris"' in html and 'name="authors-1-name"' in html
        data = form_data(**{"authors-TOTAL_FORMS": "2", "authors-INITIAL_FORMS": "2", "authors-0-name": "A2",
                            "authors-0-ORDER": "1", "authors-1-name": "B", "authors-1-ORDER": "2",
                            "authors-1-DELETE": "on", "address-homepage": "javascript-not-a-url"})
        f = EntryForm(data, instance=e)
        assert not f.is_valid()
        assert "address" in f.errors
        html = f.as_p()
        assert "Enter a valid URL." in html and 'value="javascript-not-a-url"' in html and 'value="A2"' in html
        data["address-homepage"] = "https://ok.example/"
        f = EntryForm(data, instance=e)
        assert f.is_valid(), f.errors
        f.save()
        assert [a.name for a in Entry.objects.get(pk=e.pk).authors] == ["A2"]

    def test_item_error_is_on_the_item(self):
        f = EntryForm(form_data(**{"authors-0-name": "x" * 60}))
        assert not f.is_valid() and "authors" in f.errors
        assert "Ensure this value has at most 50 characters" in f.as_p()


class SerializerTests(TestCase):
    """DRF's ModelSerializer, unmodified: nested data out and in, the
    container's validators reported per field."""

    def serializer(self):
        serializers = pytest.importorskip("rest_framework.serializers")

        class EntrySerializer(serializers.ModelSerializer):
            class Meta:
                model = Entry
                fields = ["id", "headline", "address", "authors", "keywords", "tags", "data"]

        return EntrySerializer

    def test_nested_out_and_in(self):
        S = self.serializer()
        t = Tag.objects.create(name="t")
        e = Entry.objects.create(headline="h", address={"city": "Paris", "since": datetime.date(2020, 1, 2),
                                                         "geo": {"lat": 1.5, "lng": 2.0}},
                                 authors=[{"name": "Ann"}], keywords=["k"], tags_ids=[t.pk], data={"a": [1]})
        out = S(e).data
        assert out["address"] == {"city": "Paris", "homepage": "", "since": datetime.date(2020, 1, 2),
                                  "geo": {"lat": 1.5, "lng": 2.0}}
        assert out["authors"] == [{"name": "Ann", "email": ""}] and out["keywords"] == ["k"]
        assert out["tags"] == [t.pk] and out["data"] == {"a": [1]}
        s = S(data={"headline": "new", "address": {"city": "Oslo", "since": "2021-05-06"},
                    "authors": [{"name": "Bo", "email": "bo@x.org"}], "keywords": ["a", "b"], "tags": [t.pk],
                    "data": {"x": {"y": 2}}})
        assert s.is_valid(), s.errors
        obj = s.save()
        doc = Entry.objects.mongo_find_one({"id": obj.id})
        assert doc["address"]["city"] == "Oslo" and doc["address"]["since"] == datetime.datetime(2021, 5, 6)
        assert doc["authors"] == [{"name": "Bo", "email": "bo@x.org"}] and doc["tags"] == [t.pk]
        assert doc["data"] == {"x": {"y": 2}}

    def test_container_validators_report_errors(self):
        S = self.serializer()
        s = S(data={"headline": "bad", "address": {"city": "X", "homepage": "https://x.org/<script>"},
                    "authors": [{"name": "A", "email": "nope"}], "keywords": []})
        assert not s.is_valid()
        assert "Script injection" in str(s.errors["address"]) and "item 1 email" in str(s.errors["authors"])
        assert Entry.objects.filter(headline="bad").count() == 0


class AdminTests(TestCase):
    """The admin on document models: an ObjectId primary key in its URLs,
    nested forms in add and change views (the browser test drives the
    example site's)."""

    def setUp(self):
        from django.contrib.auth.models import User

        User.objects.create_superuser("root", "r@example.com", "pw")
        self.client.login(username="root", password="pw")

    def test_object_id_primary_key(self):
        r = self.client.post("/admin/docfields/doc/add/", {"title": "first", "ref": ""})
        assert r.status_code == 302, r.content[:3000]
        d = Doc.objects.get()
        assert isinstance(d.pk, bson.ObjectId)
        url = "/admin/docfields/doc/%s/change/" % d.pk
        assert self.client.get(url).status_code == 200
        r = self.client.post(url, {"title": "renamed", "ref": "not-an-oid"})
        assert r.status_code == 200 and b"valid ObjectId" in r.content
        r = self.client.post(url, {"title": "renamed", "ref": str(d.pk)})
        assert r.status_code == 302 and Doc.objects.get().ref == d.pk
        assert self.client.get("/admin/docfields/doc/%s/change/" % ("0" * 24)).status_code == 302  # not found
        assert self.client.get("/admin/docfields/doc/zz/change/").status_code == 302
        assert self.client.post("/admin/docfields/doc/%s/delete/" % d.pk, {"post": "yes"}).status_code == 302
        assert Doc.objects.count() == 0

    def test_entry_add_with_nested_forms(self):
        t = Tag.objects.create(name="t")
        data = form_data(**{"tags": [str(t.pk)], "data": "null"})
        r = self.client.post("/admin/docfields/entry/add/", data)
        assert r.status_code == 302, r.content[:3000]
        e = Entry.objects.get()
        assert e.address.city == "Paris" and [a.name for a in e.authors] == ["Bob", "Ann"] and e.tags_ids == [t.pk]
        page = self.client.get("/admin/docfields/entry/%d/change/" % e.pk).content.decode()
        assert 'name="address-city"' in page and 'value="Bob"' in page and "djongo-array-add" in page


class FunctionTests(TestCase):
    """Django functions the backend spells for documents: a TimeField's
    parts and truncation (ISO text), a datetime's time of day in a zone,
    JSONObject (an object built at run time)."""

    def test_time_functions_and_json_object(self):
        from django.db.models.functions import ExtractHour, ExtractMinute, JSONObject, TruncHour, Upper

        utc = datetime.timezone.utc
        Event.objects.create(name="a", at=datetime.datetime(2024, 2, 3, 23, 30, tzinfo=utc),
                             starts=datetime.time(13, 45, 10, 250000))
        Event.objects.create(name="b", at=datetime.datetime(2024, 2, 4, 8, 0, 5, tzinfo=utc),
                             starts=datetime.time(7, 5))
        rows = list(Event.objects.order_by("name").annotate(h=ExtractHour("starts"), m=ExtractMinute("starts"),
                                                            t=TruncHour("starts")).values_list("h", "m", "t"))
        assert rows == [(13, 45, datetime.time(13)), (7, 5, datetime.time(7))]
        from django.utils import timezone

        with timezone.override(utc):
            assert list(Event.objects.filter(at__time=datetime.time(23, 30)).values_list("name", flat=True)) == ["a"]
        with timezone.override(datetime.timezone(datetime.timedelta(hours=2))):  # wall-clock time in the zone
            assert list(Event.objects.filter(at__time=datetime.time(10, 0, 5)).values_list("name", flat=True)) == ["b"]
        assert list(Event.objects.filter(starts__hour__gte=10).values_list("name", flat=True)) == ["a"]
        obj = Event.objects.annotate(o=JSONObject(n=Upper("name"), h=ExtractHour("starts"))).order_by("name")
        assert [e.o for e in obj] == [{"n": "A", "h": 13}, {"n": "B", "h": 7}]
