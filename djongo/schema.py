"""Migrations on documents: Django's schema editor with djongo's DDL.

Tables are collections (CREATE TABLE also records the column list and
types in __djongo_tables); primary keys and unique constraints are unique
indexes (a nullable UNIQUE column gets a partial index, so many NULLs are
allowed as in SQL); conditional constraints and indexes are partial
indexes; indexes on document paths (Index(F("address__city"))) are
MongoDB dot-path indexes; other expression indexes and unique constraints
are not created, with a warning (as Django does on backends without
expression indexes; djongo.W002/W003 say it at check time). Adding a
column with a default backfills existing documents; renaming or dropping
one renames or unsets the field in every document. NOT NULL is recorded
with the table and checked on INSERT and UPDATE (IntegrityError); ALTER
COLUMN TYPE records the type and converts the stored values SQL would
(src/compile/ddl.c), keeping those that do not convert. CHECK constraints
(a column's, like PositiveIntegerField's, and CheckConstraint) become the
collection's validator; foreign keys are recorded with the table, for
introspection and connection.check_constraints() (Django's collector does
the cascades).
"""
import logging

from django.db.backends.base.schema import BaseDatabaseSchemaEditor

from djongo import jsonschema
from djongo.operations import sql_literal

logger = logging.getLogger("djongo")


