"""The Django settings surface on the embedded engine: SCHEMA_VALIDATION's
generated $jsonSchema validators through real migrations
(surfaceapp/migrations: create, alter, remove field, drop model),
DjongoManager.mongo_bulk_write with pymongo's request and result types,
and the commands bulk_create / bulk_update send. Models: surfaceapp/."""
import pathlib
import sys
import tempfile

from django.conf import settings

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
if not settings.configured:
    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "surfaceapp"],
        DATABASES={"default": {"ENGINE": "djongo", "NAME": "surface",
                               "HOST": tempfile.mkdtemp(prefix="djongo-surface-"),
                               "OPTIONS": {"SCHEMA_VALIDATION": "strict"}}},
        USE_TZ=True, DEFAULT_AUTO_FIELD="django.db.models.AutoField", SECRET_KEY="surface-tests")
    import django

    django.setup()

import pytest  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import IntegrityError, OperationalError, connection, transaction  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from pymongo import DeleteMany, DeleteOne, InsertOne, ReplaceOne, UpdateMany, UpdateOne  # noqa: E402
from pymongo.errors import BulkWriteError  # noqa: E402
from pymongo.results import BulkWriteResult  # noqa: E402

from djongo import jsonschema  # noqa: E402
from surfaceapp.models import Maker, Product  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def db():
    setup_test_environment()
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    yield


@pytest.fixture(autouse=True)
def clean():
    yield
    Product.objects.all().delete()
    Maker.objects.all().delete()


def collection_options(table):
    reply = connection.command({"listCollections": 1, "filter": {"name": table}})
    batch = reply["cursor"]["firstBatch"]
    return batch[0].get("options", {}) if batch else None


def schema_of(table):
    """The $jsonSchema in a collection's validator (alone or in an $and)."""
    validator = collection_options(table).get("validator") or {}
    parts = validator.get("$and", [validator])
    found = [p["$jsonSchema"] for p in parts if "$jsonSchema" in p]
    return found[0] if found else None


def good(**kw):
    doc = {"name": "Ark", "kind": "toy", "stars": 3}
    doc.update(kw)
    return Product(**doc)


# ---- SCHEMA_VALIDATION ----

def test_generated_schema_types_and_rules():
    s = schema_of("surfaceapp_product")
    props = s["properties"]
    assert s["bsonType"] == "object"
    assert props["name"] == {"bsonType": "string", "maxLength": 20}
    assert props["kind"] == {"bsonType": "string", "maxLength": 10, "enum": ["book", "toy"]}
    assert props["stars"]["bsonType"] == ["int", "long"]
    assert (props["stars"]["minimum"], props["stars"]["maximum"]) == (1, 5)
    assert props["price"] == {"bsonType": ["decimal", "null"]}
    assert props["released"] == {"bsonType": ["date", "null"]}
    assert props["maker_id"] == {"bsonType": ["int", "long", "null"]}  # the key's type
    assert props["size"]["bsonType"] == ["object", "null"]
    assert props["size"]["properties"]["unit"]["enum"] == ["cm", "in"]
    assert props["size"]["required"] == ["width", "unit"]
    assert props["tags"] == {"bsonType": "array", "items": {"bsonType": "string", "maxLength": 8}}
    assert set(s["required"]) == {"id", "name", "kind", "stars", "tags", "note"}
    assert collection_options("surfaceapp_product")["validationLevel"] == "strict"


def test_orm_writes_held_to_the_schema():
    good().save()
    for bad in (dict(stars=9), dict(kind="car"), dict(name="x" * 21), dict(size={"width": 1.0, "unit": "mm"})):
        with pytest.raises(IntegrityError, match="Document failed validation"):
            with transaction.atomic():
                good(**bad).save()
    assert Product.objects.count() == 1


def test_other_clients_held_to_the_schema():
    # a write that is not Django's (here the manager's pymongo-style API)
    with pytest.raises(IntegrityError, match="Document failed validation"):
        Product.objects.mongo_insert_one({"id": 99, "name": 5, "kind": "toy", "stars": 3, "tags": [], "note": ""})
    Product.objects.mongo_insert_one({"id": 98, "name": "ok", "kind": "toy", "stars": 3, "tags": [], "note": ""})
    assert Product.objects.get(id=98).name == "ok"


