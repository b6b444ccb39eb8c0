"""PEP 249's conformance suite (dbapi20.py) against djongo.driver's other
transport: libmongoc talking to djongo-server over the wire protocol (the
embedded transport runs it in tests/python/test_dbapi20.py). Transactions
go through libmongoc sessions to the server's transactions."""
import os
import sys
import unittest
import uuid

from conftest import Server

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
from test_dbapi20 import DjongoDBAPI20  # noqa: E402 -- the suite as the embedded run subclasses it


class ServerDBAPI20(DjongoDBAPI20):
    __test__ = True
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


def test_dbapi20_over_libmongoc():
    result = unittest.TextTestRunner(verbosity=0).run(unittest.defaultTestLoader.loadTestsFromTestCase(ServerDBAPI20))
    assert result.testsRun >= 30
    assert not result.failures and not result.errors, [str(t) + "\n" + tb for t, tb in result.failures + result.errors]
