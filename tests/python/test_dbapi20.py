"""The public-domain DB-API 2.0 conformance suite (dbapi20.py, Stuart
Bishop's, from PyPI's dbapi-compliance as psycopg2 and mysqlclient use it),
run unmodified against djongo.driver on the embedded engine.

Subclassing is the suite's own interface: we give it the driver and how to
connect, and write the two tests it leaves to drivers (test_nextset,
test_setoutputsize raise NotImplementedError in the suite); none of its
other tests is overridden or skipped. (The same
suite over libmongoc needs a server to talk to: the wire-protocol server,
issue 4.)
"""
import shutil
import tempfile
import unittest

import dbapi20

from djongo import driver


class DjongoDBAPI20(dbapi20.DatabaseAPI20Test):
    """The suite for djongo.driver, on whatever host connect_kw_args names
    (tests/wire/test_dbapi20_mongoc.py runs it over libmongoc). Not a test
    by itself: it names no host."""
    __test__ = False
    driver = driver
    connect_args = ()
    lower_func = None  # no stored procedures; the suite skips callproc then

    # The suite leaves these two for drivers to fill in (their bodies raise
    # NotImplementedError): a table created for the test, with one procedure
    # that returns several result sets. We have no procedures, so nextset is
    # absent, as PEP 249 allows, and the suite's test_nextset checks that.
    def test_nextset(self):
        con = self._connect()
        try:
            self.assertFalse(hasattr(con.cursor(), "nextset"))
        finally:
            con.close()

    def test_setoutputsize(self):
        con = self._connect()
        try:
            cur = con.cursor()
            cur.setoutputsize(1000)  # PEP 249: may do nothing; must exist
            cur.setoutputsize(2000, 0)
        finally:
            con.close()


class EmbeddedDBAPI20(DjongoDBAPI20):
    __test__ = True

    def setUp(self):
        self._dir = tempfile.mkdtemp(prefix="djongo-dbapi20-")
        self.connect_kw_args = {"host": self._dir + "/db", "db": "dbapi20"}
        super().setUp()

    def tearDown(self):
        super().tearDown()
        shutil.rmtree(self._dir, ignore_errors=True)


def load_tests(loader, tests, pattern):
    return loader.loadTestsFromTestCase(EmbeddedDBAPI20)


def test_dbapi20_suite():
    """Runs the suite under pytest and asserts that every test passes."""
    result = unittest.TextTestRunner(verbosity=0).run(unittest.defaultTestLoader.loadTestsFromTestCase(EmbeddedDBAPI20))
    assert result.testsRun >= 30
    assert not result.failures and not result.errors, [str(t) + "\n" + tb for t, tb in result.failures + result.errors]
