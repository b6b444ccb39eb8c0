"""CHECK and FOREIGN KEY constraints through Django: PositiveIntegerField's
column check and CheckConstraint are the collection's validator
(IntegrityError; a NULL passes), migrations add, rename and remove them by
the names introspection reports; foreign keys fail a write whose row lacks
its parent (at once under autocommit, at COMMIT inside atomic()), and
loaddata's way -- checks off, then check_constraints() -- finds the rows
written meanwhile, and a cascading flush empties the referencing tables, as
on SQLite."""
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]

SCRIPT = r'''
import os, sys
sys.path.insert(0, os.environ["EXAMPLE"])
os.environ["DJANGO_SETTINGS_MODULE"] = "publishing.settings"
import django
django.setup()
from django.db import IntegrityError, connection, models, transaction

class Maker(models.Model):
    name = models.CharField(max_length=20)
    class Meta:
        app_label = "blog"
        db_table = "ck_maker"

class Item(models.Model):
    maker = models.ForeignKey(Maker, models.CASCADE, null=True)
    qty = models.PositiveIntegerField(null=True)
    price = models.IntegerField(null=True)
    sale = models.IntegerField(null=True)
    class Meta:
        app_label = "blog"
        db_table = "ck_item"
        constraints = [models.CheckConstraint(condition=models.Q(price__gt=models.F("sale")), name="price_gt_sale")]

def raises(fn):
    try:
        with transaction.atomic():
            fn()
    except IntegrityError as e:
        return str(e)
    return None

with connection.schema_editor() as editor:
    editor.create_model(Maker)
    editor.create_model(Item)
with connection.cursor() as cursor:
    cons = connection.introspection.get_constraints(cursor, "ck_item")
print("CHECKS", sorted(n for n, c in cons.items() if c["check"]))
print("FKS", sorted((n, c["columns"][0], c["foreign_key"]) for n, c in cons.items() if c["foreign_key"]))

m = Maker.objects.create(name="m")
Item.objects.create(maker=m, qty=1, price=5, sale=1)
Item.objects.create(qty=None, price=None, sale=1)  # NULL: the checks pass
print("NEG", bool(raises(lambda: Item.objects.create(qty=-1))))
print("PRICE", bool(raises(lambda: Item.objects.create(price=1, sale=5))))
print("UPD", bool(raises(lambda: Item.objects.filter(qty=1).update(qty=-2))))

# migrations: remove, add back, rename the column the column check reads
with connection.schema_editor() as editor:
    editor.remove_constraint(Item, Item._meta.constraints[0])
print("PRICE_AFTER_REMOVE", bool(raises(lambda: Item.objects.create(price=1, sale=5))))
Item.objects.filter(price=1).delete()
with connection.schema_editor() as editor:
    editor.add_constraint(Item, Item._meta.constraints[0])
print("PRICE_AFTER_ADD", bool(raises(lambda: Item.objects.create(price=1, sale=5))))
old = Item._meta.get_field("qty")
new = models.PositiveIntegerField(null=True)
new.set_attributes_from_name("amount")
with connection.schema_editor() as editor:
    editor.alter_field(Item, old, new, strict=True)
with connection.cursor() as cursor:
    cons = connection.introspection.get_constraints(cursor, "ck_item")
print("RENAMED", sorted(c["columns"][0] for c in cons.values() if c["check"] and c["columns"] == ["amount"]))
with connection.cursor() as cursor:
    try:
        with transaction.atomic():
            cursor.execute('UPDATE "ck_item" SET "amount" = %s', [-5])
        print("RENAMED_CHECK", False)
    except IntegrityError:
        print("RENAMED_CHECK", True)
with connection.schema_editor() as editor:
    editor.alter_field(Item, new, old, strict=True)

# foreign keys: at once under autocommit ...
print("ORPHAN", raises(lambda: Item.objects.create(maker_id=999)) or "")
print("PARENT", bool(raises(lambda: Maker.objects.filter(pk=m.pk)._raw_delete(connection.alias))))
# ... at COMMIT inside atomic(), where the order is free
def later_parent():
    Item.objects.create(maker_id=500)
    Maker.objects.create(pk=500, name="late")
print("DEFERRED_OK", raises(later_parent) is None)
def never_parent():
    Item.objects.create(maker_id=501)
print("DEFERRED_BAD", bool(raises(never_parent)))
print("ROLLED_BACK", Item.objects.filter(maker_id=501).count())
# loaddata's way
with transaction.atomic():
    with connection.constraint_checks_disabled():
        Item.objects.create(maker_id=777)
    try:
        connection.check_constraints(table_names=["ck_item"])
        print("CHECK_CONSTRAINTS", "")
    except IntegrityError as e:
        print("CHECK_CONSTRAINTS", e)
    Item.objects.filter(maker_id=777).delete()
connection.check_constraints()
print("CLEAN", True)
# a flush that cascades (TransactionTestCase with available_apps) empties the referencing tables too
from django.core.management.color import no_style
print("FLUSH", " ".join(connection.ops.sql_flush(no_style(), ["ck_maker"], allow_cascade=True)))
'''


def test_check_and_foreign_key_constraints(tmp_path):
    env = dict(os.environ, DJONGO_HOST=str(tmp_path / "d"), EXAMPLE=str(ROOT / "example"))
    p = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    out = dict(line.split(" ", 1) for line in p.stdout.splitlines() if " " in line)
    assert out["CHECKS"] == "['ck_item_qty_check', 'price_gt_sale']"
    assert "'maker_id', ('ck_maker', 'id')" in out["FKS"]
    assert out["NEG"] == "True" and out["PRICE"] == "True" and out["UPD"] == "True"
    assert out["PRICE_AFTER_REMOVE"] == "False" and out["PRICE_AFTER_ADD"] == "True"
    assert out["RENAMED"] == "['amount']" and out["RENAMED_CHECK"] == "True"
    assert "FOREIGN KEY constraint failed: ck_item.maker_id = 999 has no row in ck_maker.id" in out["ORPHAN"]
    assert out["PARENT"] == "True"
    assert out["DEFERRED_OK"] == "True" and out["DEFERRED_BAD"] == "True" and out["ROLLED_BACK"] == "0"
    assert ("The row in table 'ck_item' with primary key" in out["CHECK_CONSTRAINTS"]
            and "ck_item.maker_id contains a value '777'" in out["CHECK_CONSTRAINTS"])
    assert out["CLEAN"] == "True"
    assert out["FLUSH"] == 'DELETE FROM "ck_item"; DELETE FROM "ck_maker";'
