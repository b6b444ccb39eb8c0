"""Model checks for what MongoDB documents cannot hold."""
from django.core import checks
from django.db.backends.base.validation import BaseDatabaseValidation


class DatabaseValidation(BaseDatabaseValidation):
    def check_field_type(self, field, field_type):
        errors = []
        if field.db_index and field.get_internal_type() == "BinaryField":
            errors.append(checks.Warning(
                "djongo indexes binary fields by their bytes; a db_index on a BinaryField is rarely useful.",
                obj=field, id="djongo.W001"))
        return errors
