"""Answers djongo-server gave otherwise than mongod, found by pymongo's own
suite (docs/pymongo_suite.md): the databases listDatabases names, the
planner's use of a partial index, when a find's cursor ends, and what
onPrimaryTransactionalWrite's skip counts."""
import pymongo
import pytest
from pymongo import MongoClient, monitoring
from pymongo.errors import ConnectionFailure

from conftest import Server


@pytest.fixture
def tserver(tmp_path):
    s = Server(tmp_path / "data", "--setParameter", "enableTestCommands=1")
    yield s
    assert s.stop() == 0, "djongo-server did not stop cleanly on SIGTERM"


class Listener(monitoring.CommandListener):
    def __init__(self):
        self.names, self.ok, self.replies = [], [], []

    def started(self, event):
        self.names.append(event.command_name)

    def succeeded(self, event):
        self.ok.append(event.command_name)
        self.replies.append(event.reply)

    def failed(self, event):
        pass


def test_list_databases_names_admin_config_local(server):
    # a replica-set member always has admin, config and local
    # https://www.mongodb.com/docs/manual/reference/local-database/
    with MongoClient(server.uri, directConnection=True) as c:
        assert c.list_database_names() == ["admin", "config", "local"]
        c.shop.items.insert_one({})
        assert c.list_database_names() == ["admin", "config", "local", "shop"]
        docs = c.list_databases(filter={"name": "admin"}).to_list()
        assert [d["name"] for d in docs] == ["admin"]
        assert all(list(d) == ["name"] for d in c.list_databases(nameOnly=True))


def _stage(plan, name):
    while plan:
        if plan.get("stage") == name:
            return plan
        plan = plan.get("inputStage")
    return None


def test_partial_index_used_when_the_query_implies_its_filter(server):
    # https://www.mongodb.com/docs/manual/core/index-partial/#query-coverage
    with MongoClient(server.uri, directConnection=True) as c:
        coll = c.db.coll
        coll.create_index("x", partialFilterExpression={"a": {"$lte": 1.5}})
        coll.insert_many([{"x": 5, "a": 2}, {"x": 6, "a": 1}, {"x": 7}])
        for q in ({"x": 6, "a": 1}, {"x": {"$gt": 1}, "a": 1}, {"x": 6, "a": {"$lte": 1}},
                  {"x": 6, "a": {"$lt": 1.5}}, {"x": 6, "a": {"$in": [0, 1.5]}}, {"$and": [{"x": 6}, {"a": 1}]}):
            ix = _stage(coll.find(q).explain()["queryPlanner"]["winningPlan"], "IXSCAN")
            assert ix and ix["indexName"] == "x_1" and ix["isPartial"] is True, q
        for q in ({"x": 6, "a": {"$lte": 1.6}}, {"x": 6}, {"x": 6, "a": {"$gte": 1}}, {"x": 6, "a": "1"},
                  {"x": 6, "a": {"$in": [1, 2]}}, {"x": 6, "a": None}, {"x": 6, "$or": [{"a": 1}, {"a": 0}]}):
            assert _stage(coll.find(q).explain()["queryPlanner"]["winningPlan"], "COLLSCAN"), q
        # and the results are those of a collection scan
        assert [d["x"] for d in coll.find({"x": {"$gt": 1}, "a": 1})] == [6]
        coll.drop()
        coll.create_index("x", partialFilterExpression={"a": {"$exists": True}})
        coll.insert_many([{"x": 1, "a": 0}, {"x": 1}])
        ix = _stage(coll.find({"x": 1, "a": {"$gt": -1}}).explain()["queryPlanner"]["winningPlan"], "IXSCAN")
        assert ix and ix["indexName"] == "x_1"
        assert _stage(coll.find({"x": 1, "a": None}).explain()["queryPlanner"]["winningPlan"], "COLLSCAN")
        assert coll.count_documents({"x": 1, "a": None}) == 1


