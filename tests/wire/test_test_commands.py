"""What drivers' test harnesses ask of a mongod, asked of djongo-server:
test commands (getParameter's enableTestCommands, configureFailPoint with
the failCommand fail point's modes and data options), cluster time on every
reply, and the replica-set answers about write concerns and retries.
https://github.com/mongodb/mongo/wiki/The-%22failCommand%22-fail-point
https://www.mongodb.com/docs/manual/reference/command/getParameter/"""
import pymongo
import pytest
from bson import Timestamp
from pymongo import MongoClient
from pymongo.errors import AutoReconnect, NetworkTimeout, OperationFailure, WriteConcernError

from conftest import Server


@pytest.fixture
def tserver(tmp_path):
    s = Server(tmp_path / "data", "--setParameter", "enableTestCommands=1")
    yield s
    assert s.stop() == 0, "djongo-server did not stop cleanly on SIGTERM"


def connect(server, **kw):
    # no retries: a retried command would hide the fail point's answer
    return MongoClient(server.uri, directConnection=True, retryWrites=False, retryReads=False, **kw)


def fail_point(client, mode, **data):
    return client.admin.command({"configureFailPoint": "failCommand", "mode": mode, "data": data})


# ---- getParameter and the test-commands switch --------------------------------

def test_get_parameter_star_reports_test_commands(tserver):
    with connect(tserver) as c:
        params = c.admin.command("getParameter", "*")
        assert params["enableTestCommands"] is True
        assert params["featureCompatibilityVersion"] == {"version": "8.0"}
        one = c.admin.command({"getParameter": 1, "enableTestCommands": 1})
        assert one["enableTestCommands"] is True and "featureCompatibilityVersion" not in one


def test_without_test_commands_no_fail_points(server):
    with connect(server) as c:
        assert c.admin.command("getParameter", "*")["enableTestCommands"] is False
        with pytest.raises(OperationFailure) as e:
            fail_point(c, "alwaysOn", failCommands=["find"], errorCode=2)
        assert e.value.code == 59  # CommandNotFound, as on a mongod without test commands
        c.t.t.find_one()  # and nothing fails


