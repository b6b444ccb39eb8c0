"""Paths into documents in Django's admin, in a plain ModelAdmin:
``list_filter = ["address__city", "contributors__role"]`` (an EmbeddedField
or ArrayField of a model container, then a field of the container; an
ArrayField path matches an entry when any item matches, as the ORM's
``filter(contributors__role=...)`` does) and ``list_display`` of such a
path. ``search_fields`` reach into documents through the ORM already.

Django's admin walks a list_filter path with
``django.contrib.admin.utils.get_fields_from_path``, which steps from one
model to the next only through relations, so ``address__city`` fails the
admin's check (admin.E116) and the changelist. install() puts in its place
a walk that also steps into a document field's container -- the same
function for every other path -- in the modules that imported it
(utils, checks, views.main); the last field of a document path is a copy
marked with the path, for which FieldListFilter.create picks
DocumentValuesFieldListFilter: the values found in the documents (array
items one by one), filtered by the ORM path.

Installed when Django's admin autodiscovers this module ("djongo" in
INSTALLED_APPS) or when djongo.models is imported with the admin loaded;
once either way (a lock and a flag).
"""
import copy
import threading

from django.contrib.admin import checks as admin_checks
from django.contrib.admin import filters as admin_filters
from django.contrib.admin import utils as admin_utils
from django.contrib.admin.views import main as admin_main
from django.db.models.constants import LOOKUP_SEP

_lock = threading.Lock()
_installed = False
_django_get_fields_from_path = admin_utils.get_fields_from_path


def _container_model(field):
    """The model a document field's paths continue in, or None."""
    from djongo.models.fields import ArrayField, EmbeddedField, container_class

    container = getattr(field, "model_container", None)
    if container is not None and isinstance(field, (EmbeddedField, ArrayField)):
        return container_class(container)
    return None


def get_fields_from_path(model, path):
    """Django's get_fields_from_path, stepping into documents too."""
    pieces = path.split(LOOKUP_SEP)
    fields, in_document = [], False
    parent = model
    for piece in pieces:
        if fields:
            inner = _container_model(fields[-1])
            in_document = in_document or inner is not None
            parent = inner if inner is not None else admin_utils.get_model_from_relation(fields[-1])
        fields.append(parent._meta.get_field(piece))
    if in_document:
        fields[-1] = copy.copy(fields[-1])
        fields[-1].djongo_document_path = path
    return fields


class DocumentValuesFieldListFilter(admin_filters.AllValuesFieldListFilter):
    """AllValuesFieldListFilter for a path into documents: the choices are
    the distinct values at that path in the model admin's queryset (each
    item of an array on its own), sorted; empty values as the admin's empty
    choice."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        self.lookup_kwarg = field_path
        self.lookup_kwarg_isnull = "%s__isnull" % field_path
        self.lookup_val = params.get(self.lookup_kwarg)
        self.lookup_val_isnull = admin_utils.get_last_value_from_parameters(params, self.lookup_kwarg_isnull)
        self.empty_value_display = model_admin.get_empty_value_display()
        values, has_none = set(), False
        for v in model_admin.get_queryset(request).values_list(field_path, flat=True):
            for item in v if isinstance(v, (list, tuple)) else (v,):
                if item is None:
                    has_none = True
                elif not isinstance(item, (dict, list)):
                    values.add(item)
        self.lookup_choices = sorted(values, key=lambda x: (str(type(x)), x)) + ([None] if has_none else [])
        admin_filters.FieldListFilter.__init__(self, field, request, params, model, model_admin, field_path)

    def get_facet_queryset(self, changelist):
        """The facet counts (?_facets): for each choice, how many of the
        changelist's objects -- filtered by the other filters -- hold it
        (an array counts once however many of its items do), counted from
        the values at the path as the choices were."""
        filtered = changelist.get_queryset(self.request, exclude_parameters=self.expected_parameters())
        index = {v: i for i, v in enumerate(self.lookup_choices)}
        counts = [0] * len(self.lookup_choices)
        for v in filtered.values_list(self.field_path, flat=True):
            items = v if isinstance(v, (list, tuple)) else (v,)
            for i in {index[x] for x in items if not isinstance(x, (dict, list)) and x in index}:
                counts[i] += 1
        return {"%d__c" % i: n for i, n in enumerate(counts)}


def install():
    global _installed
    with _lock:
        if _installed:
            return
        for module in (admin_utils, admin_checks, admin_main):
            module.get_fields_from_path = get_fields_from_path
        admin_filters.FieldListFilter.register(lambda f: getattr(f, "djongo_document_path", None) is not None,
                                               DocumentValuesFieldListFilter, take_priority=True)
        _installed = True


install()
