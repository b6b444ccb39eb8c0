"""Django's own models.JSONField on djongo (tests/django/jsonfield_tests.py)."""
import json
import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class UUIDDecoder(json.JSONDecoder):
    """Reads {"uuid": "..."} back as a UUID: a decoder sees JSON text."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, object_hook=self.hook, **kwargs)

    @staticmethod
    def hook(d):
        if "uuid" in d:
            d["uuid"] = uuid.UUID(d["uuid"])
        return d


class Doc(models.Model):
    name = models.CharField(max_length=20, default="")
    value = models.JSONField(null=True, blank=True)
    custom = models.JSONField(null=True, encoder=DjangoJSONEncoder, decoder=UUIDDecoder)

    class Meta:
        indexes = [models.Index(models.F("value__a"), name="doc_value_a")]  # MongoDB's {"value.a": 1}


class Strict(models.Model):
    value = models.JSONField()  # NOT NULL: a JSON null is a value, SQL NULL is not
