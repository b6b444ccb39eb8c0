"""The SQL compilers Django uses on djongo (DatabaseOperations.compiler_module,
as Django's MySQL and Oracle backends have theirs): Django's own, but for
SQLInsertCompiler.assemble_as_sql's common case.

An INSERT's rows are values Django has prepared already (as_sql's
value_rows); assemble_as_sql turns them into placeholder rows and parameter
rows through field_as_sql(), a call per value that makes a list and a tuple
each, then zips and flattens them: for bulk_create of 1,000 four-field rows
that is 4,000 calls and some 7,000 short-lived containers, which also keep
the garbage collector busy (its young-generation collections count them).
When every value is a plain parameter the answer is known without them.
"""
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models.sql import compiler

SQLCompiler = compiler.SQLCompiler
SQLDeleteCompiler = compiler.SQLDeleteCompiler
SQLUpdateCompiler = compiler.SQLUpdateCompiler
SQLAggregateCompiler = compiler.SQLAggregateCompiler


class SQLInsertCompiler(compiler.SQLInsertCompiler):
    def assemble_as_sql(self, fields, value_rows):
        """Django's answer, given directly when each value is a parameter as
        it is: no raw value (a field None), no field with get_placeholder(),
        no expression (as_sql) among the values, and the operations'
        modify_insert_params() Django's (it returns the parameters as they
        are). Then every row's placeholders are "%s" per field -- one tuple
        shared by the rows -- and its parameters its values; anything else
        takes Django's way."""
        if (not value_rows
                or type(self.connection.ops).modify_insert_params is not BaseDatabaseOperations.modify_insert_params
                or any(f is None or getattr(f, "get_placeholder", None) is not None for f in fields)):
            return super().assemble_as_sql(fields, value_rows)
        for row in value_rows:
            for value in row:
                if hasattr(value, "as_sql"):
                    return super().assemble_as_sql(fields, value_rows)
        # (the rows' lists are as_sql's own, which it reads and never
        # changes; the outer list is new: as_sql appends the returning
        # parameters to it)
        return [("%s",) * len(fields)] * len(value_rows), list(value_rows)
