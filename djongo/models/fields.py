"""Document fields: sub-documents, arrays, references, ObjectIds, JSON.

Each stores the BSON MongoDB users expect -- a sub-document is a document,
an array an array, an ObjectId an ObjectId -- because the C driver binds
dicts, lists and ObjectIds as BSON values and reads them back as such. The
Python side only converts between model instances and plain values, and
gives Django the transforms (lookups.py) that reach into the documents.

Container models: the model given as ``model_container`` describes the
sub-document's fields. It is normally abstract (``Meta: abstract = True``,
as in the original djongo), so it has no collection of its own; Django 5
refuses to instantiate abstract models, so values are instances of a
concrete twin (``container_class()``: a subclass registered in a private
app registry, invisible to migrations), and a dict is accepted wherever an
instance is.
"""
import threading

import bson
from django.apps.registry import Apps
from django.core import checks, exceptions
from django.db import models
from django.db.models.fields import NOT_PROVIDED
from django.utils.encoding import is_protected_type
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from djongo.models import lookups

# ---- container models ----

_twins = {}
_twins_lock = threading.Lock()  # guards _twins (class creation registers in _twin_apps)
_twin_apps = Apps()  # a registry of its own: migrations never see the twins


def container_class(container):
    """The class sub-document values are instances of: the container itself
    if it is concrete, else its concrete twin (one per container)."""
    if not container._meta.abstract:
        return container
    with _twins_lock:
        twin = _twins.get(container)
        if twin is None:
            meta = type("Meta", (), {"apps": _twin_apps, "app_label": container._meta.app_label, "managed": False,
                                     "db_table": "__djongo_embedded_%s" % container.__name__.lower()})
            attrs = {"__module__": container.__module__, "Meta": meta, "__qualname__": container.__qualname__}
            # a value, not a related object: Django refuses model instances
            # as UPDATE values unless they lack prepare_database_save
            attrs["prepare_database_save"] = property(_not_a_relation)
            if container.__str__ is models.Model.__str__:
                attrs["__str__"] = _document_str  # "Address object (None)" says nothing
            # pickled by the container (the twin is in no registry pickle can reach)
            attrs["__reduce__"] = _reduce_twin
            twin = type(container.__name__, (container,), attrs)
            _twins[container] = twin
        return twin


def _reduce_twin(self):
    return _unpickle_twin, (type(self).__bases__[0],), self.__getstate__()


def _unpickle_twin(container):
    cls = container_class(container)
    return cls.__new__(cls)


def _not_a_relation(self):
    raise AttributeError("a sub-document is stored as a value")


def _document_str(self):
    return ", ".join("%s: %s" % (f.name, getattr(self, f.attname)) for f in _stored_fields(type(self))
                     if getattr(self, f.attname) not in (None, ""))


def _natives(value):
    """A field value as plain data (serializers: dumpdata, DRF): documents
    as dicts of their fields, lists as lists, scalars Django serializes
    itself (numbers, dates, None) as they are, anything else as text."""
    if isinstance(value, models.Model):
        return {f.name: _natives(getattr(value, f.attname)) for f in _stored_fields(type(value))}
    if isinstance(value, (list, tuple)):
        return [_natives(v) for v in value]
    if isinstance(value, dict) or is_protected_type(value):
        return value
    return str(value)


def _stored_fields(cls):
    """The container's fields that the sub-document holds (not the twin's
    automatic primary key)."""
    return [f for f in cls._meta.concrete_fields if not (f.primary_key and f.auto_created)]


class _AsExpression:
    """What connection.ops.get_db_converters() asks of an expression."""

    def __init__(self, field):
        self.output_field = field


def _converters(field, connection):
    return connection.ops.get_db_converters(_AsExpression(field)) + field.get_db_converters(connection)


def document_from_instance(container, value, connection):
    """A container instance (or dict) as the dict the driver stores."""
    value = instance_from_value(container, value)
    doc = {}
    for f in _stored_fields(container_class(container)):
        doc[f.column] = f.get_db_prep_save(getattr(value, f.attname), connection)
    return doc


