"""What the djongo backend can do, stated truthfully (Django's test suite and
ORM read these). Where the answer differs between the embedded engine and a
MongoDB server, it is a property that asks the connection."""
from django.db.backends.base.features import BaseDatabaseFeatures
from django.db.utils import InterfaceError
from django.utils.functional import cached_property


class DatabaseFeatures(BaseDatabaseFeatures):
    minimum_database_version = None
    # a closed cursor's execute() raises InterfaceError (djongo/driver.py
    # Cursor._check), as psycopg's does
    closed_cursor_error_class = InterfaceError
    # QuerySet.explain(): MongoDB's explain (queryPlanner) of the read, as
    # JSON text whatever the format asked (operations.explain_prefix)
    supports_explaining_query_execution = True
    # CAST(datetime AS time) keeps the microseconds a DATETIME column keeps
    # beside its BSON date (src/compile/exact_dt.c)
    time_cast_precision = 6
    supported_explain_formats = {"JSON"}
    # Transactions: the engine has them (begun at an atomic block's first
    # statement: a read snapshot until the first write takes the write lock,
    # nested LMDB transactions for savepoints; djongo/driver.py); a MongoDB
    # server has them on replica sets, with no savepoints (the driver
    # refuses those by name) -- djongo-server has savepoints too
    # (uses_savepoints below).
    supports_transactions = True
    atomic_transactions = True
    can_release_savepoints = True
    # Integer AUTOINCREMENT keys come back from INSERT ... RETURNING.
    can_return_columns_from_insert = True
    can_return_rows_from_bulk_insert = True
    has_bulk_insert = True
    # INSERT ... ON CONFLICT (unique_fields) DO UPDATE SET f = EXCLUDED.f:
    # one upsert per row (INSERT OR IGNORE: supports_ignore_conflicts below)
    supports_update_conflicts = True
    supports_update_conflicts_with_target = True
    # Foreign keys are recorded with the table (ALTER TABLE ADD CONSTRAINT
    # ... FOREIGN KEY, in __djongo_tables) and checked by the executor
    # (src/exec/constraint.c): a write whose child rows lack their parent,
    # or that removes a parent still referenced, fails with IntegrityError
    # at the statement's end, or at COMMIT for Django's DEFERRABLE INITIALLY
    # DEFERRED keys inside a transaction. connection.check_constraints()
    # looks for such rows after loaddata (which turns the checks off), as on
    # SQLite. Django's collector does the cascades.
    supports_foreign_keys = True
    can_defer_constraint_checks = True
    can_create_inline_fk = False
    supports_forward_references = True
    # Unique constraints are unique indexes (partial for conditions); CHECK
    # constraints, on columns and tables, are the collection's validator
    # (src/compile/ddl.c): a violation is IntegrityError.
    supports_column_check_constraints = True
    supports_table_check_constraints = True
    supports_partial_indexes = True
    # paths into documents (F("address__city")) as they are, other expressions
    # as hidden computed fields (src/compile/ddl.c, compile_create_index)
    supports_expression_indexes = True
    supports_covering_indexes = False
    supports_deferrable_unique_constraints = False
    supports_index_on_text_field = True
    supports_functions_in_partial_indexes = False
    can_rename_index = False
    # Values: BSON keeps types; what it has no type for is stored as Django's
    # fallback (durations as microseconds, time as ISO text).
    has_native_uuid_field = True
    has_native_duration_field = False
    # Django's JSONField: stored as BSON, not JSON text (djongo/jsonfield.py);
    # "native" tells Django not to parse key-lookup values as JSON text
    has_native_json_field = True
    supports_json_field = True
    supports_json_field_contains = True
    json_key_contains_list_matching_requires_list = True  # PostgreSQL's @>: [{'f': 'g'}], not {'f': 'g'}
    supports_timezones = False
    # a DATETIME column keeps a BSON date (milliseconds) and the microseconds
    # below it in "<column>__us" (src/compile/exact_dt.c; README "Datetimes")
    supports_microsecond_precision = True
    has_zoneinfo_database = True
    supports_unspecified_pk = False
    supports_boolean_expr_in_select_clause = True
    # SQL the compiler translates.
    supports_over_clause = True
    # RANGE frames with offsets (one numeric ORDER BY key) and GROUPS frames
    # are MongoDB range windows (src/compile/window.c); EXCLUDE CURRENT ROW /
    # GROUP / TIES filter the frame's $push'ed rows
    supports_frame_range_fixed_distance = True
    supports_frame_exclusion = True
    only_supports_unbounded_with_preceding_and_following = False
    supports_aggregate_filter_clause = True
    supports_slicing_ordering_in_compound = True
    supports_parentheses_in_compound = False
    order_by_nulls_first = True  # MongoDB sorts null (and missing) first, as SQLite
    # select_for_update(): SELECT ... FOR UPDATE, whose first command claims
    # the rows by writing them in the transaction (src/compile/write.c:
    # cx_compile_claim), so a concurrent read-modify-write serialises -- on
    # the embedded engine that write takes the data directory's write lock.
    # Its variants are not translated: Django raises NotSupportedError for
    # nowait/skip_locked/of/no_key while these say False, and for a LIMIT.
    has_select_for_update = True
    has_select_for_update_nowait = False
    has_select_for_update_skip_locked = False
    has_select_for_update_of = False
    has_select_for_no_key_update = False
    supports_select_for_update_with_limit = True  # the claim takes the rows the LIMIT reads (compile/write.c)
    # AUTOINCREMENT counters are reset as SQLite's (operations.py,
    # sequence_reset_by_name_sql)
    supports_sequence_reset = True
    # a Subquery/Exists GROUP BY key is looked up per row before $group (src/compile/select.c)
    supports_subqueries_in_group_by = True
    supports_tuple_lookups = False
    supports_default_keyword_in_insert = False
    supports_default_keyword_in_bulk_insert = True
    requires_literal_defaults = False
    supports_cast_with_precision = False
    # ~ / ~* are $regexMatch: PCRE (the engine's PCRE2, as MongoDB's since
    # 6.1), so a group's backreference (\1) matches what the group did
    supports_regex_backreferencing = True
    supports_comments = False
    supports_comments_inline = False
    supports_stored_generated_columns = True
    # a VIRTUAL generated column is computed by each write of its row, as a
    # STORED one (src/compile/ddl.c, generated_expr, says why that is exact)
    supports_virtual_generated_columns = True
    # Collate(expr, name) and a column's db_collation (djongo/collations.py)
    # in comparisons and ORDER BY: sort keys under an ICU collation, on the
    # embedded engine (src/compile/function.c names them: binary or C,
    # nocase, <locale>-x-icu, <locale>-u-ks-level1|2|3).
    test_collations = {"ci": "nocase", "cs": "binary", "swedish_ci": "sv-u-ks-level2", "non_default": "sv-x-icu",
                       "virtual": "sv-x-icu"}
    supports_collation_on_charfield = True
    supports_collation_on_textfield = True
    supports_non_deterministic_collations = False
    supports_paramstyle_pyformat = True  # djongo/driver.py, _pyformat
    supports_unlimited_charfield = True
    ignores_table_name_case = False
    can_clone_databases = True
    test_db_allows_multiple_connections = True
    supports_temporal_subtraction = True
    greatest_least_ignores_nulls = True
    allows_auto_pk_0 = True
    insert_test_table_with_defaults = 'INSERT INTO {} ("null") VALUES (1)'
    introspected_field_types = {
        **BaseDatabaseFeatures.introspected_field_types,
        "BooleanField": "BooleanField",
        "DurationField": "BigIntegerField",
        "GenericIPAddressField": "CharField",
        "PositiveBigIntegerField": "PositiveBigIntegerField",
        "PositiveIntegerField": "PositiveIntegerField",
        "PositiveSmallIntegerField": "PositiveSmallIntegerField",
        # a SmallAutoField's column is integer AUTOINCREMENT (base.py
        # data_types, as SQLite's): it introspects as an AutoField
        "SmallAutoField": "AutoField",
        "TimeField": "TimeField",
        "UUIDField": "UUIDField",
    }

    @cached_property
    def supports_ignore_conflicts(self):
        # INSERT OR IGNORE skips what a unique index refuses: the write
        # errors it ignores. In a MongoDB transaction a write error aborts
        # the whole transaction (SERVER-34059: a DuplicateKeyError aborts
        # the transaction, https://jira.mongodb.org/browse/SERVER-34059),
        # and Django runs every bulk_create() and many-to-many add() in one
        # (atomic(savepoint=False)); so on a server djongo does not offer
        # it: Django then adds a many-to-many row only when it is missing
        # (_get_missing_target_ids), and bulk_create(...,
        # ignore_conflicts=True) raises NotSupportedError instead of
        # aborting the transaction at the first conflict.
        return self.connection.embedded

    @cached_property
    def uses_savepoints(self):
        # the embedded engine's savepoints are nested LMDB transactions;
        # djongo-server runs them the same way inside a MongoDB transaction
        # (its djongoSavepoint commands, src/server/sessions.c); MongoDB has none
        if self.connection.embedded:
            return True
        self.connection.ensure_connection()
        if self.connection.connection.djongo_has("savepoints"):
            return True
        # no, or no server to ask (djongo_has says no then too): a ping
        # raises in that case, so that no answer is kept for this connection
        with self.connection.wrap_database_errors:
            self.connection.connection.command({"ping": 1}, db="admin", outside_transaction=True)
        return False

    @cached_property
    def can_rollback_ddl(self):
        # the engine's DDL is documents in the same LMDB transaction; a
        # server cannot drop or create collections inside a transaction
        return self.connection.embedded

    @cached_property
    def django_test_skips(self):
        skips = {}
        if self.connection.embedded:
            skips["the embedded engine has one write lock per data directory, as SQLite: a transaction that "
                  "holds it (select_for_update() included) makes every other writer wait, not only the "
                  "writers of its rows"] = {
                "get_or_create.tests.UpdateOrCreateTransactionTests.test_creation_in_transaction",
            }
        return skips
