"""manage.py dbshell: mongosh when it is installed and HOST is a server;
otherwise djongo-sql, the SQL prompt over the same connection settings."""
import shutil

from django.db.backends.base.client import BaseDatabaseClient


class DatabaseClient(BaseDatabaseClient):
    executable_name = "djongo-sql"

    @classmethod
    def settings_to_cmd_args_env(cls, settings_dict, parameters):
        from djongo.base import _is_path, host_for_settings
        host = host_for_settings(settings_dict)
        if not _is_path(host) and shutil.which("mongosh"):
            return ["mongosh", host.rstrip("/") + "/" + settings_dict["NAME"], *parameters], None
        return [cls.executable_name, "--host", host, "--db", settings_dict["NAME"], *parameters], None