class DatabaseSchemaEditor(BaseDatabaseSchemaEditor):
    sql_create_table = "CREATE TABLE %(table)s (%(definition)s)"
    sql_delete_table = "DROP TABLE %(table)s"
    sql_rename_table = "ALTER TABLE %(old_table)s RENAME TO %(new_table)s"
    sql_create_column = "ALTER TABLE %(table)s ADD COLUMN %(column)s %(definition)s"
    sql_delete_column = "ALTER TABLE %(table)s DROP COLUMN %(column)s"
    sql_rename_column = "ALTER TABLE %(table)s RENAME COLUMN %(old_column)s TO %(new_column)s"
    sql_create_index = "CREATE INDEX %(name)s ON %(table)s (%(columns)s)%(extra)s%(condition)s"
    sql_create_unique_index = "CREATE UNIQUE INDEX %(name)s ON %(table)s (%(columns)s)%(condition)s"
    sql_delete_index = "DROP INDEX %(name)s ON %(table)s"
    sql_create_unique = "ALTER TABLE %(table)s ADD CONSTRAINT %(name)s UNIQUE (%(columns)s)"
    sql_delete_unique = "ALTER TABLE %(table)s DROP CONSTRAINT %(name)s"
    sql_create_pk = "ALTER TABLE %(table)s ADD CONSTRAINT %(name)s PRIMARY KEY (%(columns)s)"
    sql_delete_pk = "ALTER TABLE %(table)s DROP CONSTRAINT %(name)s"
    sql_delete_constraint = "ALTER TABLE %(table)s DROP CONSTRAINT %(name)s"
    sql_create_check = "ALTER TABLE %(table)s ADD CONSTRAINT %(name)s CHECK (%(check)s)"
    sql_delete_check = "ALTER TABLE %(table)s DROP CONSTRAINT %(name)s"
    sql_create_fk = ("ALTER TABLE %(table)s ADD CONSTRAINT %(name)s FOREIGN KEY (%(column)s) "
                     "REFERENCES %(to_table)s (%(to_column)s)%(deferrable)s")
    sql_create_inline_fk = None
    sql_delete_fk = "ALTER TABLE %(table)s DROP CONSTRAINT %(name)s"
    sql_create_column_inline_fk = None
    sql_alter_column_collate = None
    sql_alter_column_comment = None
    sql_alter_table_comment = None

    # ---- SCHEMA_VALIDATION (djongo/jsonschema.py): the validator follows
    # each change of the model's fields and constraints ----

    def _sync_validator(self, model, replace=None):
        if not self.collect_sql:  # sqlmigrate: nothing runs
            jsonschema.sync(self.connection, model, replace)

    def create_model(self, model):
        super().create_model(model)
        self._sync_validator(model)

    def add_field(self, model, field):
        super().add_field(model, field)
        self._sync_validator(model)

    def remove_field(self, model, field):
        super().remove_field(model, field)
        self._sync_validator(model, replace={field: None})

    def alter_field(self, model, old_field, new_field, strict=False):
        super().alter_field(model, old_field, new_field, strict)
        self._sync_validator(model, replace={old_field: new_field})

    def add_constraint(self, model, constraint):
        super().add_constraint(model, constraint)
        self._sync_validator(model)

    def remove_constraint(self, model, constraint):
        self._remove_constraint(model, constraint)
        self._sync_validator(model)

    def execute(self, sql, params=()):
        """As Django's, and when collecting SQL (sqlmigrate), each statement
        is followed by the MongoDB commands it becomes, as comments."""
        if sql is None:
            return  # a constraint not created (an untranslatable CHECK), deferred by Django all the same
        if self._unindexable(str(sql), params):
            return
        super().execute(sql, params)
        if self.collect_sql and sql is not None:
            from djongo import driver
            try:
                commands = driver.translate(str(sql), list(params) if params is not None else None,
                                            self.connection.settings_dict["NAME"])
            except driver.Error as e:
                commands = ("(not translated: %s)" % e,)
            self.collected_sql.extend("-- MongoDB: %s" % c for c in commands)

    def _unindexable(self, sql, params):
        """An index or unique constraint on expressions MongoDB cannot index
        (anything but fields and paths into documents, e.g. Lower("name"))
        is not created, with a warning, as Django does on backends without
        expression indexes (validation.py's check says so up front)."""
        if not (sql.startswith(("CREATE INDEX", "CREATE UNIQUE INDEX")) and "((" in sql):
            return False
        from djongo import driver
        try:
            driver.translate(sql, list(params) if params else None, self.connection.settings_dict["NAME"])
        except driver.NotSupportedError as e:
            logger.warning("index skipped: %s -- %s (MongoDB indexes fields and document paths)", sql, e)
            return True
        except driver.Error:
            return False  # an index SQL refuses (RANDOM()): running it raises Django's error
        return False

    def _translatable_check(self, name, check, warn=True):
        """Whether the compiler can make a validator of a CHECK condition
        (SQL text). One it refuses (a function or a pattern it does not
        translate) is not created, with a warning, as indexes on expressions
        are: rows are then not checked against it, as before djongo had
        CHECK constraints, rather than the migration failing."""
        from djongo import driver
        try:
            driver.translate('CREATE TABLE "t" (CHECK (%s))' % check, None, self.connection.settings_dict["NAME"])
        except driver.NotSupportedError as e:
            if warn:
                logger.warning("CHECK constraint %s skipped: %s -- %s", name, check, e)
            return False
        return True

    def _check_sql(self, name, check):
        return super()._check_sql(name, check) if self._translatable_check(name, check) else None

    def _create_check_sql(self, model, name, check):
        return super()._create_check_sql(model, name, check) if self._translatable_check(name, check) else None

    def _remove_constraint(self, model, constraint):
        from django.db.models import CheckConstraint
        if isinstance(constraint, CheckConstraint) and not self._translatable_check(
                constraint.name, constraint._get_check_sql(model, self), warn=False):
            return  # never created
        super().remove_constraint(model, constraint)

    def quote_value(self, value):
        """Renders a value as a SQL literal (for sqlmigrate's output and
        defaults written into DDL text); statements run bind values."""
        return sql_literal(value, binary=False)

    def prepare_default(self, value):
        return self.quote_value(value)

    def _field_data_type(self, field):
        return field.db_type(self.connection)

    def _alter_column_type_sql(self, model, old_field, new_field, new_type, old_collation, new_collation):
        # the table's entry records the type and the collation (none:
        # binary), and whether the column numbers itself: TYPE declares the
        # whole type, AUTOINCREMENT (an AutoField's suffix) included
        collate = " " + self._collate_sql(new_collation) if new_collation else ""
        suffix = new_field.db_type_suffix(connection=self.connection)
        return ("ALTER COLUMN %s TYPE %s%s%s" % (self.quote_name(new_field.column), new_type, collate,
                                                 " " + suffix if suffix else ""), []), []

    def _delete_constraint_sql(self, template, model, name):
        if template is None:
            return None
        return super()._delete_constraint_sql(template, model, name)
