"""``from djongo import models``: Django's models plus MongoDB's document fields.

Everything ``django.db.models`` offers is here unchanged; added are the fields
a document store gives (fields.py) and a manager that reaches the collection
with MongoDB's own API (manager.py):

  EmbeddedField(model_container=Address)   a sub-document
  ArrayField(model_container=Author)       a list of sub-documents
  ArrayField(models.CharField(...))        a list of scalars
  ArrayReferenceField(to=Tag, on_delete=)  a list of keys of another model
  ObjectIdField()                          named ``_id``: the primary key, a
                                           fresh ObjectId per object
  GenericObjectIdField()                   an ObjectId that is not the key
  JSONField()                              any BSON value, stored natively
  DjongoManager                            Entry.objects.mongo_find(...)
  EncryptedCharField(max_length=20), EncryptedIntegerField(), ...
                                           client-side field-level encryption
                                           (encrypted.py; OPTIONS["ENCRYPTION"])

and MongoDB's index kinds for ``Meta.indexes`` (indexes.py):

  TTLIndex(fields=["created"], expire_after=timedelta(days=1))
  HashedIndex(fields=["key"])
  TextIndex(fields=["headline", "body"], weights={"headline": 5})   with the
      ``__search`` lookup and TextScore() (text.py)
  GeoIndex(fields=["location"])            a 2dsphere index (geo.py: PointField,
                                           LineStringField, PolygonField,
                                           MultiPolygonField, __near, __within,
                                           __intersects, __within_distance,
                                           Distance())

Queries reach into documents with Django's own syntax --
``filter(address__city='Paris')``, ``filter(authors__name='X')`` (any array
element), ``order_by('address__city')``, ``values('data__a__b')`` -- which
djongo's SQL spells ``"entry"."address" -> 'city'`` and the compiler turns
into the MongoDB path ``address.city``.
"""
from django.db.models import *  # noqa: F401,F403  (the drop-in promise)
from django.db.models import __all__ as _django_all

from djongo.models.fields import (ArrayField, ArrayReferenceField, EmbeddedField, GenericObjectIdField, JSONField,
                                  ObjectIdField)
from djongo.models.geo import (Distance, GeoIndex, LineStringField, MultiPolygonField, PointField,  # geo.py
                               PolygonField)
from djongo.models.indexes import HashedIndex, TTLIndex
from djongo.models.encrypted import *  # noqa: F401,F403  (Encrypted*Field, encrypted_field)
from djongo.models.encrypted import __all__ as _encrypted_all
from djongo.models.manager import DjongoManager
from djongo.models.text import TextIndex, TextQuery, TextScore

__all__ = [*(n for n in _django_all if n != "JSONField"), "ArrayField", "ArrayReferenceField", "DjongoManager",
           "EmbeddedField", "GenericObjectIdField", "HashedIndex", "JSONField", "ObjectIdField", "TTLIndex",
           "Distance", "GeoIndex", "LineStringField", "MultiPolygonField", "PointField", "PolygonField",
           *_encrypted_all]

from djongo import register_settings_check  # noqa: E402 -- Django is in play here
__all__ += ["TextIndex", "TextQuery", "TextScore"]  # text.py

register_settings_check()

import sys  # noqa: E402

if "django.contrib.admin" in sys.modules:  # list_filter on paths into documents (djongo/admin.py)
    import djongo.admin  # noqa: E402,F401
