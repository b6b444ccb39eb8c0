"""Checks: the settings a connection is made from (djongo.E01x, once at
connection setup and in `manage.py check`), and what MongoDB documents
cannot hold (model checks, djongo.W00x)."""
import difflib
import os

from django.apps import apps
from django.core import checks
from django.db.backends.base.validation import BaseDatabaseValidation
from django.db.models import UniqueConstraint

# ---- settings ----

# The keys of a DATABASES entry: Django's own (django/db/utils.py fills the
# defaults) and the original djongo's.
DJANGO_KEYS = {"ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS", "TEST", "ATOMIC_REQUESTS",
               "AUTOCOMMIT", "CONN_MAX_AGE", "CONN_HEALTH_CHECKS", "TIME_ZONE", "DISABLE_SERVER_SIDE_CURSORS"}
DJONGO_KEYS = {"CLIENT", "ENFORCE_SCHEMA", "LOGGING"}
# OPTIONS / CLIENT: the original djongo's CLIENT keys, and the MongoDB
# connection-string options libmongoc knows (case does not matter there):
# https://www.mongodb.com/docs/manual/reference/connection-string-options/
CLIENT_KEYS = {"host", "port", "username", "password", "name", "enforce_schema", "ENFORCE_SCHEMA", "autocommit",
               "TTL_MONITOR_SLEEP_SECS", "ENCRYPTION", "SCHEMA_VALIDATION"}
URI_OPTIONS = {o.lower() for o in (
    "appName", "authMechanism", "authMechanismProperties", "authSource", "compressors", "connectTimeoutMS",
    "directConnection", "heartbeatFrequencyMS", "journal", "loadBalanced", "localThresholdMS", "maxIdleTimeMS",
    "maxPoolSize", "maxConnecting", "maxStalenessSeconds", "minPoolSize", "proxyHost", "proxyPort", "proxyUsername",
    "proxyPassword", "readConcernLevel", "readPreference", "readPreferenceTags", "replicaSet", "retryReads",
    "retryWrites", "serverMonitoringMode", "serverSelectionTimeoutMS", "serverSelectionTryOnce", "socketTimeoutMS",
    "srvMaxHosts", "srvServiceName", "ssl", "tls", "tlsAllowInvalidCertificates", "tlsAllowInvalidHostnames",
    "tlsCAFile", "tlsCertificateKeyFile", "tlsCertificateKeyFilePassword", "tlsDisableCertificateRevocationCheck",
    "tlsDisableOCSPEndpointCheck", "tlsInsecure", "w", "waitQueueTimeoutMS", "wTimeoutMS", "zlibCompressionLevel",
    "timeoutMS")}


def _did_you_mean(key, known):
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    return "did you mean %r?" % close[0] if close else None