def instance_from_document(container, doc, connection):
    """A stored sub-document as a container instance, each value through
    the same converters a column of that field type goes through."""
    kwargs = {}
    cls = container_class(container)
    for f in _stored_fields(cls):
        if f.column in doc:
            v = doc[f.column]
            for convert in _converters(f, connection):
                v = convert(v, _AsExpression(f), connection)
            kwargs[f.attname] = v
    return cls(**kwargs)


def instance_from_value(container, value):
    """A dict (keys: field names) or an instance as a container instance."""
    cls = container_class(container)
    if value is None or isinstance(value, cls):
        return value
    if isinstance(value, container):  # a concrete subclass the user made
        return cls(**{f.attname: getattr(value, f.attname) for f in _stored_fields(cls)})
    if isinstance(value, dict):
        names = {f.name: f for f in _stored_fields(cls)} | {f.attname: f for f in _stored_fields(cls)}
        unknown = set(value) - set(names)
        if unknown:
            raise exceptions.ValidationError(_("Unknown field(s) for %(model)s: %(names)s"), code="invalid",
                                             params={"model": container.__name__, "names": ", ".join(sorted(unknown))})
        return cls(**{names[k].attname: _to_python(names[k], v) for k, v in value.items()})
    raise exceptions.ValidationError(_("Expected a %(model)s or a dict, got %(type)s"), code="invalid",
                                     params={"model": container.__name__, "type": type(value).__name__})


def _to_python(field, value):
    """A field's Python value from plain data (e.g. "2020-01-02" for a date);
    what does not convert stays as given, for validation to report."""
    try:
        return field.to_python(value)
    except exceptions.ValidationError:
        return value


def validate_instance(instance, label=None):
    """Runs the container fields' validators (clean_fields, then clean);
    messages name the field (and the array position, `label`)."""
    try:
        instance.clean_fields()
        instance.clean()
    except exceptions.ValidationError as e:
        messages = []
        for name, errors in e.message_dict.items():
            for m in errors:
                where = name if name != exceptions.NON_FIELD_ERRORS else ""
                prefix = " ".join(p for p in (label, where) if p)
                messages.append("%s: %s" % (prefix, m) if prefix else m)
        raise exceptions.ValidationError(messages, code="invalid")


def _check_container(field, container, seen=()):
    """The container model's fields must be ones a sub-document can hold: a
    relation needs a row of its own (a ForeignKey's id, a many-to-many's
    join table), which a sub-document is not -- said at check time, not by
    a TypeError at save time or by silence."""
    if not (isinstance(container, type) and issubclass(container, models.Model)):
        return [checks.Error("model_container must be a model class", obj=field, id="djongo.E001")]
    errors = []
    where = "%s (the model_container of %s)" % (container.__name__, field)
    for inner in container._meta.get_fields(include_hidden=False):
        if getattr(inner, "many_to_many", False) and inner.concrete is False and inner.auto_created:
            continue  # the reverse side of another model's relation
        if getattr(inner, "many_to_many", False):
            errors.append(checks.Error(
                "%s.%s: a ManyToManyField cannot be inside a sub-document" % (where, inner.name), obj=field,
                hint="use djongo.models.ArrayReferenceField, or an ArrayField of ids", id="djongo.E003"))
        elif getattr(inner, "is_relation", False) and (inner.many_to_one or inner.one_to_one) and inner.concrete:
            errors.append(checks.Error(
                "%s.%s: a %s cannot be inside a sub-document" % (where, inner.name, type(inner).__name__),
                obj=field, hint="store the related object's id in a plain field (IntegerField, ObjectIdField) "
                                "and look it up, or make the relation on the outer model", id="djongo.E004"))
        elif isinstance(inner, _ContainerField) and inner.model_container is not None and container not in seen:
            errors += _check_container(inner, inner.model_container, seen + (container,))
    return errors


class _ConvertingDescriptor:
    """Sets the attribute through the field's to_python, so a dict assigned
    reads back as a container instance at once."""

    def __init__(self, field):
        self.field = field

    def __get__(self, instance, owner):
        if instance is None:
            return self
        return instance.__dict__.get(self.field.attname)

    def __set__(self, instance, value):
        instance.__dict__[self.field.attname] = self.field.to_python(value)


# ---- EmbeddedField ----


