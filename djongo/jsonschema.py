"""SCHEMA_VALIDATION: a model's collection held to the model by a
``$jsonSchema`` validator, so writes from any MongoDB client (pymongo,
mongosh, another service) meet the rules Django's own writes meet.

    DATABASES = {"default": {"ENGINE": "djongo", "NAME": "site", "HOST": "./data",
                             "OPTIONS": {"SCHEMA_VALIDATION": "strict"}}}

``"strict"`` or ``"moderate"`` is the collection's validationLevel (moderate:
documents that already break the schema may still be updated); ``"off"``
(the default) writes none, and removes one written before at the model's
next schema change. Migrations (create model; add, alter, rename and remove
field; add and remove constraint) write the validator with collMod after
their DDL. A write that breaks it fails with DocumentValidationFailure
(121): IntegrityError from Django, WriteError from pymongo.

What the schema says, per field (https://www.mongodb.com/docs/manual/reference/operator/query/jsonSchema/):
  - bsonType: the BSON type djongo stores the field's values as (integers
    "int" or "long", as the driver binds the smallest that holds them;
    FloatField "double"; DecimalField "decimal"; DateField and
    DateTimeField "date"; TimeField "string" (ISO text); UUIDField and
    BinaryField "binData"; ObjectIdField "objectId"; a foreign key its
    target's type), plus "null" when the field is null=True; a field that
    is not null=True is in "required". JSONField and fields djongo does not
    know take any value.
  - maxLength from max_length, minLength from MinLengthValidator;
    minimum/maximum from MinValueValidator/MaxValueValidator with a constant
    limit (inclusive, as Django's are), which for integer fields includes
    the range Django derives from the column type.
  - enum from choices (with "" when blank=True, and null when null=True,
    as Django's own validation lets those through).
  - EmbeddedField: an object whose properties are its model_container's;
    ArrayField: an array whose items are the container's object or the
    base field's schema; ArrayReferenceField: an array of the target's
    key type.
Other keys (djongo's hidden fields, fields a document holds besides the
model's) are allowed: additionalProperties is left as MongoDB's default.

The collection's validator may also hold the CHECK constraints' (each a
query filter, src/compile/ddl.c); the two are kept side by side as
``{$and: [checks..., {$jsonSchema: ...}]}``, and the validationLevel is the
whole validator's.
"""
import decimal

from django.core import validators as dj_validators

LEVELS = ("strict", "moderate", "off")
SETTING = "SCHEMA_VALIDATION"

_INT = ["int", "long"]
_BSON_TYPES = {
    "AutoField": _INT, "BigAutoField": _INT, "SmallAutoField": _INT, "IntegerField": _INT, "BigIntegerField": _INT,
    "SmallIntegerField": _INT, "PositiveIntegerField": _INT, "PositiveBigIntegerField": _INT,
    "PositiveSmallIntegerField": _INT, "DurationField": _INT,
    "FloatField": ["double"], "DecimalField": ["decimal"], "BooleanField": ["bool"],
    "CharField": ["string"], "TextField": ["string"], "SlugField": ["string"], "EmailField": ["string"],
    "URLField": ["string"], "FileField": ["string"], "ImageField": ["string"], "FilePathField": ["string"],
    "IPAddressField": ["string"], "GenericIPAddressField": ["string"], "TimeField": ["string"],
    "DateField": ["date"], "DateTimeField": ["date"], "UUIDField": ["binData"], "BinaryField": ["binData"],
    "ObjectIdField": ["objectId"], "GenericObjectIdField": ["objectId"],
}


def level(settings_dict):
    """The SCHEMA_VALIDATION setting of a DATABASES entry ("off" when
    unset)."""
    return (settings_dict.get("OPTIONS") or {}).get(SETTING, "off")


def _bson_value(v):
    """A limit as the driver binds it (a Decimal as Decimal128)."""
    if isinstance(v, decimal.Decimal):
        from bson.decimal128 import Decimal128

        return Decimal128(v)
    return v