def test_set_parameter_option_refuses_unknown_parameters(tmp_path):
    import subprocess
    from conftest import TOOL
    p = subprocess.run([TOOL, "--dbpath", str(tmp_path / "d"), "--setParameter", "noSuchParameter=1"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "noSuchParameter" in p.stderr


# ---- cluster time ---------------------------------------------------------------

def test_every_reply_carries_cluster_time(tserver):
    with connect(tserver) as c:
        for reply in (c.admin.command("ping"), c.admin.command("hello"), c.t.command("count", "x"),
                      c.t.command("find", "nosuch", filter={"$bad": 1}, check=False)):
            ct = reply["$clusterTime"]
            assert isinstance(ct["clusterTime"], Timestamp)
            assert ct["signature"] == {"hash": b"\0" * 20, "keyId": 0}
            assert reply["operationTime"] == ct["clusterTime"]


def test_writes_advance_cluster_time_and_reads_return_the_last(tserver):
    with connect(tserver) as c:
        times = []
        for i in range(5):
            times.append(c.t.command("insert", "x", documents=[{"i": i}])["operationTime"])
        assert all(a < b for a, b in zip(times, times[1:])), times
        read = c.t.command("find", "x")["operationTime"]
        assert read == times[-1]
        assert c.t.command("ping")["operationTime"] == times[-1]
        after = c.t.command("delete", "x", deletes=[{"q": {}, "limit": 0}])["operationTime"]
        assert after > times[-1]


def test_causally_consistent_session_reads_its_writes(tserver):
    with connect(tserver) as c, c.start_session(causal_consistency=True) as s:
        c.t.x.insert_one({"_id": 1}, session=s)
        assert s.operation_time is not None
        # the next read carries readConcern.afterClusterTime = that time
        assert c.t.x.find_one({"_id": 1}, session=s) == {"_id": 1}


# ---- configureFailPoint: modes ---------------------------------------------------------

def test_always_on_then_off(tserver):
    with connect(tserver) as c:
        assert fail_point(c, "alwaysOn", failCommands=["find"], errorCode=2)["ok"] == 1
        for _ in range(3):
            with pytest.raises(OperationFailure) as e:
                c.t.x.find_one()
            assert e.value.code == 2
            assert e.value.details["errmsg"] == "Failing command via 'failCommand' failpoint"
        c.t.x.insert_one({"a": 1})  # not in failCommands
        r = c.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
        assert r["count"] == 3  # times the fail point fired
        assert c.t.x.find_one({}, {"_id": 0}) == {"a": 1}


def test_times(tserver):
    with connect(tserver) as c:
        fail_point(c, {"times": 2}, failCommands=["insert"], errorCode=2)
        for _ in range(2):
            with pytest.raises(OperationFailure):
                c.t.x.insert_one({})
        c.t.x.insert_one({})
        assert c.t.x.count_documents({}) == 1


def test_skip(tserver):
    with connect(tserver) as c:
        fail_point(c, {"skip": 2}, failCommands=["insert"], errorCode=2)
        c.t.x.insert_one({})
        c.t.x.insert_one({})
        for _ in range(2):
            with pytest.raises(OperationFailure):
                c.t.x.insert_one({})
        assert c.t.x.count_documents({}) == 2


def test_bad_configuration_is_refused(tserver):
    with connect(tserver) as c:
        with pytest.raises(OperationFailure):
            c.admin.command({"configureFailPoint": "failCommand", "mode": "sometimes",
                             "data": {"failCommands": ["find"]}})
        with pytest.raises(OperationFailure):
            c.admin.command({"configureFailPoint": "noSuchFailPoint", "mode": "alwaysOn"})
        with pytest.raises(OperationFailure):  # the admin database only
            c.t.command({"configureFailPoint": "failCommand", "mode": "off"})
        c.t.x.find_one()


def test_fail_command_naming_no_command_never_fires(tserver):
    # mongod keeps a fail point's data unchecked: a failCommand without
    # failCommands is accepted and matches no command (pymongo's
    # test_pool_backpressure_preserves_existing_connections relies on it)
    with connect(tserver) as c:
        c.admin.command({"configureFailPoint": "failCommand", "mode": "alwaysOn", "data": {"errorCode": 2}})
        c.admin.command({"configureFailPoint": "failCommand", "mode": {"times": 1},
                         "data": {"closeConnection": True}})
        c.admin.command({"configureFailPoint": "failCommand", "mode": {"times": 1}})
        assert c.t.x.find_one() is None
        c.t.x.insert_one({})


# ---- configureFailPoint: data options -----------------------------------------------

def test_close_connection(tserver):
    with connect(tserver) as c:
        fail_point(c, {"times": 1}, failCommands=["find"], closeConnection=True)
        with pytest.raises(AutoReconnect):
            c.t.x.find_one()
        assert c.t.x.find_one() is None  # a new connection, the fail point spent


def test_block_connection(tserver):
    with connect(tserver, socketTimeoutMS=300) as c:
        fail_point(c, {"times": 1}, failCommands=["find"], blockConnection=True, blockTimeMS=3000)
        with pytest.raises(NetworkTimeout):
            c.t.x.find_one()
    with connect(tserver, socketTimeoutMS=300) as c:
        # blockTimeMS without blockConnection: no block
        fail_point(c, {"times": 1}, failCommands=["find"], blockTimeMS=3000)
        c.t.x.find_one()


def test_write_concern_error(tserver):
    wce = {"code": 91, "errmsg": "Replication is being shut down"}
    with connect(tserver) as c:
        fail_point(c, {"times": 1}, failCommands=["insert"], writeConcernError=wce)
        with pytest.raises(WriteConcernError) as e:
            c.t.x.insert_one({"_id": 1})
        assert e.value.code == 91 and e.value.details["errmsg"] == wce["errmsg"]
        assert c.t.x.find_one() == {"_id": 1}  # the write happened


def test_error_labels(tserver):
    with connect(tserver) as c:
        fail_point(c, {"times": 1}, failCommands=["find"], errorCode=2, errorLabels=["SomeLabel", "Other"])
        with pytest.raises(OperationFailure) as e:
            c.t.x.find_one()
        assert e.value.details["errorLabels"] == ["SomeLabel", "Other"]


def test_retryable_write_error_label_added(tserver):
    with connect(tserver) as c, c.start_session() as s:
        fail_point(c, {"times": 1}, failCommands=["insert"], errorCode=91)
        r = c.t.command({"insert": "x", "documents": [{}], "lsid": s.session_id, "txnNumber": 1}, check=False)
        assert r["code"] == 91 and r["errorLabels"] == ["RetryableWriteError"]
        fail_point(c, {"times": 1}, failCommands=["insert"], errorCode=2)
        r = c.t.command({"insert": "x", "documents": [{}], "lsid": s.session_id, "txnNumber": 2}, check=False)
        assert "errorLabels" not in r  # BadValue is not worth retrying


def test_app_name_filter(tserver):
    with connect(tserver, appName="victim") as a, connect(tserver, appName="bystander") as b:
        fail_point(a, "alwaysOn", failCommands=["find"], errorCode=2, appName="victim")
        b.t.x.find_one()
        with pytest.raises(OperationFailure):
            a.t.x.find_one()
        a.admin.command({"configureFailPoint": "failCommand", "mode": "off"})


def test_app_name_filter_applies_to_the_handshake(tserver):
    # the hello that carries the client metadata is itself subject to a
    # fail point naming that application: a new connection's handshake
    # blocks past connectTimeoutMS (pymongo's test_connection_timeout_message);
    # "hello" names pymongo's legacy "ismaster" handshake too (an alias)
    from pymongo.errors import AutoReconnect as ConnFailure
    with connect(tserver) as admin:
        admin.admin.command({"configureFailPoint": "failCommand", "mode": "alwaysOn",
                             "data": {"failCommands": ["hello"], "appName": "slowHello",
                                      "blockConnection": True, "blockTimeMS": 1000}})
        try:
            with connect(tserver, appName="slowHello", connectTimeoutMS=300, socketTimeoutMS=300,
                         serverSelectionTimeoutMS=500) as c:
                with pytest.raises(ConnFailure):
                    c.admin.command("ping")
            with connect(tserver, appName="other", connectTimeoutMS=300, socketTimeoutMS=300) as c:
                c.admin.command("ping")
        finally:
            admin.admin.command({"configureFailPoint": "failCommand", "mode": "off"})


def test_on_primary_transactional_write(tserver):
    with MongoClient(tserver.uri, directConnection=True) as c:  # retryable writes on
        c.admin.command({"configureFailPoint": "onPrimaryTransactionalWrite", "mode": {"times": 1}})
        c.t.x.insert_one({"_id": 1})  # committed, connection dropped, retried: answered once
        assert c.t.x.count_documents({}) == 1
        c.admin.command({"configureFailPoint": "onPrimaryTransactionalWrite", "mode": {"times": 1},
                         "data": {"failBeforeCommitExceptionCode": 1}})
        c.t.x.insert_one({"_id": 2})  # not committed the first time; the retry does
        assert c.t.x.count_documents({}) == 2


# ---- replica-set answers -------------------------------------------------------------

def test_retried_retryable_write_is_not_applied_twice(tserver):
    with connect(tserver) as c, c.start_session() as s:
        cmd = {"insert": "x", "documents": [{"_id": 1}], "lsid": s.session_id, "txnNumber": 5}
        assert c.t.command(cmd)["n"] == 1
        assert c.t.command(cmd)["n"] == 1  # the same statement again: no DuplicateKey
        assert c.t.x.count_documents({}) == 1
        cmd["txnNumber"] = 6
        r = c.t.command(cmd, check=False)
        assert r["writeErrors"][0]["code"] == 11000  # a new statement does run


def test_unsatisfiable_write_concern(tserver):
    with connect(tserver) as c:
        r = c.t.command({"insert": "x", "documents": [{"_id": 1}], "writeConcern": {"w": 2}}, check=False)
        assert r["n"] == 1 and r["writeConcernError"]["code"] == 100
        assert r["writeConcernError"]["codeName"] == "UnsatisfiableWriteConcern"
        r = c.t.command({"insert": "x", "documents": [{"_id": 2}], "writeConcern": {"w": "noSuchTag"}}, check=False)
        assert r["n"] == 1 and r["writeConcernError"]["code"] == 79
        r = c.t.command({"insert": "x", "documents": [{"_id": 3}], "writeConcern": {"w": "majority"}})
        assert "writeConcernError" not in r
        assert c.t.x.count_documents({}) == 3
        # a write that fails still waits for its write concern: both in the
        # reply, and pymongo raises the write concern error (its
        # test_raise_write_concern_error renames onto an existing name)
        c.t.create_collection("y")
        r = c.admin.command({"renameCollection": "t.x", "to": "t.y", "writeConcern": {"w": 2}}, check=False)
        assert r["ok"] == 0 and r["code"] == 48 and r["writeConcernError"]["code"] == 100
        with pytest.raises(WriteConcernError):
            c.t.x.with_options(write_concern=pymongo.WriteConcern(w=2)).rename("y")


def test_write_concern_inside_a_transaction_is_refused(tserver):
    with connect(tserver) as c, c.start_session() as s:
        c.t.create_collection("x")
        base = {"lsid": s.session_id, "txnNumber": 1, "autocommit": False}
        r = c.t.command({"insert": "x", "documents": [{}], "startTransaction": True, **base,
                         "writeConcern": {"w": 1}}, check=False)
        assert r["code"] == 72
        r = c.admin.command({"commitTransaction": 1, **base}, check=False)
        assert r["code"] == 251  # the failure aborted the transaction
        assert c.t.x.count_documents({}) == 0


def test_kill_all_sessions_aborts_transactions(tserver):
    with connect(tserver) as c, c.start_session() as s:
        c.t.create_collection("x")
        base = {"lsid": s.session_id, "txnNumber": 1, "autocommit": False}
        c.t.command({"insert": "x", "documents": [{}], "startTransaction": True, **base})
        c.admin.command("killAllSessions", [])
        r = c.admin.command({"commitTransaction": 1, **base}, check=False)
        assert r["code"] == 251
        c.t.x.insert_one({})  # the writer's place is free
        assert c.t.x.count_documents({}) == 1



def test_fail_point_applies_to_authentication_commands(tserver):
    with connect(tserver) as c:
        fail_point(c, {"times": 1}, failCommands=["saslStart"], errorCode=2)
        r = c.admin.command({"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": b""}, check=False)
        assert r["code"] == 2 and "failCommand" in r["errmsg"]


def test_atlas_search_commands_are_refused_as_outside_atlas(server):
    # mongod outside Atlas: SearchNotEnabled, a message naming Atlas
    with connect(server) as c:
        c.t.create_collection("x")
        for cmd in ({"createSearchIndexes": "x", "indexes": [{"definition": {"mappings": {"dynamic": True}}}]},
                    {"dropSearchIndex": "x", "name": "i"},
                    {"updateSearchIndex": "x", "name": "i", "definition": {}},
                    {"aggregate": "x", "pipeline": [{"$listSearchIndexes": {}}], "cursor": {}}):
            r = c.t.command(cmd, check=False)
            assert r["code"] == 31082 and r["codeName"] == "SearchNotEnabled" and "Atlas" in r["errmsg"], r


# ---- what a transaction may run ----------------------------------------------------

def test_commands_outside_the_transaction_allowlist_are_refused(tserver):
    # mongod runs CRUD, create/createIndexes and cursors inside a
    # transaction; dropDatabase, drop, renameCollection, dropIndexes, count
    # are refused with OperationNotSupportedInTransaction (263) and nothing
    # runs; $out / $merge stages likewise; an index on a collection that
    # exists outside the transaction too
    # https://www.mongodb.com/docs/manual/core/transactions-operations/
    with connect(tserver) as c:
        c.t.x.insert_one({"_id": 1})
        refused = [
            lambda s: c.drop_database("t", session=s),
            lambda s: c.t.x.drop(session=s),
            lambda s: c.t.x.rename("y", session=s),
            lambda s: c.t.x.drop_indexes(session=s),
            lambda s: c.t.command("count", "x", session=s),
            lambda s: c.t.x.aggregate([{"$out": "out"}], session=s),
            lambda s: c.t.x.aggregate([{"$merge": "out"}], session=s),
            lambda s: c.t.x.create_index("a", session=s),
        ]
        for op in refused:
            with c.start_session() as s:
                s.start_transaction()
                with pytest.raises(OperationFailure) as e:
                    op(s)
                assert e.value.code == 263, e.value.details
                s.abort_transaction()
        assert c.t.list_collection_names() == ["x"] and c.t.x.find_one() == {"_id": 1}
        assert [i["name"] for i in c.t.x.list_indexes()] == ["_id_"]
        # allowed: CRUD, and a collection plus its index created in the transaction
        with c.start_session() as s, s.start_transaction():
            c.t.x.insert_one({"_id": 2}, session=s)
            c.t.create_collection("fresh", session=s)
            c.t.fresh.create_index("a", session=s)
            c.t.fresh.insert_one({"a": 1}, session=s)
        assert "a_1" in [i["name"] for i in c.t.fresh.list_indexes()]
        assert c.t.x.count_documents({}) == 2
