"""Encrypted fields: client-side field-level encryption of one column.

``EncryptedCharField(max_length=20)``, ``EncryptedIntegerField()``, ... are
Django's own fields whose value is encrypted in the client before it is
sent and decrypted after it is read (djongo/encryption.py; the crypto is
libmongocrypt, in C: src/crypt). Field classes rather than one
``Encrypted(field)`` wrapper, because that is what a Django user writes
and what the rest of Django expects: migrations serialize a field by its
class path and keyword arguments, the admin and ModelForm pick the form
field from the class, and MongoDB's own Django backend names its fields
the same way (EncryptedCharField, ...). ``encrypted_field(cls)`` makes the
same for any other field class.

Two algorithms (https://www.mongodb.com/docs/manual/core/csfle/fundamentals/encryption-algorithms/):

- deterministic (``deterministic=True``, the default where MongoDB allows
  it): the same value always gives the same ciphertext, so ``exact`` and
  ``in`` lookups work -- the parameter is encrypted before it is bound and
  the database compares ciphertexts;
- random (``deterministic=False``): a fresh IV every time; nothing can be
  looked up, and a lookup on the field raises FieldError saying so.

MongoDB's deterministic encryption does not take double, decimal128, bool,
object or array values: EncryptedFloatField, EncryptedDecimalField,
EncryptedBooleanField and EncryptedJSONField are random only (djongo.E020
when deterministic=True is asked for).

``key_alt_name`` names the data key (``manage.py createdatakey``); by
default OPTIONS["ENCRYPTION"]["KEY_ALT_NAME"], else "default". NULL is
stored as NULL (``isnull`` works in both modes); every other value is BSON
binary subtype 6 in the database.
"""
from django.core import checks
from django.core.exceptions import FieldError
from django.db import models

from djongo import encryption
from djongo._values import Encrypted, Undefined
from djongo.models.fields import JSONField

# what a lookup may be on an encrypted column: isnull always; exact and in
# when the ciphertext is deterministic
_ANY_MODE = frozenset({"isnull"})
_DETERMINISTIC = frozenset({"exact", "in", "isnull"})


class _PlainOutput:
    """Stands for an encrypted field when asking the backend for the
    converters of its clear value (operations.get_db_converters reads
    expression.output_field.get_internal_type())."""

    def __init__(self, field):
        self.output_field = field


class EncryptedFieldMixin:
    """The encryption half of an Encrypted*Field (before the Django field
    class in the bases)."""

    deterministic_allowed = True
    # operations.get_db_converters gives such a field none of the backend's
    # converters (dates, decimals, ...: they must not see ciphertext);
    # from_db_value applies them after decrypting
    encrypted = True
    description = "An encrypted value"

    def __init__(self, *args, deterministic=None, key_alt_name=None, **kwargs):
        self.deterministic = self.deterministic_allowed if deterministic is None else bool(deterministic)
        self.key_alt_name = key_alt_name
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        if self.deterministic != self.deterministic_allowed:
            kwargs["deterministic"] = self.deterministic
        if self.key_alt_name is not None:
            kwargs["key_alt_name"] = self.key_alt_name
        if type(self).__module__ == __name__:  # (a parent's deconstruct names the parent)
            path = "djongo.models." + type(self).__name__
        return name, path, args, kwargs

    def check(self, **kwargs):
        errors = super().check(**kwargs)
        if self.deterministic and not self.deterministic_allowed:
            errors.append(checks.Error(
                "%s cannot be deterministic: MongoDB's deterministic encryption does not take this type's values"
                % type(self).__name__,
                hint="use deterministic=False (random encryption; the field then cannot be queried)",
                obj=self, id="djongo.E020"))
        if self.primary_key or self.unique:
            errors.append(checks.Error("an encrypted field cannot be a primary key or unique",
                                       obj=self, id="djongo.E021"))
        return errors

    @property
    def algorithm(self):
        return encryption.DETERMINISTIC if self.deterministic else encryption.RANDOM

    def db_type(self, connection):
        return "encrypted"  # cursor.description / inspectdb: the stored BSON is binary subtype 6

    def cast_db_type(self, connection):
        return super().db_type(connection)

    def get_db_prep_value(self, value, connection, prepared=False):
        value = super().get_db_prep_value(value, connection, prepared)
        if value is None or isinstance(value, (Undefined, Encrypted)) or hasattr(value, "as_sql"):
            return None if isinstance(value, Undefined) else value
        return encryption.encrypt(connection, value, self.algorithm, self.key_alt_name)

    def get_db_prep_save(self, value, connection):
        return self.get_db_prep_value(value, connection, prepared=False)

    def from_db_value(self, value, expression, connection):
        if isinstance(value, Encrypted):
            value = encryption.decrypt(connection, value)
        if value is None:
            return None
        plain = self.clear_field()
        for convert in connection.ops.get_db_converters(_PlainOutput(plain)):
            value = convert(value, expression, connection)
        parent = getattr(super(), "from_db_value", None)
        return parent(value, expression, connection) if parent else value

    def clear_field(self):
        """The field as its clear-value class (cached), for the backend's
        converters."""
        plain = self.__dict__.get("_clear_field")
        if plain is None:
            base = next(c for c in type(self).__mro__ if issubclass(c, models.Field) and
                        not issubclass(c, EncryptedFieldMixin))
            plain = base.__new__(base)
            plain.__dict__.update(self.__dict__)
            self.__dict__["_clear_field"] = plain
        return plain

    def _refuse(self, lookup_name):
        model = getattr(self, "model", None)
        where = "%s.%s" % (model.__name__, self.name) if model else self.name
        if self.deterministic:
            raise FieldError("%s is encrypted: only exact, in and isnull lookups can be made on it "
                             "(deterministic encryption compares whole ciphertexts), not %r" % (where, lookup_name))
        raise FieldError("%s is encrypted with random encryption (%s): it cannot be queried (%r); "
                         "only isnull works. Use deterministic=True for exact and in lookups"
                         % (where, encryption.RANDOM, lookup_name))

    def get_lookup(self, lookup_name):
        allowed = _DETERMINISTIC if self.deterministic else _ANY_MODE
        if lookup_name not in allowed:
            self._refuse(lookup_name)
        return super().get_lookup(lookup_name)

    def get_transform(self, name):
        self._refuse(name)


def encrypted_field(field_class, deterministic_allowed=True):
    """An Encrypted*Field class for any Django field class."""
    name = "Encrypted" + field_class.__name__
    return type(name, (EncryptedFieldMixin, field_class), {
        "deterministic_allowed": deterministic_allowed,
        "description": "%s, encrypted" % (field_class.description if isinstance(field_class.description, str)
                                          else field_class.__name__),
        "__module__": __name__})


# (field class, whether MongoDB's deterministic encryption takes its values)
_FIELDS = [(models.CharField, True), (models.TextField, True), (models.EmailField, True), (models.IntegerField, True),
           (models.BigIntegerField, True), (models.SmallIntegerField, True), (models.PositiveIntegerField, True),
           (models.DateField, True), (models.DateTimeField, True), (models.TimeField, True), (models.UUIDField, True),
           (models.BinaryField, True), (models.FloatField, False), (models.DecimalField, False),
           (models.BooleanField, False), (JSONField, False)]  # djongo's JSONField: BSON as stored
for _base, _deterministic in _FIELDS:
    globals()["Encrypted" + _base.__name__] = encrypted_field(_base, _deterministic)

__all__ = ["EncryptedFieldMixin", "encrypted_field"] + ["Encrypted" + b.__name__ for b, _ in _FIELDS]
