"""djongo.models' Encrypted* fields on the embedded engine (client-side
field-level encryption, src/crypt + djongo/encryption.py): manage.py
createdatakey puts a data key in the key vault; stored values are BSON
binary subtype 6 whose bytes do not hold the clear value (deterministic:
first byte 1, random: 2); objects read back in clear; exact and in lookups
on deterministic fields (the parameter encrypted before it is bound);
random fields and other lookups refused with FieldError; another
connection without the key (or with another local key) cannot read the
values; manage.py rewrapdatakeys rewraps the key (new keyMaterial and
updateDate, same _id) and every value stays readable; settings checked
(djongo.E016). tests/wire/test_encryption_over_server.py does the same
over libmongoc and reads the documents with pymongo.

https://www.mongodb.com/docs/manual/core/csfle/fundamentals/manual-encryption/
https://www.mongodb.com/docs/manual/reference/method/KeyVault.rewrapManyDataKey/
"""
import base64
import json
import os
import subprocess
import sys

KEY = base64.b64encode(bytes(range(96))).decode()
OTHER_KEY = base64.b64encode(bytes(range(1, 97))).decode()

SETTINGS = '''
import os
SECRET_KEY = "x"
USE_TZ = True
INSTALLED_APPS = ["djongo", "cryptapp"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
DATABASES = {"default": {"ENGINE": "djongo", "NAME": "cryptdb", "HOST": os.environ["DJONGO_HOST"],
                         "OPTIONS": {"ENCRYPTION": {"KMS": {"local": {"key": os.environ["LOCAL_KEY"]}},
                                                    "KEY_VAULT": "encryption.__keyVault"}}}}
'''

MODELS = '''
from djongo import models

class Person(models.Model):
    name = models.CharField(max_length=50)
    ssn = models.EncryptedCharField(max_length=11, null=True)
    age = models.EncryptedIntegerField(null=True)
    born = models.EncryptedDateField(null=True)
    seen = models.EncryptedDateTimeField(null=True)
    notes = models.EncryptedJSONField(null=True)
    salary = models.EncryptedDecimalField(max_digits=10, decimal_places=2, null=True)
    pin = models.EncryptedCharField(max_length=8, deterministic=False, null=True)
'''

PRELUDE = '''
import datetime, decimal, json
import django
django.setup()
from django.core.exceptions import FieldError
from django.db import connection, transaction
from cryptapp.models import Person
def raw():
    return connection.command({"find": "cryptapp_person", "filter": {}, "sort": {"_id": 1}})["cursor"]["firstBatch"]
out = {}
'''

WRITE = PRELUDE + '''
seen = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
Person.objects.create(name="alice", ssn="123-45-6789", age=42, born=datetime.date(1980, 1, 2), seen=seen,
                      notes={"allergies": ["nuts"], "n": 1}, salary=decimal.Decimal("1234.50"), pin="0000")
Person.objects.create(name="bob", ssn="987-65-4321", age=7, pin="0000")
Person.objects.create(name="carol")
doc = raw()[0]
out["types"] = {k: type(v).__name__ for k, v in doc.items() if k in ("ssn", "age", "born", "seen", "notes", "salary", "pin")}
out["clear_in_bytes"] = any(needle in bytes(doc[k]) for k, needle in (("ssn", b"123-45-6789"), ("pin", b"0000"),
                                                                     ("notes", b"allergies")))
out["algorithms"] = {k: doc[k][0] for k in ("ssn", "age", "notes", "pin")}
out["null_stored"] = raw()[2]["ssn"]
a = Person.objects.get(name="alice")
out["alice"] = [a.ssn, a.age, a.born.isoformat(), a.seen.isoformat(), a.notes, str(a.salary), a.pin]
out["exact"] = Person.objects.get(ssn="123-45-6789").name
out["in"] = sorted(Person.objects.filter(ssn__in=["987-65-4321", "123-45-6789", "000"]).values_list("name", flat=True))
out["age_exact"] = list(Person.objects.filter(age=7).values_list("name", flat=True))
out["isnull"] = list(Person.objects.filter(ssn__isnull=True).values_list("name", flat=True))
out["values"] = list(Person.objects.filter(name="bob").values_list("ssn", "age"))
out["update"] = Person.objects.filter(ssn="987-65-4321").update(age=8)
out["after_update"] = Person.objects.get(name="bob").age
for label, q in (("random", lambda: Person.objects.filter(pin="0000")), ("random_in", lambda: Person.objects.filter(pin__in=["0000"])),
                 ("startswith", lambda: Person.objects.filter(ssn__startswith="123")),
                 ("gt", lambda: Person.objects.filter(age__gt=3)), ("json_key", lambda: Person.objects.filter(notes__n=1))):
    try:
        list(q())
        out[label] = "no error"
    except FieldError as e:
        out[label] = str(e)
connection.close()  # a new connection: no data key cached yet
with transaction.atomic():  # so the key vault is read inside the transaction
    Person.objects.count()  # (the transaction begins at its first statement)
    Person.objects.create(name="dan", ssn="555-55-5555", age=1)
    out["in_atomic"] = Person.objects.get(ssn="555-55-5555").age
print(json.dumps(out))
'''

READ = PRELUDE + '''
try:
    out["alice"] = Person.objects.get(name="alice").ssn
except Exception as e:
    out["error"] = type(e).__name__
print(json.dumps(out))
'''