def test_check_constraints_kept_beside_the_schema():
    validator = collection_options("surfaceapp_maker")["validator"]
    assert len(validator["$and"]) == 2 and "$jsonSchema" in validator["$and"][1]
    with pytest.raises(IntegrityError):  # the CHECK
        with transaction.atomic():
            Maker.objects.create(name="")
    with pytest.raises(IntegrityError, match="Document failed validation"):  # the schema: max_length=30
        with transaction.atomic():
            Maker.objects.create(name="m" * 31)
    Maker.objects.create(name="Acme")


def test_migrations_alter_remove_and_drop():
    try:
        call_command("migrate", "surfaceapp", "0001", verbosity=0)
        s = schema_of("surfaceapp_product")
        assert s["properties"]["name"]["maxLength"] == 10 and "legacy" in s["properties"]
        call_command("migrate", "surfaceapp", "0002", verbosity=0)  # AlterField + RemoveField
        s = schema_of("surfaceapp_product")
        assert s["properties"]["name"]["maxLength"] == 20 and "legacy" not in s["properties"]
        assert "legacy" not in s["required"]
        call_command("migrate", "surfaceapp", "0003", verbosity=0)  # CreateModel
        assert schema_of("surfaceapp_scratch")["properties"]["code"] == {"bsonType": "string", "maxLength": 3}
        call_command("migrate", "surfaceapp", "0004", verbosity=0)  # DeleteModel: the collection and validator go
        assert collection_options("surfaceapp_scratch") is None
    finally:
        call_command("migrate", "surfaceapp", verbosity=0)


def test_setting_off_removes_and_moderate_sets_the_level():
    options = connection.settings_dict["OPTIONS"]
    try:
        options["SCHEMA_VALIDATION"] = "off"
        call_command("migrate", "surfaceapp", "0001", verbosity=0)
        assert schema_of("surfaceapp_product") is None
        options["SCHEMA_VALIDATION"] = "moderate"
        call_command("migrate", "surfaceapp", verbosity=0)
        assert schema_of("surfaceapp_product")["properties"]["name"]["maxLength"] == 20
        assert collection_options("surfaceapp_product")["validationLevel"] == "moderate"
    finally:
        options["SCHEMA_VALIDATION"] = "strict"
        call_command("migrate", "surfaceapp", "zero", verbosity=0)
        call_command("migrate", "surfaceapp", verbosity=0)
    assert collection_options("surfaceapp_product")["validationLevel"] == "strict"


def test_sqlmigrate_runs_nothing():
    before = collection_options("surfaceapp_product")
    call_command("sqlmigrate", "surfaceapp", "0002", verbosity=0)
    assert collection_options("surfaceapp_product") == before


def test_setting_checked():
    from djongo.validation import settings_errors

    errors = settings_errors("default", {"ENGINE": "djongo", "NAME": "x", "OPTIONS": {"SCHEMA_VALIDATION": "on"}})
    assert [e.id for e in errors] == ["djongo.E011"]


def test_schema_of_an_unsaved_model_state():
    # remove_field's model still has the field: replace leaves it out
    field = Product._meta.get_field("note")
    s = jsonschema.model_schema(Product, replace={field: None})
    assert "note" not in s["properties"] and "note" not in s["required"]


# ---- bulk writes ----

def doc(i, **kw):
    d = {"id": i, "name": "p%d" % i, "kind": "toy", "stars": 3, "tags": [], "note": ""}
    d.update(kw)
    return d


def test_bulk_write_mixed_ordered():
    result = Product.objects.mongo_bulk_write([
        InsertOne(doc(1)), InsertOne(doc(2)), InsertOne(doc(3)),
        UpdateOne({"id": 1}, {"$set": {"stars": 5}}),
        UpdateMany({"id": {"$gte": 2}}, {"$set": {"kind": "book"}}),
        ReplaceOne({"id": 3}, doc(3, name="three")),
        UpdateOne({"id": 7}, {"$set": {"name": "p7", "kind": "toy", "stars": 1, "tags": [], "note": ""}}, upsert=True),
        DeleteOne({"id": 2}),
        DeleteMany({"id": {"$gt": 100}}),
    ])
    assert isinstance(result, BulkWriteResult)
    assert (result.inserted_count, result.matched_count, result.modified_count, result.deleted_count,
            result.upserted_count) == (3, 4, 4, 1, 1)
    assert result.upserted_ids == {6: 7} or list(result.upserted_ids) == [6]
    assert sorted(Product.objects.values_list("id", "stars", "kind", "name")) == [
        (1, 5, "toy", "p1"), (3, 3, "toy", "three"), (7, 1, "toy", "p7")]


