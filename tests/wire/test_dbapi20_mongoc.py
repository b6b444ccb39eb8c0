"""PEP 249's conformance suite (dbapi20.py) against djongo.driver's other
transport: libmongoc talking to djongo-server over the wire protocol (the
embedded transport runs it in tests/python/test_dbapi20.py). Transactions
go through libmongoc sessions to the server's transactions."""
import unittest
import uuid

import dbapi20

from conftest import Server
from djongo import driver


class ServerDBAPI20(dbapi20.DatabaseAPI20Test):
    driver = driver
    connect_args = ()
    lower_func = None
    server = None

    @classmethod
    def setUpClass(cls):
        import tempfile
        cls._dir = tempfile.mkdtemp(prefix="djongo-dbapi20-srv-")
        cls.server = Server(cls._dir + "/data")

    @classmethod
    def tearDownClass(cls):
        import shutil
        assert cls.server.stop() == 0
        shutil.rmtree(cls._dir, ignore_errors=True)

    def setUp(self):
        # a database per test: the suite assumes it starts without its tables
        self.connect_kw_args = {"host": self.server.uri, "db": "t" + uuid.uuid4().hex[:12]}
        super().setUp()

    def test_nextset(self):
        con = self._connect()
        try:
            self.assertFalse(hasattr(con.cursor(), "nextset"))
        finally:
            con.close()

    def test_setoutputsize(self):
        con = self._connect()
        try:
            con.cursor().setoutputsize(1000)
        finally:
            con.close()


def test_dbapi20_over_libmongoc():
    result = unittest.TextTestRunner(verbosity=0).run(unittest.defaultTestLoader.loadTestsFromTestCase(ServerDBAPI20))
    assert result.testsRun >= 30
    assert not result.failures and not result.errors, [str(t) + "\n" + tb for t, tb in result.failures + result.errors]
