"""``manage.py createdatakey``: a data key for djongo.models' Encrypted*
fields, made by libmongocrypt with a KMS provider's master key and
inserted into the key vault of OPTIONS["ENCRYPTION"] (as
ClientEncryption.createDataKey; https://www.mongodb.com/docs/manual/core/csfle/fundamentals/manage-keys/).

  manage.py createdatakey                          the "local" provider, keyAltName
                                                   OPTIONS["ENCRYPTION"]["KEY_ALT_NAME"] (else "default")
  manage.py createdatakey --alt-name ssn-key
  manage.py createdatakey --kms-provider aws --master-key '{"region": "us-east-1", "key": "arn:..."}'

Prints the new key's UUID. A keyAltName already in the vault is refused
(the vault's unique index on keyAltNames)."""
import json

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from djongo import encryption


def master_key_option(provider, text):
    """--kms-provider and --master-key (JSON: the provider's masterKey
    fields) as libmongocrypt's key encryption key document."""
    try:
        fields = json.loads(text) if text else {}
    except ValueError as e:
        raise CommandError("--master-key must be a JSON object: %s" % e)
    if not isinstance(fields, dict):
        raise CommandError("--master-key must be a JSON object")
    return {"provider": provider, **fields}


def encryption_connection(alias):
    connection = connections[alias]
    if connection.vendor != "djongo" or encryption.settings_of(connection.settings_dict) is None:
        raise CommandError("database %r has no OPTIONS[\"ENCRYPTION\"] (djongo's encrypted fields)" % alias)
    return connection


class Command(BaseCommand):
    help = "Creates a data key for encrypted fields in the key vault of OPTIONS[\"ENCRYPTION\"]."

    def add_arguments(self, parser):
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)
        parser.add_argument("--kms-provider", default="local",
                            help="a provider of OPTIONS[\"ENCRYPTION\"][\"KMS\"]: local, aws, azure, gcp, kmip")
        parser.add_argument("--master-key", default="",
                            help="JSON: the provider's master key fields (aws: region, key; azure: keyVaultEndpoint, "
                                 "keyName; gcp: projectId, location, keyRing, keyName; kmip: keyId)")
        parser.add_argument("--alt-name", action="append", dest="alt_names",
                            help="a keyAltName (repeatable); default: OPTIONS[\"ENCRYPTION\"][\"KEY_ALT_NAME\"]")

    def handle(self, **options):
        connection = encryption_connection(options["database"])
        names = options["alt_names"] or [encryption.default_key_alt_name(connection)]
        try:
            key_id = encryption.create_data_key(connection, master_key_option(options["kms_provider"],
                                                                              options["master_key"]), names)
        except DatabaseError as e:
            raise CommandError("cannot create the data key: %s" % e)
        self.stdout.write(str(key_id))
