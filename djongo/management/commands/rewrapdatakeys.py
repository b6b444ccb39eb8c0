"""``manage.py rewrapdatakeys``: key rotation for encrypted fields, as
KeyVault.rewrapManyDataKey
(https://www.mongodb.com/docs/manual/reference/method/KeyVault.rewrapManyDataKey/):
each data key matching --filter is decrypted with its master key and
encrypted again -- with the --kms-provider/--master-key given, or with its
own master key (after the KMS provider's key was rotated, or a new local
key put first in the settings) -- and written back. The data keys
themselves do not change, so every value encrypted with them stays
readable: nothing else is rewritten.

  manage.py rewrapdatakeys                                    every key, its own master key
  manage.py rewrapdatakeys --filter '{"keyAltNames": "ssn-key"}'
  manage.py rewrapdatakeys --kms-provider aws --master-key '{"region": ..., "key": ...}'


libmongocrypt 1.7 holds one "local" provider per handle, so a local master
key cannot be swapped for another local one in a single rewrap; moving the
keys to another provider (--kms-provider aws ...) and rewrapping them with
their own master key both work."""
import json

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, DatabaseError

from djongo import encryption
from djongo.management.commands.createdatakey import encryption_connection, master_key_option


class Command(BaseCommand):
    help = "Rewraps data keys of the key vault with a (new) master key: rewrapManyDataKey."

    def add_arguments(self, parser):
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)
        parser.add_argument("--filter", default="", help="JSON: a query on the key vault (default: every key)")
        parser.add_argument("--kms-provider", default=None, help="the provider to rewrap with (default: each key's)")
        parser.add_argument("--master-key", default="", help="JSON: that provider's master key fields")

    def handle(self, **options):
        connection = encryption_connection(options["database"])
        try:
            query = json.loads(options["filter"]) if options["filter"] else None
        except ValueError as e:
            raise CommandError("--filter must be a JSON object: %s" % e)
        if query is not None and not isinstance(query, dict):
            raise CommandError("--filter must be a JSON object")
        if options["master_key"] and not options["kms_provider"]:
            raise CommandError("--master-key needs --kms-provider")
        master = master_key_option(options["kms_provider"], options["master_key"]) if options["kms_provider"] else None
        try:
            n = encryption.rewrap_many_data_key(connection, query, master)
        except DatabaseError as e:
            raise CommandError("cannot rewrap the data keys: %s" % e)
        self.stdout.write("%d data key%s rewrapped." % (n, "" if n == 1 else "s"))