def settings_errors(alias, settings_dict):
    """What is wrong in DATABASES[alias] for djongo, as system-check errors
    naming the key and the values it accepts."""
    from djongo.base import _is_path  # (base imports this module)

    errors = []
    where = "DATABASES[%r]" % alias

    def error(msg, hint, id):
        errors.append(checks.Error("%s: %s" % (where, msg), hint=hint, id=id))

    for key in sorted(set(settings_dict) - DJANGO_KEYS - DJONGO_KEYS):
        error("unknown key %r" % key, _did_you_mean(key, DJANGO_KEYS | DJONGO_KEYS) or
              "djongo reads %s and Django's own keys" % ", ".join(sorted(DJONGO_KEYS)), "djongo.E010")
    for key in ("ENFORCE_SCHEMA",):
        for holder, name in ((settings_dict, key), (settings_dict.get("OPTIONS") or {}, "OPTIONS.ENFORCE_SCHEMA")):
            if key in holder and not isinstance(holder[key], bool):
                error("%s must be True or False, not %r" % (name, holder[key]),
                      "a string such as 'False' would read as true", "djongo.E011")
    ttl = (settings_dict.get("OPTIONS") or {}).get("TTL_MONITOR_SLEEP_SECS") if isinstance(
        settings_dict.get("OPTIONS"), dict) else None
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0):
        error("OPTIONS.TTL_MONITOR_SLEEP_SECS must be a positive whole number of seconds, not %r" % (ttl,),
              None, "djongo.E011")
    if isinstance(settings_dict.get("OPTIONS"), dict) or isinstance(settings_dict.get("CLIENT"), dict):
        from djongo import encryption

        enc = encryption.settings_of(settings_dict)
        for problem in encryption.settings_problems(enc) if enc is not None else ():
            error(problem, "see the README's \"Encrypted fields\" section", "djongo.E016")
    level = (settings_dict.get("OPTIONS") or {}).get("SCHEMA_VALIDATION") if isinstance(
        settings_dict.get("OPTIONS"), dict) else None
    if level is not None and level not in ("strict", "moderate", "off"):
        error("OPTIONS.SCHEMA_VALIDATION must be 'strict', 'moderate' or 'off', not %r" % (level,),
              "the collection's validationLevel (https://www.mongodb.com/docs/manual/core/schema-validation/)",
              "djongo.E011")
    for section in ("OPTIONS", "CLIENT"):
        value = settings_dict.get(section)
        if value is None:
            continue
        if not isinstance(value, dict):
            error("%s must be a dict, not %s" % (section, type(value).__name__), None, "djongo.E012")
            continue
        for key in sorted(value):
            if key not in CLIENT_KEYS and str(key).lower() not in URI_OPTIONS:
                error("unknown %s key %r" % (section, key),
                      _did_you_mean(key, CLIENT_KEYS | URI_OPTIONS) or
                      "accepted: host, port, username, password and MongoDB's connection-string options "
                      "(https://www.mongodb.com/docs/manual/reference/connection-string-options/)", "djongo.E012")
    host = settings_dict.get("HOST") or ""
    if not isinstance(host, str):
        error("HOST must be a string, not %s" % type(host).__name__, None, "djongo.E013")
    elif host and not host.startswith(("mongodb://", "mongodb+srv://")):
        if _is_path(host):
            path = os.path.expanduser(host[5:] if host.startswith("file:") else host)
            parent = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(parent):
                error("HOST %r: its parent directory %s does not exist" % (host, parent),
                      "create the parent directory (djongo makes only the data directory itself)", "djongo.E014")
        elif os.path.exists(host):
            error("HOST %r names a file or directory here, but is read as a server's host name" % host,
                  "write %r for a data directory (a path starts with /, ./, ../ or ~), or a mongodb:// URI "
                  "for a server" % ("./" + host), "djongo.E013")
    if isinstance(host, str) and not any(e.id in ("djongo.E012", "djongo.E013") for e in errors):
        # the server's connection options, by the code that will set them
        # (libmongoc's URI API, src/transport/uri.c): a wrong type, an
        # unknown readPreference, tags with primary, a TLS file that cannot
        # be read, a compressor libmongoc lacks... said before any connection
        from djongo.base import connection_settings
        from djongo.driver import check_server_options

        server, options = connection_settings(settings_dict)
        problem = check_server_options(server, options)  # (a data directory: its read/write concerns)
        if problem:
            error("connection option: %s" % problem,
                  "OPTIONS (or CLIENT) holds MongoDB's connection-string options, as Python values: "
                  "True/False, numbers, lists (https://www.mongodb.com/docs/manual/reference/connection-string-options/)",
                  "djongo.E015")
    return errors



def untranslatable(connection, make_sql):
    """Why djongo's compiler refuses the SQL make_sql(schema_editor) writes
    for an index or a constraint (its NotSupportedError's message), or None
    when it takes it."""
    from djongo import driver

    with connection.schema_editor(collect_sql=True, atomic=False) as editor:
        sql = make_sql(editor)
    if sql is None:
        return None
    try:
        driver.translate(str(sql), None, connection.settings_dict["NAME"])
    except driver.NotSupportedError as e:
        return str(e)
    return None


class DatabaseValidation(BaseDatabaseValidation):
    def check(self, **kwargs):
        """The connection's settings; then the indexes and unique
        constraints on expressions djongo cannot make (an expression is a
        hidden computed field: src/compile/ddl.c; a subquery, say, cannot be
        one) are not created (schema.py), as Django does on backends without
        expression indexes -- said here, as Django's W043/W044 say it there."""
        # Django's own database checks first (a backend's check() extends
        # them, as MySQL's does), then djongo's
        errors = [*super().check(**kwargs), *settings_errors(self.connection.alias, self.connection.settings_dict)]
        app_configs = kwargs.get("app_configs")
        models = [m for c in app_configs for m in c.get_models()] if app_configs else apps.get_models()
        for model in models:
            for index in model._meta.indexes:
                why = index.contains_expressions and untranslatable(
                    self.connection, lambda editor: index.create_sql(model, editor))
                if why:
                    errors.append(checks.Warning("djongo does not create index %r: %s" % (index.name, why),
                                                 obj=model, id="djongo.W002"))
            for c in model._meta.constraints:
                why = isinstance(c, UniqueConstraint) and c.contains_expressions and untranslatable(
                    self.connection, lambda editor: c.create_sql(model, editor))
                if why:
                    errors.append(checks.Warning("djongo does not create unique constraint %r: %s" % (c.name, why),
                                                 obj=model, id="djongo.W003"))
        return errors

    def check_field_type(self, field, field_type):
        errors = []
        if field.db_index and field.get_internal_type() == "BinaryField":
            errors.append(checks.Warning(
                "djongo indexes binary fields by their bytes; a db_index on a BinaryField is rarely useful.",
                obj=field, id="djongo.W001"))
        return errors
