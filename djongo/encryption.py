"""Client-side field-level encryption settings and calls (djongo.models'
Encrypted* fields; the createdatakey and rewrapdatakeys commands).

Settings: DATABASES[alias]["OPTIONS"]["ENCRYPTION"]::

    {"KMS": {"local": {"key": "<96 bytes, base64>"}},   # MongoDB's kmsProviders
     "KEY_VAULT": "encryption.__keyVault",               # where data keys live
     "KEY_ALT_NAME": "default"}                          # the fields' default key

KMS takes every provider libmongocrypt knows -- "local", "aws"
({"accessKeyId", "secretAccessKey"[, "sessionToken"]}), "azure"
({"tenantId", "clientId", "clientSecret"}), "gcp" ({"email", "privateKey"}),
"kmip" ({"endpoint"}) -- written as MongoDB's kmsProviders option and handed
to libmongocrypt unchanged (https://www.mongodb.com/docs/manual/core/csfle/reference/kms-providers/).
The encryption itself runs in C (src/crypt) through the connection's own
transport, so the key vault is read with the same commands on the embedded
engine and on a MongoDB server. Values are stored as BSON binary subtype 6
(djongo._values.Encrypted); a client without the key sees only that.
"""
from django.core.exceptions import ImproperlyConfigured

DETERMINISTIC = "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"
RANDOM = "AEAD_AES_256_CBC_HMAC_SHA_512-Random"
DEFAULT_KEY_ALT_NAME = "default"


def settings_of(settings_dict):
    """The ENCRYPTION settings of a database (OPTIONS or the original
    djongo's CLIENT), or None."""
    for section in ("OPTIONS", "CLIENT"):
        holder = settings_dict.get(section)
        if isinstance(holder, dict) and holder.get("ENCRYPTION") is not None:
            return holder["ENCRYPTION"]
    return None


def settings_problems(enc):
    """What is wrong with an ENCRYPTION setting (a list of messages)."""
    if not isinstance(enc, dict):
        return ["OPTIONS.ENCRYPTION must be a dict, not %s" % type(enc).__name__]
    problems = []
    unknown = set(enc) - {"KMS", "KEY_VAULT", "KEY_ALT_NAME"}
    if unknown:
        problems.append("OPTIONS.ENCRYPTION has unknown keys %s (it takes KMS, KEY_VAULT, KEY_ALT_NAME)"
                        % ", ".join(sorted(map(str, unknown))))
    kms = enc.get("KMS")
    if not isinstance(kms, dict) or not kms or not all(isinstance(v, dict) for v in kms.values()):
        problems.append("OPTIONS.ENCRYPTION.KMS must map KMS provider names (local, aws, azure, gcp, kmip) to "
                        "their credentials, e.g. {\"local\": {\"key\": \"<96 bytes, base64>\"}}")
    vault = enc.get("KEY_VAULT", "encryption.__keyVault")
    if not isinstance(vault, str) or vault.count(".") < 1 or vault.startswith(".") or vault.endswith("."):
        problems.append("OPTIONS.ENCRYPTION.KEY_VAULT must be a namespace \"db.collection\", not %r" % (vault,))
    if not isinstance(enc.get("KEY_ALT_NAME", DEFAULT_KEY_ALT_NAME), str):
        problems.append("OPTIONS.ENCRYPTION.KEY_ALT_NAME must be a string")
    return problems


def configure(driver_connection, settings_dict):
    """Gives a new driver connection its KMS providers and key vault, when
    the settings have ENCRYPTION."""
    enc = settings_of(settings_dict)
    if enc is None:
        return
    problems = settings_problems(enc)
    if problems:
        raise ImproperlyConfigured("; ".join(problems))
    driver_connection.set_encryption(enc["KMS"], enc.get("KEY_VAULT", "encryption.__keyVault"))


def default_key_alt_name(connection):
    enc = settings_of(connection.settings_dict) or {}
    return enc.get("KEY_ALT_NAME", DEFAULT_KEY_ALT_NAME)


def _driver(connection):
    """The djongo driver connection of a Django connection (connecting)."""
    if connection.vendor != "djongo":
        raise ImproperlyConfigured("encrypted fields need a djongo database, not %s" % connection.vendor)
    connection.ensure_connection()
    return connection.connection


def encrypt(connection, value, algorithm, key_alt_name):
    with connection.wrap_database_errors:
        return _driver(connection).encrypt(value, algorithm, key_alt_name or default_key_alt_name(connection))


def decrypt(connection, value):
    with connection.wrap_database_errors:
        return _driver(connection).decrypt(value)


def create_data_key(connection, master_key, alt_names):
    """A new data key in the key vault (ClientEncryption.createDataKey):
    its UUID."""
    with connection.wrap_database_errors:
        return _driver(connection).create_data_key(master_key, list(alt_names))


def rewrap_many_data_key(connection, filter=None, master_key=None):
    """KeyVault.rewrapManyDataKey: how many keys were rewrapped."""
    with connection.wrap_database_errors:
        return _driver(connection).rewrap_many_data_key(filter, master_key)
