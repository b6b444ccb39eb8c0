"""The cursor Django's ORM gets from djongo's backend (make_cursor): Django's
own CursorWrapper (django/db/backends/utils.py), doing the same per call
with less Python in the way. Each ORM query runs its statement through
this wrapper once and fetches through it twice (a get() is one execute,
two fetchmany and a close), and at a point read's size that Python costs
as much as the statement itself:

  - execute without execute wrappers (connection.execute_wrapper(), none
    installed: the common case) calls the driver directly, skipping the
    context dict and the executor chain Django builds per statement; with
    wrappers installed it is Django's own execute;
  - fetchone / fetchmany / fetchall / close / rowcount / lastrowid /
    description are methods and properties of the class, where Django's
    reaches them through __getattr__ and, for the fetches, a
    DatabaseErrorWrapper and a closure made per call;
  - errors become Django's (django.db.utils) exactly as
    db.wrap_database_errors makes them -- the driver's exception is
    re-raised inside that context manager, which maps it (and marks the
    connection's errors_occurred) as for Django's own wrapper.

The debug cursor (connection.queries, CaptureQueriesContext) stays
Django's CursorDebugWrapper (base.DebugCursor), whose execute times and
logs each statement."""
from operator import attrgetter

from django.apps import apps
from django.db.backends import utils

from djongo import driver as Database


def _fetching(fetch):
    """A wrapper method calling the driver cursor's FETCH (create_cursor
    makes driver cursors) with its arguments, errors made Django's."""

    def method(self, *args):
        try:
            return fetch(self.cursor, *args)
        except Database.Error:
            with self.db.wrap_database_errors:
                raise

    method.__name__ = fetch.__name__
    return method


class CursorWrapper(utils.CursorWrapper):
    def execute(self, sql, params=None):
        db = self.db
        if db.execute_wrappers:
            return super().execute(sql, params)
        if not apps.ready and not apps.stored_app_configs:
            return self._execute(sql, params)  # (Django's warning)
        db.validate_no_broken_transaction()
        try:
            return self.cursor.execute(sql, params)
        except Database.Error:
            with db.wrap_database_errors:
                raise

    # the driver cursor's fetches, their errors mapped as Django's are
    fetchone = _fetching(Database.Cursor.fetchone)
    fetchmany = _fetching(Database.Cursor.fetchmany)
    fetchall = _fetching(Database.Cursor.fetchall)

    def close(self):
        return self.cursor.close()

    # (operator's dotted attrgetter: read in C)
    rowcount = property(attrgetter("cursor.rowcount"))
    lastrowid = property(attrgetter("cursor.lastrowid"))
    description = property(attrgetter("cursor.description"))