def test_bulk_write_errors_ordered_and_unordered():
    Product.objects.mongo_bulk_write([InsertOne(doc(1, _id=1))])
    with pytest.raises(BulkWriteError) as e:
        Product.objects.mongo_bulk_write([InsertOne(doc(2)), InsertOne(doc(1, _id=1)), InsertOne(doc(3))])
    details = e.value.details
    assert details["nInserted"] == 1 and [w["index"] for w in details["writeErrors"]] == [1]
    assert details["writeErrors"][0]["code"] == 11000
    assert sorted(Product.objects.values_list("id", flat=True)) == [1, 2]
    with pytest.raises(BulkWriteError) as e:
        Product.objects.mongo_bulk_write([InsertOne(doc(4)), InsertOne(doc(1, _id=1)), DeleteOne({"id": 4}),
                                          InsertOne(doc(5, stars=99))], ordered=False)
    details = e.value.details
    # unordered: every request runs; errors keep their request's index
    assert [(w["index"], w["code"]) for w in details["writeErrors"]] == [(1, 11000), (3, 121)]
    assert details["nInserted"] == 1 and details["nRemoved"] == 1
    assert sorted(Product.objects.values_list("id", flat=True)) == [1, 2]


def test_bulk_write_joins_the_transaction():
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            Product.objects.mongo_bulk_write([InsertOne(doc(1)), InsertOne(doc(2))])
            assert Product.objects.count() == 2
            raise RuntimeError
    assert Product.objects.count() == 0


def test_bulk_write_refuses_what_pymongo_refuses():
    with pytest.raises(ValueError):
        Product.objects.mongo_bulk_write([UpdateOne({"id": 1}, {"name": "x"})])
    with pytest.raises(TypeError):
        Product.objects.mongo_bulk_write([{"insertOne": doc(1)}])


def _commands(queries, name):
    return [c for q in queries for c in q.get("mongodb", ()) if c.lstrip("{ ").startswith('"%s"' % name)]


def test_bulk_writes_one_command_per_batch(monkeypatch):
    sent = []
    command = connection.command
    monkeypatch.setattr(connection, "command", lambda cmd, **kw: sent.append(next(iter(cmd))) or command(cmd, **kw))
    Product.objects.mongo_bulk_write([InsertOne(doc(1000 + i)) for i in range(250)] +
                                     [DeleteMany({"id": {"$gte": 1100}}), DeleteOne({"id": 1000})])
    monkeypatch.undo()
    assert sent == ["insert", "delete"]
    assert Product.objects.count() == 99
    Product.objects.all().delete()
    with CaptureQueriesContext(connection) as ctx:
        made = Product.objects.bulk_create([good(name="b%d" % i) for i in range(250)], batch_size=100)
    assert len(_commands(ctx.captured_queries, "insert")) == 3
    for p in made:
        p.stars = 4
    with CaptureQueriesContext(connection) as ctx:
        Product.objects.bulk_update(made, ["stars"], batch_size=100)
    assert len(_commands(ctx.captured_queries, "update")) == 3
    assert set(Product.objects.values_list("stars", flat=True)) == {4}
    assert Product.objects.count() == 250


# ---- transactions: error labels, retry_atomic ----

def _lose_to_another_writer(other, runs):
    """A transaction body that, the first time, reads (its snapshot), lets
    another connection commit a write, then writes: WriteConflict."""
    runs.append(1)
    m = Maker.objects.get()
    if len(runs) == 1:
        other.command({"update": "surfaceapp_maker", "updates": [{"q": {}, "u": {"$set": {"name": "other"}}}]})
    Maker.objects.filter(pk=m.pk).update(name=m.name + "!")


def test_write_conflict_labelled_transient():
    from djongo import driver
    from djongo.transaction import has_error_label

    Maker.objects.create(name="m")
    other = driver.connect(connection.settings_dict["HOST"], db=connection.settings_dict["NAME"], autocommit=True)
    try:
        with pytest.raises(OperationalError) as e:
            with transaction.atomic():
                _lose_to_another_writer(other, [])
        assert e.value.__cause__.code == 112
        assert e.value.__cause__.error_labels == ("TransientTransactionError",)
        assert has_error_label(e.value, "TransientTransactionError")
        assert not has_error_label(e.value, "UnknownTransactionCommitResult")
    finally:
        other.close()
    assert Maker.objects.get().name == "other"