KEYS = '''
import json
import django
django.setup()
from django.db import connection
k = connection.command({"find": "__keyVault", "filter": {}}, db="encryption")["cursor"]["firstBatch"]
print(json.dumps([[str(d["_id"]), d["keyAltNames"], d["keyMaterial"].hex(), d["updateDate"].isoformat(),
                   d["masterKey"]] for d in k]))
'''

MANAGE = ["-c", "import sys; from django.core.management import execute_from_command_line; "
                "execute_from_command_line(['manage.py'] + sys.argv[1:])"]


def _env(tmp_path, key=KEY):
    (tmp_path / "crypt_settings.py").write_text(SETTINGS)
    (tmp_path / "cryptapp").mkdir(exist_ok=True)
    (tmp_path / "cryptapp" / "__init__.py").write_text("")
    (tmp_path / "cryptapp" / "models.py").write_text(MODELS)
    return dict(os.environ, DJONGO_HOST=str(tmp_path / "data"), LOCAL_KEY=key, DJANGO_SETTINGS_MODULE="crypt_settings",
                PYTHONPATH=os.pathsep.join([str(tmp_path)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))


def _run(tmp_path, env, *args, ok=True):
    p = subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    if ok:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


def test_encrypted_fields(tmp_path):
    env = _env(tmp_path)
    key_id = _run(tmp_path, env, *MANAGE, "createdatakey").stdout.strip()
    assert len(key_id) == 36 and key_id.count("-") == 4
    again = _run(tmp_path, env, *MANAGE, "createdatakey", ok=False)
    assert again.returncode != 0 and "duplicate key" in again.stderr  # the vault's unique keyAltNames index
    _run(tmp_path, env, *MANAGE, "migrate", "--run-syncdb", "-v", "0")
    out = json.loads(_run(tmp_path, env, "-c", WRITE).stdout.splitlines()[-1])
    assert out["types"] == {k: "Encrypted" for k in ("ssn", "age", "born", "seen", "notes", "salary", "pin")}
    assert out["clear_in_bytes"] is False
    assert out["algorithms"] == {"ssn": 1, "age": 1, "notes": 2, "pin": 2}
    assert out["null_stored"] is None
    assert out["alice"] == ["123-45-6789", 42, "1980-01-02", "2024-05-06T07:08:09+00:00",
                            {"allergies": ["nuts"], "n": 1}, "1234.50", "0000"]
    assert out["exact"] == "alice"
    assert out["in"] == ["alice", "bob"]
    assert out["age_exact"] == ["bob"]
    assert out["isnull"] == ["carol"]
    assert out["values"] == [["987-65-4321", 7]]
    assert out["update"] == 1 and out["after_update"] == 8
    assert "random encryption" in out["random"] and "cannot be queried" in out["random"]
    assert "random encryption" in out["random_in"]
    assert "only exact, in and isnull" in out["startswith"] and "only exact, in and isnull" in out["gt"]
    assert "random encryption" in out["json_key"]
    assert out["in_atomic"] == 1

    # another local master key cannot unwrap the data key
    other = json.loads(_run(tmp_path, _env(tmp_path, OTHER_KEY), "-c", READ).stdout.splitlines()[-1])
    assert other == {"error": "OperationalError"}

    # key rotation: rewrapManyDataKey with the key's own master key
    before = json.loads(_run(tmp_path, env, "-c", KEYS).stdout.splitlines()[-1])
    assert _run(tmp_path, env, *MANAGE, "rewrapdatakeys").stdout.strip() == "1 data key rewrapped."
    after = json.loads(_run(tmp_path, env, "-c", KEYS).stdout.splitlines()[-1])
    assert [k[0] for k in after] == [key_id] and [k[0] for k in before] == [key_id]
    assert after[0][1] == ["default"] and after[0][4] == {"provider": "local"}
    assert after[0][2] != before[0][2] and after[0][3] >= before[0][3]
    assert json.loads(_run(tmp_path, env, "-c", READ).stdout.splitlines()[-1]) == {"alice": "123-45-6789"}
    filtered = _run(tmp_path, env, *MANAGE, "rewrapdatakeys", "--filter", '{"keyAltNames": "nope"}')
    assert filtered.stdout.strip() == "0 data keys rewrapped."


def test_settings_checked(tmp_path):
    env = _env(tmp_path)
    (tmp_path / "crypt_settings.py").write_text(SETTINGS.replace('"KEY_VAULT": "encryption.__keyVault"',
                                                                 '"KEY_VAULT": "novault", "KMS_PROVIDERS": {}'))
    p = _run(tmp_path, env, *MANAGE, "check", ok=False)
    assert p.returncode != 0
    assert "djongo.E016" in p.stderr and "KEY_VAULT must be a namespace" in p.stderr
    assert "unknown keys KMS_PROVIDERS" in p.stderr


def test_field_checks(tmp_path):
    env = _env(tmp_path)
    (tmp_path / "cryptapp" / "models.py").write_text(MODELS + """
class Bad(models.Model):
    flag = models.EncryptedBooleanField(deterministic=True)
    code = models.EncryptedCharField(max_length=5, unique=True)
""")
    p = _run(tmp_path, env, *MANAGE, "check", ok=False)
    assert p.returncode != 0
    assert "cryptapp.Bad.flag: (djongo.E020)" in p.stderr and "cryptapp.Bad.code: (djongo.E021)" in p.stderr
    assert "Person" not in p.stderr