class _ContainerField(models.Field):
    """What EmbeddedField and ArrayField share: a container model (and the
    form class and kwargs the admin builds its nested form from), and an
    attribute that converts what is assigned (a dict reads back as an
    instance at once)."""

    def __init__(self, *args, model_container=None, model_form_class=None, model_form_kwargs=None, **kwargs):
        self.model_container = model_container
        self.model_form_class = model_form_class
        self.model_form_kwargs = model_form_kwargs or {}
        super().__init__(*args, **kwargs)

    def _deconstruct_container(self, kwargs):
        for attr in ("model_container", "model_form_class"):
            if getattr(self, attr) is not None:
                kwargs[attr] = getattr(self, attr)
        if self.model_form_kwargs:
            kwargs["model_form_kwargs"] = self.model_form_kwargs

    def contribute_to_class(self, cls, name, **kwargs):
        super().contribute_to_class(cls, name, **kwargs)
        setattr(cls, self.attname, _ConvertingDescriptor(self))

    def value_to_string(self, obj):
        return _natives(self.value_from_object(obj))


class EmbeddedField(_ContainerField):
    """A sub-document described by ``model_container``'s fields.

    ``null=False, blank=False`` (the default) make a value required: a
    missing sub-document is never stored. Saving through a form, or calling
    ``full_clean()``, runs the container fields' validators."""

    description = _("Embedded document")
    empty_strings_allowed = False

    def __init__(self, model_container=None, model_form_class=None, model_form_kwargs=None, *args, **kwargs):
        super().__init__(*args, model_container=model_container, model_form_class=model_form_class,
                         model_form_kwargs=model_form_kwargs, **kwargs)

    def check(self, **kwargs):
        return [*super().check(**kwargs), *_check_container(self, self.model_container)]

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        self._deconstruct_container(kwargs)
        return name, "djongo.models.EmbeddedField", args, kwargs

    def get_internal_type(self):
        return "EmbeddedField"

    def to_python(self, value):
        return instance_from_value(self.model_container, value)

    def get_db_prep_value(self, value, connection, prepared=False):
        if value is None or hasattr(value, "resolve_expression"):
            return value
        return document_from_instance(self.model_container, value, connection)

    def get_db_prep_save(self, value, connection):
        if value is None and not self.null:
            # MongoDB has no NOT NULL: the field says it, before the write
            from django.db import IntegrityError

            raise IntegrityError("NOT NULL constraint failed: %s.%s (an EmbeddedField with null=False is never "
                                 "stored missing)" % (self.model._meta.db_table, self.column))
        return super().get_db_prep_save(value, connection)

    def from_db_value(self, value, expression, connection):
        if not isinstance(value, dict):
            return value
        return instance_from_document(self.model_container, value, connection)

    @cached_property
    def validators(self):
        # the container's validators run as this field's validator: model
        # full_clean() and DRF's ModelField both run a field's validators
        return [*super().validators, self._validate_document]

    def _validate_document(self, value):
        validate_instance(instance_from_value(self.model_container, value))

    def get_transform(self, name):
        transform = super().get_transform(name)
        if transform:
            return transform
        try:
            inner = container_class(self.model_container)._meta.get_field(name)
        except exceptions.FieldDoesNotExist:
            return None
        return _PathFactory(inner.column, inner)

    def formfield(self, **kwargs):
        from djongo.forms import EmbeddedFormField

        return super().formfield(**{"form_class": EmbeddedFormField, "model_container": self.model_container,
                                    "model_form_class": self.model_form_class,
                                    "model_form_kwargs": self.model_form_kwargs, **kwargs})


class _PathFactory:
    def __init__(self, key, output_field):
        self.key, self.output_field = key, output_field

    def __call__(self, lhs, *args, **kwargs):
        return lookups.PathTransform(self.key, lhs, self.output_field)


# ---- ArrayField ----


