"""Model checks for what MongoDB documents cannot hold."""
from django.apps import apps
from django.core import checks
from django.db.backends.base.validation import BaseDatabaseValidation
from django.db.models import F, OrderBy, UniqueConstraint


def document_path(model, expression):
    """Whether an index expression is a field or a path into a document
    field (F("address__city"), maybe .desc()): what MongoDB indexes."""
    if isinstance(expression, OrderBy):
        expression = expression.expression
    if not isinstance(expression, F):
        return False
    from djongo.models.fields import ArrayField, EmbeddedField, JSONField

    head, _, rest = expression.name.partition("__")
    try:
        field = model._meta.get_field(head)
    except Exception:
        return False
    return not rest or isinstance(field, (EmbeddedField, ArrayField, JSONField))


class DatabaseValidation(BaseDatabaseValidation):
    def check(self, **kwargs):
        """Indexes and unique constraints on expressions MongoDB cannot
        index are not created (schema.py), as Django does on backends
        without expression indexes -- said here, as Django's W043/W044 say
        it there."""
        errors = []
        app_configs = kwargs.get("app_configs")
        models = [m for c in app_configs for m in c.get_models()] if app_configs else apps.get_models()
        for model in models:
            for index in model._meta.indexes:
                if index.contains_expressions and not all(document_path(model, e) for e in index.expressions):
                    errors.append(checks.Warning(
                        "djongo does not create index %r: MongoDB indexes fields and paths into documents "
                        "(F('address__city')), not other expressions." % index.name, obj=model, id="djongo.W002"))
            for c in model._meta.constraints:
                if isinstance(c, UniqueConstraint) and c.contains_expressions:
                    errors.append(checks.Warning(
                        "djongo does not create unique constraint %r on expressions: MongoDB cannot enforce it."
                        % c.name, obj=model, id="djongo.W003"))
        return errors

    def check_field_type(self, field, field_type):
        errors = []
        if field.db_index and field.get_internal_type() == "BinaryField":
            errors.append(checks.Warning(
                "djongo indexes binary fields by their bytes; a db_index on a BinaryField is rarely useful.",
                obj=field, id="djongo.W001"))
        return errors