def test_retry_atomic_runs_a_lost_transaction_again():
    from djongo import driver
    from djongo.transaction import retry_atomic

    Maker.objects.create(name="m")
    other = driver.connect(connection.settings_dict["HOST"], db=connection.settings_dict["NAME"], autocommit=True)
    runs = []
    try:
        retry_atomic(_lose_to_another_writer, attempts=3)(other, runs)
    finally:
        other.close()
    assert len(runs) == 2
    assert Maker.objects.get().name == "other!"  # committed once, on the second run


def test_retry_atomic_leaves_other_errors_and_inner_blocks_alone():
    from djongo.transaction import retry_atomic

    runs = []

    @retry_atomic(attempts=5)
    def bad():
        runs.append(1)
        Maker.objects.create(name="")  # the CHECK: not transient

    with pytest.raises(IntegrityError):
        bad()
    assert len(runs) == 1
    with pytest.raises(ValueError):
        retry_atomic(bad, attempts=0)


# ---- read/write concerns and read preference (embedded: one node) ----

def test_concerns_write_concern_as_one_node():
    import djongo

    with djongo.concerns(write_concern={"w": "majority", "j": True, "wtimeout": 100}):
        Maker.objects.create(name="a")
    with djongo.concerns(write_concern=1):
        Maker.objects.create(name="b")
    with pytest.raises(OperationalError, match="Not enough data-bearing nodes") as e:
        with djongo.concerns(write_concern={"w": 2}):
            Maker.objects.create(name="c")
    assert e.value.__cause__.code == 100  # UnsatisfiableWriteConcern; the write itself stands, as mongod's
    with pytest.raises(OperationalError) as e:
        with djongo.concerns(write_concern="dc-east"):
            Maker.objects.create(name="d")
    assert e.value.__cause__.code == 79  # UnknownReplWriteConcern
    assert sorted(Maker.objects.values_list("name", flat=True)) == ["a", "b", "c", "d"]
    Maker.objects.create(name="e")  # outside the block: the connection's own again


def test_concerns_nest_and_restore(monkeypatch):
    import djongo

    seen = []
    real = connection.connection.set_concerns
    monkeypatch.setattr(connection.connection, "set_concerns", lambda o: seen.append(o) or real(o))
    with djongo.concerns(read_concern="majority"):
        with djongo.concerns(write_concern={"w": 1}):
            list(Maker.objects.all())
    assert seen == [{"readConcernLevel": "majority"}, {"readConcernLevel": "majority", "w": 1},
                    {"readConcernLevel": "majority"}, None]


def test_concerns_read_preference_on_one_node():
    import djongo
    from pymongo import ReadPreference
    from pymongo.read_preferences import Nearest

    Maker.objects.create(name="a")
    for rp in ("primary", "primaryPreferred", "secondaryPreferred", "nearest", ReadPreference.SECONDARY_PREFERRED):
        with djongo.concerns(read_preference=rp, read_concern="local"):
            assert Maker.objects.count() == 1
    for rp in ("secondary", Nearest(tag_sets=[{"dc": "ny"}])):
        with pytest.raises(OperationalError, match="one node"):
            with djongo.concerns(read_preference=rp):
                pass
    with pytest.raises(OperationalError, match="readPreference must be"):
        with djongo.concerns(read_preference="fastest"):
            pass
    assert Maker.objects.count() == 1  # a refused block leaves the connection as it was


def test_options_concerns_on_the_embedded_engine(tmp_path):
    from djongo import driver
    from djongo.base import connection_settings
    from djongo.validation import settings_errors

    entry = {"ENGINE": "djongo", "NAME": "c", "HOST": str(tmp_path / "d"), "OPTIONS": {"w": 2, "tls": True}}
    host, options = connection_settings(entry)
    assert options == {"w": 2}  # the concerns reach the engine; TLS is a server's
    c = driver.connect(host, db="c", autocommit=True, options=options)
    with pytest.raises(driver.OperationalError) as e:
        c.command({"insert": "t", "documents": [{"_id": 1}]})
    assert e.value.code == 100
    assert c.command({"find": "t"})["cursor"]["firstBatch"] == [{"_id": 1}]
    c.close()
    entry["OPTIONS"] = {"readPreference": "secondary"}
    assert [e.id for e in settings_errors("x", entry)] == ["djongo.E015"]