def field_schema(field):
    """The $jsonSchema of one field's value, or None when it takes any."""
    from djongo.models.fields import ArrayField, ArrayReferenceField, EmbeddedField

    if isinstance(field, ArrayReferenceField):
        items = field_schema(field.target_field)
        schema = {"bsonType": ["array"]}
        if items and "bsonType" in items:
            schema["items"] = {"bsonType": items["bsonType"]}  # the key's type, not its rules
    elif field.is_relation and (field.many_to_one or field.one_to_one):
        target = field_schema(field.target_field) or {}
        if "bsonType" not in target:
            return None
        types = target["bsonType"]
        schema = {"bsonType": [t for t in ([types] if isinstance(types, str) else types) if t != "null"]}
    elif isinstance(field, EmbeddedField):
        schema = {"bsonType": ["object"]}
        if field.model_container is not None:
            schema.update(container_schema(field.model_container))
    elif isinstance(field, ArrayField):
        schema = {"bsonType": ["array"]}
        if field.model_container is not None:
            schema["items"] = {"bsonType": "object", **container_schema(field.model_container)}
        elif field.base_field is not None:
            items = field_schema(field.base_field)
            if items:
                schema["items"] = items
    else:
        types = _BSON_TYPES.get(field.get_internal_type())
        if types is None:
            return None
        schema = {"bsonType": list(types)}
        if "string" in types and getattr(field, "max_length", None) and field.get_internal_type() != "TimeField":
            schema["maxLength"] = int(field.max_length)
        for v in field.validators:
            limit = getattr(v, "limit_value", None)
            if callable(limit) or limit is None:
                continue
            if type(v) is dj_validators.MinValueValidator and types != ["string"]:
                schema["minimum"] = max(schema.get("minimum", limit), limit)
            elif type(v) is dj_validators.MaxValueValidator and types != ["string"]:
                schema["maximum"] = min(schema.get("maximum", limit), limit)
            elif type(v) is dj_validators.MinLengthValidator and "string" in types:
                schema["minLength"] = max(schema.get("minLength", limit), limit)
            elif type(v) is dj_validators.MaxLengthValidator and "string" in types:
                schema["maxLength"] = min(schema.get("maxLength", limit), limit)
        for key in ("minimum", "maximum"):
            if key in schema:
                schema[key] = _bson_value(schema[key])
        if field.choices:
            enum = [_bson_value(value) for value, _ in field.flatchoices]
            if field.blank and "string" in types and "" not in enum:
                enum.append("")
            schema["enum"] = enum
    if field.null:
        schema["bsonType"] = schema["bsonType"] + ["null"]
        if "enum" in schema:
            schema["enum"] = schema["enum"] + [None]
    if len(schema["bsonType"]) == 1:
        schema["bsonType"] = schema["bsonType"][0]
    return schema


def container_schema(model, replace=None):
    """{"required": [...], "properties": {...}} for a model's concrete
    fields; `replace` maps a field to the one that takes its place (None:
    the field is left out) -- a migration's old and new field."""
    replace = replace or {}
    properties, required = {}, []
    for field in model._meta.local_concrete_fields:
        if field in replace:
            field = replace[field]
            if field is None:
                continue
        schema = field_schema(field)
        if schema is None:
            continue
        properties[field.column] = schema
        if not field.null:
            required.append(field.column)
    out = {"properties": properties}
    if required:
        out["required"] = required
    return out


def model_schema(model, replace=None):
    """The $jsonSchema document of a model's collection."""
    return {"bsonType": "object", "title": model._meta.label, **container_schema(model, replace)}


def _checks_part(validator):
    """The CHECK constraints' part of a collection's validator: the
    validator without the $jsonSchema written here before."""
    if not validator:
        return []
    if "$jsonSchema" in validator and len(validator) == 1:
        return []
    if list(validator) == ["$and"]:
        return [v for v in validator["$and"] if not (isinstance(v, dict) and "$jsonSchema" in v)]
    return [validator]


def sync(connection, model, replace=None, dropping=False):
    """Writes the model's validator (collMod) by the connection's setting:
    the CHECK constraints' part kept, the $jsonSchema replaced (or, with
    "off", removed). `dropping`: nothing to do (the collection goes)."""
    setting = level(connection.settings_dict)
    if dropping or model._meta.abstract or not model._meta.managed or model._meta.proxy:
        return
    table = model._meta.db_table
    reply = connection.command({"listCollections": 1, "filter": {"name": table}}, outside_transaction=True)
    found = reply["cursor"]["firstBatch"]
    if not found:
        return
    options = found[0].get("options") or {}
    current = options.get("validator") or {}
    checks = _checks_part(current)
    parts = list(checks)
    if setting != "off":
        parts.append({"$jsonSchema": model_schema(model, replace)})
    validator = {} if not parts else parts[0] if len(parts) == 1 else {"$and": parts}
    want_level = setting if setting != "off" else "strict"
    if validator == current and options.get("validationLevel", "strict") == want_level:
        return
    connection.command({"collMod": table, "validator": validator, "validationLevel": want_level})
