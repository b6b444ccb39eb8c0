"""ArrayReferenceField: a list of another model's keys, stored in the
document (the original djongo's many-to-many without a join collection).

``entry.tags`` and the reverse ``tag.entry_set`` (or ``related_name``) are
managers with Django's many-to-many verbs -- ``all()``, ``add()``,
``remove()``, ``clear()``, ``set()`` -- writing the owner's array. Deleting
a referenced object honours ``on_delete``: CASCADE deletes the documents
that refer to it, PROTECT refuses, DO_NOTHING leaves the key, and anything
else (SET_NULL, SET_DEFAULT, SET(...)) removes the key from the arrays: an
array has no slot to null.
"""
from django.db import models, router
from django.db.models.deletion import ProtectedError
from django.db.models.signals import pre_delete
from django.utils.functional import cached_property

from djongo.models.fields import ArrayField


class ArrayReferenceField(ArrayField):
    description = "Array of references"

    def __init__(self, to=None, on_delete=models.CASCADE, related_name=None, *args, **kwargs):
        self.to = to
        self.on_delete = on_delete
        self.related_name = related_name
        kwargs.setdefault("blank", True)
        super().__init__(base_field=models.IntegerField(), *args, **kwargs)

    def check(self, **kwargs):
        return models.Field.check(self, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = models.Field.deconstruct(self)
        kwargs.pop("default", None)
        kwargs["to"] = self.to if isinstance(self.to, str) else self.to._meta.label
        kwargs["on_delete"] = self.on_delete
        if self.related_name:
            kwargs["related_name"] = self.related_name
        return name, "djongo.models.ArrayReferenceField", args, kwargs

    def get_internal_type(self):
        return "ArrayReferenceField"

    def get_attname(self):
        return "%s_ids" % self.name

    def get_attname_column(self):
        return self.get_attname(), self.db_column or self.name

    def contribute_to_class(self, cls, name, **kwargs):
        models.Field.contribute_to_class(self, cls, name, **kwargs)
        setattr(cls, name, _ForwardDescriptor(self))
        if not cls._meta.abstract:
            from django.db.models.fields.related import lazy_related_operation

            lazy_related_operation(self._resolved, cls, self.to, field=self)

    def _resolved(self, model, related, field):
        self.to = related
        self.base_field = related._meta.pk
        reverse = self.related_name or "%s_set" % model._meta.model_name
        if reverse != "+":
            setattr(related, reverse, _ReverseDescriptor(self))
        pre_delete.connect(self._on_target_delete, sender=related, weak=False,
                           dispatch_uid="djongo-arrayref-%s-%s" % (model._meta.label, self.name))

    @cached_property
    def target_pk(self):
        return self.to._meta.pk

    def to_python(self, value):
        if value is None:
            return None
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
            return super().to_python(value)
        return [v.pk if isinstance(v, models.Model) else self.target_pk.to_python(v) for v in value]

    def element_db_value(self, item, connection):
        if isinstance(item, models.Model):
            item = item.pk
        return self.target_pk.get_db_prep_value(self.target_pk.to_python(item), connection, prepared=False)

    def from_db_value(self, value, expression, connection):
        return list(value) if isinstance(value, list) else value

    def validate(self, value, model_instance):
        models.Field.validate(self, value, model_instance)

    @property
    def validators(self):
        return models.Field.validators.func(self)

    def value_to_string(self, obj):
        return [v if isinstance(v, (int, str)) else str(v) for v in self.value_from_object(obj)]

    def formfield(self, **kwargs):
        from django import forms

        return models.Field.formfield(self, **{"form_class": forms.ModelMultipleChoiceField,
                                               "queryset": self.to._default_manager, **kwargs})

    def value_from_object(self, obj):
        return list(getattr(obj, self.attname) or [])

    def save_form_data(self, instance, data):
        setattr(instance, self.attname, [o.pk for o in data] if data is not None else [])

    def referring(self, target_pk, using=None):
        """The owners whose array holds target_pk."""
        qs = self.model._base_manager.filter(**{"%s__has" % self.name: target_pk})
        return qs.using(using) if using else qs

    def _on_target_delete(self, sender, instance, using, **kwargs):
        owners = self.referring(instance.pk, using)
        if self.on_delete is models.DO_NOTHING:
            return
        if self.on_delete is models.PROTECT:
            protected = list(owners)
            if protected:
                raise ProtectedError("Cannot delete %s: referenced through %s.%s" % (
                    instance, self.model.__name__, self.name), set(protected))
            return
        if self.on_delete is models.CASCADE:
            owners.delete()
            return
        for owner in owners:
            _write(owner, self, [k for k in getattr(owner, self.attname) if k != instance.pk])


def _write(owner, field, keys):
    setattr(owner, field.attname, keys)
    owner.save(update_fields=[field.name])


class _QuerysetManager:
    """all(), and filter(), count(), exists()... of get_queryset()."""

    def all(self):
        return self.get_queryset()

    def __getattr__(self, name):
        return getattr(self.get_queryset(), name)


class _ForwardManager(_QuerysetManager):
    """``entry.tags``: the referenced objects, and the verbs that change
    the array (each saves the owner's array field only)."""

    def __init__(self, owner, field):
        self.owner, self.field = owner, field

    def _keys(self):
        return list(getattr(self.owner, self.field.attname) or [])

    def get_queryset(self):
        db = router.db_for_read(self.field.to, instance=self.owner)
        return self.field.to._default_manager.using(db).filter(pk__in=self._keys())

    def _pks(self, objs):
        return [o.pk if isinstance(o, models.Model) else self.field.target_pk.to_python(o) for o in objs]

    def add(self, *objs):
        keys = self._keys()
        keys += [k for k in dict.fromkeys(self._pks(objs)) if k not in keys]
        _write(self.owner, self.field, keys)

    def remove(self, *objs):
        gone = set(self._pks(objs))
        _write(self.owner, self.field, [k for k in self._keys() if k not in gone])

    def clear(self):
        _write(self.owner, self.field, [])

    def set(self, objs):
        _write(self.owner, self.field, list(dict.fromkeys(self._pks(objs))))


class _ReverseManager(_QuerysetManager):
    """``tag.entry_set``: the owners whose array holds this object's key."""

    def __init__(self, target, field):
        self.target, self.field = target, field

    def get_queryset(self):
        return self.field.referring(self.target.pk)

    def add(self, *owners):
        for o in owners:
            _ForwardManager(o, self.field).add(self.target)

    def remove(self, *owners):
        for o in owners:
            _ForwardManager(o, self.field).remove(self.target)

    def clear(self):
        for o in self.get_queryset():
            _ForwardManager(o, self.field).remove(self.target)

    def set(self, owners):
        keep = {o.pk for o in owners}
        for o in self.get_queryset():
            if o.pk not in keep:
                _ForwardManager(o, self.field).remove(self.target)
        self.add(*owners)


class _ManagerDescriptor:
    """On an instance, a manager (the class's `manager`) of its related
    objects, made afresh at each access as Django's related managers are;
    on the class, the descriptor itself."""
    manager = None

    def __init__(self, field):
        self.field = field

    def __get__(self, instance, owner):
        if instance is None:
            return self
        return self.manager(instance, self.field)


class _ForwardDescriptor(_ManagerDescriptor):
    manager = _ForwardManager

    def __set__(self, instance, value):
        # assigning keys or objects sets the array (saved with the owner),
        # as assigning a ForeignKey does; Model(tags=[...]) comes here too
        setattr(instance, self.field.attname, self.field.to_python(value))


class _ReverseDescriptor(_ManagerDescriptor):
    manager = _ReverseManager
