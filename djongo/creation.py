"""Test databases: a database of the same deployment named test_<NAME> (on
the embedded engine, in the same data directory), dropped before and after
the run unless --keepdb.

`manage.py test --parallel N` on the embedded engine: each worker gets a
clone in a data directory of its own (<HOST>-clone-<n>), so the workers'
transactions do not queue on one directory's write lock (LMDB has one
writer per directory). On a MongoDB server, clones are databases
<NAME>_<n> of the same deployment."""
import shutil

from django.db.backends.base.creation import BaseDatabaseCreation

from djongo import driver


class DatabaseCreation(BaseDatabaseCreation):
    def _drop(self, name):
        self.connection.command({"dropDatabase": 1}, db=name)

    def _create_test_db(self, verbosity, autoclobber, keepdb=False):
        name = self._get_test_db_name()
        if keepdb:
            return name
        self._drop(name)  # MongoDB creates databases on first write
        return name

    def _clone_host(self, suffix):
        return "%s-clone-%s" % (self.connection.get_connection_params()["host"].rstrip("/"), suffix)

    def get_test_db_clone_settings(self, suffix):
        clone = super().get_test_db_clone_settings(suffix)
        if self.connection.embedded:
            clone["HOST"] = self._clone_host(suffix)
        return clone

    def _clone_test_db(self, suffix, verbosity, keepdb=False):
        source = self.connection.settings_dict["NAME"]
        clone = self.get_test_db_clone_settings(suffix)
        target_host = clone.get("HOST") if self.connection.embedded else self.connection.get_connection_params()["host"]
        if self.connection.embedded and not keepdb:
            shutil.rmtree(target_host, ignore_errors=True)
        options = {} if self.connection.embedded else self.connection.get_connection_params()["options"]
        target = driver.connect(target_host, db=clone["NAME"], autocommit=True, options=options)
        try:
            if not keepdb:
                target.command({"dropDatabase": 1})
            infos = self.connection.command({"listCollections": 1}, db=source)["cursor"]["firstBatch"]
            for info in infos:
                name = info["name"]
                # the options go with it: a table's CHECK constraints are its validator
                target.command({"create": name, **(info.get("options") or {})})
                if info.get("type") == "view":
                    continue
                docs = self.connection.command({"find": name, "filter": {}}, db=source)["cursor"]["firstBatch"]
                for i in range(0, len(docs), 1000):
                    target.command({"insert": name, "documents": docs[i:i + 1000], "bypassDocumentValidation": True})
                indexes = [{k: v for k, v in ix.items() if k not in ("v", "ns")}
                           for ix in self.connection.command({"listIndexes": name}, db=source)["cursor"]["firstBatch"]
                           if ix["name"] != "_id_"]
                if indexes:
                    target.command({"createIndexes": name, "indexes": indexes})
        finally:
            target.close()

    def _destroy_test_db(self, test_database_name, verbosity):
        base = self.connection.settings_dict["NAME"]
        if self.connection.embedded and test_database_name.startswith(base + "_"):
            # a worker's clone: its own data directory
            shutil.rmtree(self._clone_host(test_database_name[len(base) + 1:]), ignore_errors=True)
            return
        self._drop(test_database_name)

    def sql_table_creation_suffix(self):
        return ""
