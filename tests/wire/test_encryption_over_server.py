"""djongo.models' Encrypted* fields with HOST a MongoDB URI (the libmongoc
transport) against djongo-server: the data key made by createdatakey and
the key vault read over the wire; exact/in lookups on a deterministic
field and key rotation (rewrapdatakeys) work there too; then pymongo, a
client without the key, reads the documents: the encrypted fields are BSON
binary subtype 6 whose bytes are not the clear values, the other fields
are as written, and the key vault holds the data key wrapped by the
local master key.

https://www.mongodb.com/docs/manual/core/csfle/fundamentals/manual-encryption/
"""
import base64
import json
import os
import subprocess
import sys

import bson
import pymongo

from conftest import Server

SCRIPT = r'''
import base64, json, os, sys
from django.conf import settings
settings.configure(INSTALLED_APPS=["djongo"], DATABASES={"default": {
    "ENGINE": "djongo", "NAME": "cw", "HOST": os.environ["URI"],
    "OPTIONS": {"ENCRYPTION": {"KMS": {"local": {"key": os.environ["LOCAL_KEY"]}}, "KEY_VAULT": "keys.vault",
                               "KEY_ALT_NAME": "patients"}}}})
import django
django.setup()
from django.core.management import call_command
from django.db import connection, transaction
from djongo import models

class Patient(models.Model):
    name = models.CharField(max_length=20)
    ssn = models.EncryptedCharField(max_length=11)
    visits = models.EncryptedIntegerField()
    record = models.EncryptedJSONField()
    class Meta:
        app_label = "djongo"

call_command("createdatakey")
with connection.schema_editor() as editor:
    editor.create_model(Patient)
Patient.objects.create(name="ann", ssn="111-22-3333", visits=3, record={"blood": "O+"})
Patient.objects.create(name="ben", ssn="444-55-6666", visits=5, record={"blood": "A-"})
out = {"exact": Patient.objects.get(ssn="444-55-6666").name,
       "in": sorted(Patient.objects.filter(ssn__in=["111-22-3333", "444-55-6666"]).values_list("name", flat=True)),
       "visits": Patient.objects.get(visits=3).name}
connection.close()  # a new connection: no data key cached yet
with transaction.atomic():  # so the key vault is read inside a session transaction
    Patient.objects.count()  # (the transaction begins at its first statement)
    out["in_atomic"] = Patient.objects.get(ssn="111-22-3333").visits
call_command("rewrapdatakeys")
out["after_rewrap"] = [[p.ssn, p.visits, p.record] for p in Patient.objects.order_by("name")]
print(json.dumps(out))
'''


def test_encrypted_fields_over_djongo_server(tmp_path):
    server = Server(tmp_path / "data")
    try:
        p = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                           env=dict(os.environ, URI=server.uri,
                                    LOCAL_KEY=base64.b64encode(bytes(range(96))).decode()))
        assert p.returncode == 0, p.stdout + p.stderr
        out = json.loads(p.stdout.splitlines()[-1])
        with pymongo.MongoClient(server.uri) as client:
            docs = list(client.cw.djongo_patient.find({}, {"_id": 0}).sort("name", 1))
            keys = list(client.keys.vault.find())
    finally:
        assert server.stop() == 0
    assert out["in_atomic"] == 3
    assert out["exact"] == "ben" and out["in"] == ["ann", "ben"] and out["visits"] == "ann"
    assert out["after_rewrap"] == [["111-22-3333", 3, {"blood": "O+"}], ["444-55-6666", 5, {"blood": "A-"}]]
    assert [d["name"] for d in docs] == ["ann", "ben"]
    for d in docs:
        for field in ("ssn", "visits", "record"):
            assert isinstance(d[field], bson.Binary) and d[field].subtype == 6, d
        assert b"111-22-3333" not in d["ssn"] and b"O+" not in d["record"]
        assert d["ssn"][0] == 1 and d["record"][0] == 2  # deterministic, random
    # different clear values, different ciphertexts (the key id is the same: bytes 1..16)
    assert docs[0]["ssn"] != docs[1]["ssn"]
    assert len(keys) == 1 and keys[0]["keyAltNames"] == ["patients"]
    assert keys[0]["masterKey"] == {"provider": "local"} and isinstance(keys[0]["keyMaterial"], bytes)
    assert keys[0]["_id"].subtype == 4 and bytes(docs[0]["ssn"][1:17]) == bytes(keys[0]["_id"])