def test_find_cursor_ends_when_it_knows(server):
    # mongod fills a batch to its size before asking for the next document:
    # a batch filled exactly to the end leaves the cursor open, the next
    # getMore finds the end; a short batch, a reached limit or a sort done
    # in memory ends it at once (a sort read off an index streams)
    listener = Listener()
    with MongoClient(server.uri, directConnection=True, event_listeners=[listener]) as c:
        coll = c.db.coll
        coll.insert_many([{"_id": i, "n": -i} for i in range(3)])
        for kind, kw, names in (
            (pymongo.CursorType.EXHAUST, {"batch_size": 1}, ["find", "getMore", "getMore", "getMore"]),
            (pymongo.CursorType.NON_TAILABLE, {"batch_size": 1}, ["find", "getMore", "getMore", "getMore"]),
            (pymongo.CursorType.NON_TAILABLE, {"batch_size": 3}, ["find", "getMore"]),
            (pymongo.CursorType.NON_TAILABLE, {"batch_size": 2}, ["find", "getMore"]),
            (pymongo.CursorType.NON_TAILABLE, {"batch_size": 3, "limit": 3}, ["find"]),
            (pymongo.CursorType.NON_TAILABLE, {"batch_size": 3, "sort": [("n", 1)]}, ["find"]),
            (pymongo.CursorType.NON_TAILABLE, {"batch_size": 3, "sort": [("_id", -1)]}, ["find", "getMore"]),
            (pymongo.CursorType.NON_TAILABLE, {}, ["find"]),
        ):
            listener.names.clear()
            assert len(list(coll.find({}, cursor_type=kind, **kw))) == 3
            assert listener.names == names, (kind, kw)


def test_on_primary_transactional_write_skips_statements(tserver):
    # skip counts the statements (documents) written, not commands
    listener = Listener()
    with MongoClient(tserver.uri, directConnection=True, event_listeners=[listener]) as c:
        coll = c.db.coll
        c.admin.command({"configureFailPoint": "onPrimaryTransactionalWrite", "mode": {"skip": 3},
                         "data": {"failBeforeCommitExceptionCode": 1}})
        coll.insert_many([{"_id": 1}, {"_id": 2}])  # two statements through
        listener.names.clear()
        with pytest.raises(ConnectionFailure):
            coll.insert_many([{"_id": 3}, {"_id": 4}])  # the third passes the skip, the fourth fires
        assert listener.names == ["insert", "insert"]  # and its retry fails too
        c.admin.command({"configureFailPoint": "onPrimaryTransactionalWrite", "mode": "off"})
        assert sorted(d["_id"] for d in coll.find()) == [1, 2]


def test_cluster_time_moves_with_what_is_logged(server):
    # mongod's clock is its oplog: a statement inside a transaction logs
    # nothing until the commit, and the commit of a transaction that wrote
    # nothing logs nothing; a write outside one that changed nothing still
    # moves it (the no-op entry a retryable write leaves). libmongoc copies
    # its whole topology description at every newer $clusterTime, so a
    # clock moving for nothing costs every djongo transaction over the wire.
    def op_time(reply):
        return reply["operationTime"]

    with MongoClient(server.uri) as c:
        c.shop.items.insert_one({"_id": 1})
        t0 = op_time(c.shop.command("ping"))
        with c.start_session() as s:
            s.start_transaction()
            r = c.shop.command({"delete": "items", "deletes": [{"q": {"_id": 99}, "limit": 0}]}, session=s)
            assert r["n"] == 0 and op_time(r) == t0
            s.commit_transaction()
        assert op_time(c.shop.command("ping")) == t0
        # outside a transaction the same no-op delete moves it
        r = c.shop.command({"delete": "items", "deletes": [{"q": {"_id": 99}, "limit": 0}]})
        t1 = op_time(r)
        assert t1 > t0
        # a transaction that writes moves it (once: its changes are stamped
        # as its statement logs them)
        with c.start_session() as s:
            s.start_transaction()
            r = c.shop.command({"delete": "items", "deletes": [{"q": {"_id": 1}, "limit": 0}]}, session=s)
            assert r["n"] == 1
            s.commit_transaction()
        assert op_time(c.shop.command("ping")) > t1
        assert c.shop.items.count_documents({}) == 0
