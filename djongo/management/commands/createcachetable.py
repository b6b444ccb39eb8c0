"""``manage.py createcachetable`` for djongo.cache.MongoCache too (with
"djongo" in INSTALLED_APPS this command replaces Django's): for each
MongoCache in CACHES, on the database the router lets it migrate to (or its
OPTIONS["DATABASE"]; a --database that is not a djongo one is skipped), the collection and its TTL index on ``expires_at``;
DatabaseCache entries (and table names given as arguments) go to Django's
command as before. --dry-run prints the createIndexes command instead."""
import json

from django.conf import settings
from django.core.cache import caches
from django.core.management.commands import createcachetable

from djongo.cache import MongoCache


class Command(createcachetable.Command):
    help = "Creates the tables needed by the SQL cache backend and the collections of djongo.cache.MongoCache."

    def handle(self, *tablenames, **options):
        if tablenames:
            return super().handle(*tablenames, **options)
        self.verbosity = options["verbosity"]
        for alias in settings.CACHES:
            cache = caches[alias]
            if isinstance(cache, MongoCache):
                self.create_collection(cache, options["database"], options["dry_run"])
        super().handle(**options)  # DatabaseCache entries, if any

    def create_collection(self, cache, database, dry_run):
        from django.db import connections, router

        database = cache._database or database
        if cache._database is None and (connections[database].vendor != "djongo" or
                                        not router.allow_migrate_model(database, cache.cache_model_class)):
            return  # --database names a database this cache cannot, or may not, live in
        if dry_run:
            self.stdout.write(json.dumps(cache.create_collection_command()))
            return
        if cache.create_collection(database):
            if self.verbosity > 1:
                self.stdout.write("Cache collection '%s' created." % cache._collection)
        elif self.verbosity > 0:
            self.stdout.write("Cache collection '%s' already exists." % cache._collection)