class ArrayField(_ContainerField):
    """A list: of sub-documents (``model_container=``) or of scalars
    (``base_field=``, e.g. ``ArrayField(models.CharField(max_length=20))``).

    Lookups: ``authors__name='X'`` (any element's name), ``authors__0__name``
    (the first element), ``tags__has='x'`` (an element equals),
    ``tags__contains=['x', 'y']`` (every one is an element), ``tags__len``."""

    description = _("Array")
    empty_strings_allowed = False

    def __init__(self, base_field=None, model_container=None, model_form_class=None, model_form_kwargs=None, *args,
                 **kwargs):
        self.base_field = base_field
        kwargs.setdefault("default", list)
        super().__init__(*args, model_container=model_container, model_form_class=model_form_class,
                         model_form_kwargs=model_form_kwargs, **kwargs)
        if self.base_field is not None and not self.base_field.name:
            self.base_field.set_attributes_from_name("item")

    def check(self, **kwargs):
        errors = super().check(**kwargs)
        if (self.base_field is None) == (self.model_container is None):
            errors.append(checks.Error("ArrayField takes model_container= or base_field=, one of them", obj=self,
                                       id="djongo.E002"))
        elif self.model_container is not None:
            errors += _check_container(self, self.model_container)
        return errors

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        if kwargs.get("default") is list:
            del kwargs["default"]
        if self.base_field is not None:
            kwargs["base_field"] = self.base_field
        self._deconstruct_container(kwargs)
        return name, "djongo.models.ArrayField", args, kwargs

    def get_internal_type(self):
        return "ArrayField"

    def _item_to_python(self, item):
        if self.model_container is not None:
            return instance_from_value(self.model_container, item)
        return self.base_field.to_python(item)

    def to_python(self, value):
        if value is None:
            return None
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
            raise exceptions.ValidationError(_("Expected a list, got %(type)s"), code="invalid",
                                             params={"type": type(value).__name__})
        return [self._item_to_python(v) for v in value]

    def element_db_value(self, item, connection):
        if self.model_container is not None:
            return document_from_instance(self.model_container, item, connection)
        return self.base_field.get_db_prep_save(self.base_field.to_python(item), connection)

    def get_db_prep_value(self, value, connection, prepared=False):
        if value is None or hasattr(value, "resolve_expression"):
            return value
        return [self.element_db_value(v, connection) for v in self.to_python(value)]

    def from_db_value(self, value, expression, connection):
        if not isinstance(value, list):
            return value
        if self.model_container is not None:
            return [instance_from_document(self.model_container, v, connection) if isinstance(v, dict) else v
                    for v in value]
        out = []
        for v in value:
            for convert in _converters(self.base_field, connection):
                v = convert(v, _AsExpression(self.base_field), connection)
            out.append(v)
        return out

    @cached_property
    def validators(self):
        return [*super().validators, self._validate_items]

    def _validate_items(self, value):
        errors = []
        for i, item in enumerate(self.to_python(value), 1):
            try:
                if self.model_container is not None:
                    validate_instance(item, label="item %d" % i)
                else:
                    self.base_field.clean(item, None)
            except exceptions.ValidationError as e:
                errors.extend(e.messages if self.model_container is not None
                              else ["item %d: %s" % (i, m) for m in e.messages])
        if errors:
            raise exceptions.ValidationError(errors, code="invalid")

    def get_transform(self, name):
        transform = super().get_transform(name)
        if transform:
            return transform
        if name.isdigit():
            if self.model_container is not None:
                element = EmbeddedField(model_container=self.model_container, null=True)
                element.set_attributes_from_name(name)
                return _PathFactory(name, element)
            return _PathFactory(name, self.base_field)
        if self.model_container is not None:
            try:
                inner = container_class(self.model_container)._meta.get_field(name)
            except exceptions.FieldDoesNotExist:
                return None
            return _PathFactory(inner.column, inner)
        return None

    def formfield(self, **kwargs):
        from djongo.forms import ArrayFormField

        return super().formfield(**{"form_class": ArrayFormField, "model_container": self.model_container,
                                    "base_field": self.base_field, "model_form_class": self.model_form_class,
                                    "model_form_kwargs": self.model_form_kwargs, **kwargs})


class _ArrayContains(lookups.DataContains):
    def element_field(self):
        field = self.lhs.output_field
        return field.base_field if field.base_field is not None else None


ArrayField.register_lookup(_ArrayContains)
ArrayField.register_lookup(lookups.ElementOf)
ArrayField.register_lookup(lookups.ArrayLength)
ArrayField.register_lookup(lookups.DocumentExact)
EmbeddedField.register_lookup(lookups.DocumentExact)


