"""Test databases: a database of the same deployment named test_<NAME> (on
the embedded engine, in the same data directory), dropped before and after
the run unless --keepdb."""
from django.db.backends.base.creation import BaseDatabaseCreation


class DatabaseCreation(BaseDatabaseCreation):
    def _drop(self, name):
        self.connection.command({"dropDatabase": 1}, db=name)

    def _create_test_db(self, verbosity, autoclobber, keepdb=False):
        name = self._get_test_db_name()
        if keepdb:
            return name
        self._drop(name)  # MongoDB creates databases on first write
        return name

    def _destroy_test_db(self, test_database_name, verbosity):
        self._drop(test_database_name)

    def sql_table_creation_suffix(self):
        return ""