# ---- ObjectIds ----


class ObjectIdField(models.Field):
    """A BSON ObjectId. Named ``_id`` it is the primary key (as MongoDB's
    ``_id``): a fresh ObjectId is made for each new object, client-side as
    MongoDB's drivers do, so no round trip is needed to learn it."""

    description = _("ObjectId")
    empty_strings_allowed = False
    default_error_messages = {"invalid": _("“%(value)s” is not a valid ObjectId (24 hexadecimal digits).")}

    def __init__(self, *args, **kwargs):
        self._pk_given = "primary_key" in kwargs
        super().__init__(*args, **kwargs)

    def contribute_to_class(self, cls, name, **kwargs):
        if name == "_id" and not self._pk_given:
            self.primary_key = True
        if self.primary_key:
            if self.default is NOT_PROVIDED:
                self.default = bson.ObjectId
            self.editable = False
            self.blank = True
        super().contribute_to_class(cls, name, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        if self.primary_key and not self._pk_given:
            kwargs.pop("primary_key", None)
        if kwargs.get("default") is bson.ObjectId and self.primary_key:
            kwargs.pop("default")
        if self.primary_key:
            kwargs.pop("editable", None)
            kwargs.pop("blank", None)
        return name, "djongo.models.%s" % type(self).__name__, args, kwargs

    def check(self, **kwargs):
        errors = super().check(**kwargs)
        if not self.primary_key and self.default is NOT_PROVIDED and not self.null and \
                type(self) is ObjectIdField:
            errors.append(checks.Warning(
                "ObjectIdField %r is neither the primary key nor named _id, so no ObjectId is made for it: "
                "a new object without a value fails to save" % self.name, obj=self,
                hint="name it _id (or primary_key=True) for MongoDB's _id; default=bson.ObjectId for a fresh id; "
                     "GenericObjectIdField (null=True) for a reference to a document", id="djongo.W004"))
        return errors

    def get_internal_type(self):
        return "ObjectIdField"

    def to_python(self, value):
        if value is None or isinstance(value, bson.ObjectId):
            return value
        try:
            return bson.ObjectId(str(value))
        except (bson.errors.InvalidId, TypeError):
            raise exceptions.ValidationError(self.error_messages["invalid"], code="invalid", params={"value": value})

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or hasattr(value, "resolve_expression"):
            return value
        try:
            return bson.ObjectId(str(value)) if not isinstance(value, bson.ObjectId) else value
        except (bson.errors.InvalidId, TypeError) as e:
            # ValueError, as Django's fields say it (the admin turns it into a 404)
            raise ValueError("Field '%s' expected an ObjectId but got %r." % (self.name, value)) from e

    def value_to_string(self, obj):
        value = self.value_from_object(obj)
        return "" if value is None else str(value)

    def formfield(self, **kwargs):
        from djongo.forms import ObjectIdFormField

        return super().formfield(**{"form_class": ObjectIdFormField, **kwargs})


class GenericObjectIdField(ObjectIdField):
    """An ObjectId that is not the primary key (a reference to any
    document, as the original djongo's), never made automatically."""

    description = _("ObjectId reference")

    def contribute_to_class(self, cls, name, **kwargs):
        models.Field.contribute_to_class(self, cls, name, **kwargs)


# ---- JSON ----


class JSONField(models.JSONField):
    """Django's JSONField, which djongo stores as BSON (a dict is a
    sub-document, a list an array) with its lookups, transforms and JSON
    null (djongo/jsonfield.py); this one differs in reading values back as
    they are stored, without JSON text and a decoder, and in storing the
    BSON values Python gives it (an ObjectId, a datetime) as they are
    rather than refusing what JSON cannot hold -- documents other MongoDB
    tools write keep their types."""

    stored_as_bson = True  # operations.py: no JSON-text converter for this one

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        return name, "djongo.models.JSONField", args, kwargs

    def get_db_prep_value(self, value, connection, prepared=False):
        if value is None or self.encoder is not None:
            return super().get_db_prep_value(value, connection, prepared)
        return value if prepared else self.get_prep_value(value)

    def from_db_value(self, value, expression, connection):
        return value


from djongo.models.references import ArrayReferenceField  # noqa: E402  (uses the fields above)
