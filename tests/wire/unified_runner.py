"""MongoDB's unified test format, run through pymongo against djongo-server.

    python3 tests/wire/unified_runner.py DIR_OR_FILE ... [--server URI] [--verbose]

Drivers run these files against real servers; here the driver is pymongo
and the server is djongo-server, so the verdict is the server's: each
operation's `expectResult` / `expectError` and each test's `outcome` (the
collections' final contents) are checked. `expectEvents` (the exact commands
a driver sends) judge the driver, not the server, and are not checked.
Skipped, each with its reason: failPoint (a server test hook we do not
have), requirements we do not meet (server version ranges, sharded
clusters, auth, client-side encryption), and operations of APIs outside
CRUD and transactions (GridFS, change streams, client bulkWrite of server
8.0). Matching rules: tests/conformance/unified.py (shared with the engine
runner).

Format: source/unified-test-format/unified-test-format.md in
mongodb/specifications. Test data: the spec JSON files in pymongo's sdist
(tests/conformance/specdata.py; scripts/deps.sh fetches it), input only.
"""
import json
import os
import re
import sys

from bson import json_util
from bson.json_util import JSONOptions, JSONMode
import pymongo
from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError, OperationFailure, PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "conformance"))
from unified import MISSING, Skip, matches  # noqa: E402,F401
from unified import requirements_met as shared_requirements_met  # noqa: E402

SERVER_VERSION = (7, 0, 0)
TOPOLOGY = "replicaset"  # djongo-server reports a one-member replica set


def requirements_met(reqs):
    return shared_requirements_met(reqs, topology=TOPOLOGY, server_version=SERVER_VERSION)


def read_pref(spec):
    from pymongo import read_preferences as rp
    mode = spec["mode"] if isinstance(spec, dict) else spec
    cls = {"primary": rp.Primary, "primaryPreferred": rp.PrimaryPreferred, "secondary": rp.Secondary,
           "secondaryPreferred": rp.SecondaryPreferred, "nearest": rp.Nearest}[mode]
    return cls() if mode == "primary" else cls(tag_sets=spec.get("tagSets") if isinstance(spec, dict) else None)


def snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def to_spec(result):
    """pymongo's result objects in the shapes the format names."""
    if getattr(result, "acknowledged", True) is False:
        return {"acknowledged": False}  # w: 0 -- counts unknown, as the format allows
    if isinstance(result, pymongo.results.InsertOneResult):
        return {"insertedId": result.inserted_id}
    if isinstance(result, pymongo.results.InsertManyResult):
        return {"insertedIds": {str(i): v for i, v in enumerate(result.inserted_ids)}}
    if isinstance(result, pymongo.results.UpdateResult):
        out = {"matchedCount": result.matched_count, "modifiedCount": result.modified_count,
               "upsertedCount": 1 if result.upserted_id is not None else 0}
        if result.upserted_id is not None:
            out["upsertedId"] = result.upserted_id
        return out
    if isinstance(result, pymongo.results.DeleteResult):
        return {"deletedCount": result.deleted_count}
    if isinstance(result, pymongo.results.BulkWriteResult):
        return {"deletedCount": result.deleted_count, "insertedCount": result.inserted_count,
                "matchedCount": result.matched_count, "modifiedCount": result.modified_count,
                "upsertedCount": result.upserted_count,
                "upsertedIds": {str(k): v for k, v in result.upserted_ids.items()}}
    if isinstance(result, pymongo.cursor.Cursor) or isinstance(result, pymongo.command_cursor.CommandCursor):
        return list(result)
    return result


class Runner:
    def __init__(self, uri, doc, path):
        self.uri = uri
        self.doc = doc
        self.path = path
        self.entities = {}
        self.clients = []

    # ---- entities ----

    def create_entities(self, specs):
        for spec in specs:
            (kind, e), = spec.items()
            if kind == "client":
                opts = dict(e.get("uriOptions", {}))
                kw = {}
                for k, v in opts.items():
                    if k in ("retryWrites", "retryReads", "appname", "heartbeatFrequencyMS", "w", "readConcernLevel",
                             "serverSelectionTimeoutMS", "connectTimeoutMS", "socketTimeoutMS", "directConnection",
                             "maxPoolSize", "waitQueueTimeoutMS", "timeoutMS", "readPreference", "journal"):
                        kw[k] = v
                    else:
                        raise Skip("client option %s" % k)
                kw.setdefault("serverSelectionTimeoutMS", 10000)
                c = pymongo.MongoClient(self.uri, **kw)
                self.clients.append(c)
                self.entities[e["id"]] = c
            elif kind == "database":
                opts = self._coll_opts(e.get("databaseOptions", {}))
                self.entities[e["id"]] = self.entities[e["client"]].get_database(e["databaseName"], **opts)
            elif kind == "collection":
                opts = self._coll_opts(e.get("collectionOptions", {}))
                self.entities[e["id"]] = self.entities[e["database"]].get_collection(e["collectionName"], **opts)
            elif kind == "session":
                opts = dict(e.get("sessionOptions", {}))
                kw = {}
                if "causalConsistency" in opts:
                    kw["causal_consistency"] = opts.pop("causalConsistency")
                if "defaultTransactionOptions" in opts:
                    kw["default_transaction_options"] = pymongo.client_session.TransactionOptions(
                        **self._txn_opts(opts.pop("defaultTransactionOptions")))
                if opts:
                    raise Skip("session options %s" % ", ".join(opts))
                self.entities[e["id"]] = self.entities[e["client"]].start_session(**kw)
            else:
                raise Skip("entity type %s" % kind)

    def _coll_opts(self, o):
        """writeConcern / readConcern / readPreference -> pymongo's objects
        (collection, database and transaction options alike)."""
        kw = {}
        if "writeConcern" in o:
            kw["write_concern"] = WriteConcern(**{snake(k) if k != "wtimeoutMS" else "wtimeout": v
                                                  for k, v in o["writeConcern"].items()})
        if "readConcern" in o:
            kw["read_concern"] = ReadConcern(o["readConcern"].get("level"))
        if "readPreference" in o:
            kw["read_preference"] = read_pref(o["readPreference"])
        return kw

    def _txn_opts(self, o):
        kw = self._coll_opts(o)
        if "maxCommitTimeMS" in o:
            kw["max_commit_time_ms"] = o["maxCommitTimeMS"]
        return kw

    def close(self):
        for v in self.entities.values():
            if isinstance(v, pymongo.client_session.ClientSession):
                v.end_session()
        for c in self.clients:
            c.close()

    # ---- data ----

    def load_initial(self, client):
        for d in self.doc.get("initialData", []):
            coll = client[d["databaseName"]].get_collection(d["collectionName"], write_concern=WriteConcern(w="majority"))
            coll.drop()
            if d.get("createOptions"):
                client[d["databaseName"]].create_collection(d["collectionName"], **d["createOptions"])
            if d["documents"]:
                coll.insert_many(d["documents"])
            elif not d.get("createOptions"):
                client[d["databaseName"]].create_collection(d["collectionName"])

    def check_outcome(self, client, outcome):
        for o in outcome or []:
            coll = client[o["databaseName"]][o["collectionName"]]
            got = list(coll.find({}, sort=[("_id", 1)]))
            want = o["documents"]
            if len(got) != len(want) or not all(matches(w, g, root=False) for w, g in zip(want, got)):
                raise AssertionError("outcome of %s.%s: expected %s, got %s" % (
                    o["databaseName"], o["collectionName"], want, got))

    # ---- operations ----

    # pymongo's named parameters; other options pass through to the command
    # as written (camelCase), as pymongo's **kwargs do
    NAMED = {"filter", "update", "replacement", "document", "documents", "upsert", "sort", "projection", "skip",
             "limit", "batchSize", "collation", "hint", "arrayFilters", "comment", "bypassDocumentValidation",
             "ordered", "pipeline", "fieldName", "requests", "keys", "name", "to", "collection", "command",
             "commandName", "allowDiskUse", "noCursorTimeout", "returnKey", "showRecordId", "maxAwaitTimeMS",
             "allowPartialResults", "min", "max"}
    CAMEL_OPS = {"aggregate", "countDocuments", "estimatedDocumentCount", "distinct", "createCollection",
                 "findOneAndUpdate", "findOneAndReplace", "findOneAndDelete", "createIndex", "listCollections"}

    def args(self, a, op=None):
        """camelCase arguments -> pymongo keyword arguments."""
        kw = {}
        for k, v in a.items():
            if op in self.CAMEL_OPS and k not in self.NAMED and k not in ("session", "let", "returnDocument",
                                                                         "writeConcern", "rawData", "timeoutMS"):
                kw[k] = v  # passed to the command as is
                continue
            if op in self.CAMEL_OPS and k in ("batchSize", "allowDiskUse", "bypassDocumentValidation"):
                kw[k] = v
                continue
            if k == "session":
                kw["session"] = self.entities[v]
            elif k == "returnDocument":
                kw["return_document"] = ReturnDocument.AFTER if v == "After" else ReturnDocument.BEFORE
            elif k == "let":
                kw["let"] = v
            elif k == "maxTimeMS":
                kw["max_time_ms"] = v
            elif k == "writeConcern":
                raise Skip("per-operation writeConcern")
            elif k in ("rawData", "timeoutMS"):
                raise Skip("option %s" % k)
            else:
                kw[snake(k)] = v
        return kw

    def collection_op(self, coll, name, a):
        kw = self.args(a, name)
        if name == "insertOne":
            return coll.insert_one(kw.pop("document"), **kw)
        if name == "insertMany":
            return coll.insert_many(kw.pop("documents"), **kw)
        if name in ("updateOne", "updateMany", "replaceOne"):
            fn = {"updateOne": coll.update_one, "updateMany": coll.update_many, "replaceOne": coll.replace_one}[name]
            second = kw.pop("replacement") if name == "replaceOne" else kw.pop("update")
            return fn(kw.pop("filter"), second, **kw)
        if name in ("deleteOne", "deleteMany"):
            return (coll.delete_one if name == "deleteOne" else coll.delete_many)(kw.pop("filter"), **kw)
        if name in ("find", "findOne"):
            kw.pop("cursor_type", None)
            if name == "findOne":
                return coll.find_one(kw.pop("filter", {}), **kw)
            return list(coll.find(kw.pop("filter", {}), **kw))
        if name == "aggregate":
            return list(coll.aggregate(kw.pop("pipeline"), **kw))
        if name == "countDocuments":
            return coll.count_documents(kw.pop("filter"), **kw)
        if name == "estimatedDocumentCount":
            return coll.estimated_document_count(**kw)
        if name == "distinct":
            return coll.distinct(kw.pop("field_name"), kw.pop("filter", None), **kw)
        if name == "findOneAndUpdate":
            return coll.find_one_and_update(kw.pop("filter"), kw.pop("update"), **kw)
        if name == "findOneAndReplace":
            return coll.find_one_and_replace(kw.pop("filter"), kw.pop("replacement"), **kw)
        if name == "findOneAndDelete":
            return coll.find_one_and_delete(kw.pop("filter"), **kw)
        if name == "bulkWrite":
            return coll.bulk_write([self.bulk_request(r) for r in kw.pop("requests")], **kw)
        if name == "createIndex":
            keys = list(kw.pop("keys").items())
            return coll.create_index(keys, **kw)
        if name == "dropIndex":
            return coll.drop_index(kw.pop("name"), **kw)
        if name == "listIndexes":
            return list(coll.list_indexes(**kw))
        if name == "drop":
            return coll.drop(**kw)
        if name == "rename":
            return coll.rename(kw.pop("to"), **kw)
        raise Skip("collection operation %s" % name)

    def bulk_request(self, r):
        (name, a), = r.items()
        kw = {snake(k): v for k, v in a.items()}
        cls = {"insertOne": pymongo.InsertOne, "updateOne": pymongo.UpdateOne, "updateMany": pymongo.UpdateMany,
               "replaceOne": pymongo.ReplaceOne, "deleteOne": pymongo.DeleteOne,
               "deleteMany": pymongo.DeleteMany}[name]
        if name == "insertOne":
            return cls(kw["document"])
        if name in ("updateOne", "updateMany"):
            return cls(kw.pop("filter"), kw.pop("update"), **kw)
        if name == "replaceOne":
            return cls(kw.pop("filter"), kw.pop("replacement"), **kw)
        return cls(kw.pop("filter"), **kw)

    def database_op(self, db, name, a):
        kw = self.args(a, name)
        if name == "createCollection":
            return db.create_collection(kw.pop("collection"), **kw)
        if name == "dropCollection":
            return db.drop_collection(kw.pop("collection"), **kw)
        if name == "listCollections":
            return list(db.list_collections(**{snake(k) if k in ("filter", "session") else k: v
                                               for k, v in kw.items()}))
        if name == "listCollectionNames":
            return db.list_collection_names(**kw)
        if name == "aggregate":
            return list(db.aggregate(kw.pop("pipeline"), **kw))
        if name == "runCommand":
            kw.pop("command_name", None)
            if "read_preference" in kw:
                kw["read_preference"] = read_pref(kw["read_preference"])
            return db.command(kw.pop("command"), **kw)
        raise Skip("database operation %s" % name)

    def session_op(self, s, name, a, op):
        if name == "startTransaction":
            return s.start_transaction(**self._txn_opts(a))
        if name == "commitTransaction":
            return s.commit_transaction()
        if name == "abortTransaction":
            return s.abort_transaction()
        if name == "endSession":
            return s.end_session()
        if name == "withTransaction":
            ops = a["callback"]
            opts = self._txn_opts({k: v for k, v in a.items() if k != "callback"})

            def callback(_session):
                for o in ops:
                    self.execute(o)
            return s.with_transaction(callback, **opts)
        raise Skip("session operation %s" % name)

    def runner_op(self, name, a):
        if name in ("failPoint", "targetedFailPoint"):
            raise Skip("failPoint (a server test hook djongo-server does not have)")
        if name == "assertSessionTransactionState":
            s = self.entities[a["session"]]
            state = {"none": None, "starting": "starting", "in_progress": "in progress",
                     "committed": "committed", "aborted": "aborted"}[a["state"]]
            got = s._transaction.state
            names = {1: None, 2: "starting", 3: "in progress", 4: "committed", 5: "committed",
                     6: "aborted"}
            got_name = names.get(got, got)
            if state != got_name:
                raise AssertionError("session state %s, expected %s" % (got_name, state))
            return None
        if name in ("assertCollectionExists", "assertCollectionNotExists"):
            names = self.clients[0][a["databaseName"]].list_collection_names()
            if (a["collectionName"] in names) != (name == "assertCollectionExists"):
                raise AssertionError("%s %s" % (name, a["collectionName"]))
            return None
        if name in ("assertIndexExists", "assertIndexNotExists"):
            names = [ix["name"] for ix in self.clients[0][a["databaseName"]][a["collectionName"]].list_indexes()]
            if (a["indexName"] in names) != (name == "assertIndexExists"):
                raise AssertionError("%s %s" % (name, a["indexName"]))
            return None
        if name in ("assertSessionPinned", "assertSessionUnpinned"):
            raise Skip("mongos pinning")
        if name in ("assertSameLsidOnLastTwoCommands", "assertDifferentLsidOnLastTwoCommands",
                    "assertSessionDirty", "assertSessionNotDirty", "assertNumberConnectionsCheckedOut"):
            raise Skip("%s checks the driver" % name)
        if name == "createEntities":
            return self.create_entities(a["entities"])
        raise Skip("test runner operation %s" % name)

    def execute(self, op):
        name, obj = op["name"], op["object"]
        a = op.get("arguments", {})
        expect_error = op.get("expectError")
        try:
            if obj == "testRunner":
                result = self.runner_op(name, a)
            else:
                target = self.entities[obj]
                if isinstance(target, pymongo.collection.Collection):
                    result = self.collection_op(target, name, a)
                elif isinstance(target, pymongo.database.Database):
                    result = self.database_op(target, name, a)
                elif isinstance(target, pymongo.client_session.ClientSession):
                    result = self.session_op(target, name, a, op)
                elif isinstance(target, pymongo.MongoClient):
                    if name == "listDatabaseNames":
                        result = target.list_database_names()
                    elif name == "listDatabases":
                        result = list(target.list_databases())
                    else:
                        raise Skip("client operation %s" % name)
                else:
                    raise Skip("operation on %s" % type(target).__name__)
        except Skip:
            raise
        except (PyMongoError, TypeError, ValueError) as e:
            if op.get("ignoreResultAndError"):
                return
            if not expect_error:
                raise AssertionError("%s failed: %r" % (name, e))
            self.check_error(expect_error, e)
            return
        if op.get("ignoreResultAndError"):
            return
        if expect_error:
            raise AssertionError("%s succeeded; expected an error %s" % (name, expect_error))
        result = to_spec(result)
        if "saveResultAsEntity" in op:
            self.entities[op["saveResultAsEntity"]] = result
        if "expectResult" in op and not matches(op["expectResult"], result):
            raise AssertionError("%s: expected %s, got %s" % (name, op["expectResult"], result))

    def check_error(self, exp, e):
        server = isinstance(e, OperationFailure)
        if exp.get("isClientError") and server:
            raise AssertionError("expected a client error, got a server error %r" % e)
        if exp.get("isClientError") is False and not server:
            raise AssertionError("expected a server error, got %r" % e)
        details = getattr(e, "details", None) or {}
        if isinstance(e, BulkWriteError):
            errs = details.get("writeErrors") or [{}]
            code, code_name = errs[0].get("code"), errs[0].get("codeName")
        else:
            code, code_name = getattr(e, "code", None), details.get("codeName")
        if "errorCode" in exp and exp["errorCode"] != code:
            raise AssertionError("error code %s, expected %s (%s)" % (code, exp["errorCode"], e))
        if "errorCodeName" in exp and exp["errorCodeName"] != code_name:
            raise AssertionError("error code name %s, expected %s (%s)" % (code_name, exp["errorCodeName"], e))
        if "errorContains" in exp and exp["errorContains"].lower() not in str(e).lower():
            raise AssertionError("error %r does not contain %r" % (str(e), exp["errorContains"]))
        labels = set(details.get("errorLabels", [])) | {lb for lb in ("TransientTransactionError",
                                                                       "UnknownTransactionCommitResult")
                                                         if hasattr(e, "has_error_label") and e.has_error_label(lb)}
        for lb in exp.get("errorLabelsContain", []):
            if lb not in labels:
                raise AssertionError("error labels %s lack %s" % (labels, lb))
        for lb in exp.get("errorLabelsOmit", []):
            if lb in labels:
                raise AssertionError("error labels %s include %s" % (labels, lb))
        if "expectResult" in exp and isinstance(e, BulkWriteError):
            pass  # partial results: pymongo's shape differs from the format's

    def run_test(self, test):
        ok, why = requirements_met(test.get("runOnRequirements"))
        if not ok:
            raise Skip(why)
        text = json.dumps([test, self.doc.get("createEntities", [])], default=str)
        if re.search(r'"mode": "(secondary|secondaryPreferred|nearest|primaryPreferred)"', text) or \
                re.search(r'"readPreference": "(secondary|secondaryPreferred|nearest|primaryPreferred)"', text):
            raise Skip("a non-primary read preference needs a secondary (a one-member replica set has none)")
        if "skipReason" in test:
            raise Skip(test["skipReason"])
        setup = pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=10000)
        try:
            self.entities = {}
            self.clients = []
            self.load_initial(setup)
            self.create_entities(self.doc.get("createEntities", []))
            try:
                for op in test["operations"]:
                    self.execute(op)
            finally:
                self.close()
            self.check_outcome(setup, test.get("outcome"))
        finally:
            setup.close()


def load(path):
    with open(path) as f:
        return json_util.loads(f.read(), json_options=JSONOptions(json_mode=JSONMode.CANONICAL))


def run_files(uri, paths, verbose=False):
    """Runs every test of every file; returns {file: [(description, "pass"|"fail"|"skip", reason)]}."""
    out = {}
    for path in paths:
        doc = load(path)
        rows = []
        ok, why = requirements_met(doc.get("runOnRequirements"))
        for test in doc["tests"]:
            if not ok:
                rows.append((test["description"], "skip", why))
                continue
            try:
                Runner(uri, doc, path).run_test(test)
                rows.append((test["description"], "pass", ""))
            except Skip as s:
                rows.append((test["description"], "skip", str(s)))
            except Exception as e:  # noqa: BLE001 -- reported per test
                rows.append((test["description"], "fail", "%s: %s" % (type(e).__name__, str(e)[:300])))
        out[os.path.basename(path)] = rows
        if verbose:
            for d, verdict, reason in rows:
                if verdict != "pass":
                    print("  %s %s: %s -- %s" % (verdict.upper(), os.path.basename(path), d, reason))
    return out


def report(results, title):
    tot = {"pass": 0, "fail": 0, "skip": 0}
    lines = ["%s" % title]
    for f, rows in sorted(results.items()):
        c = {"pass": 0, "fail": 0, "skip": 0}
        for _, v, _ in rows:
            c[v] += 1
            tot[v] += 1
        lines.append("  %-52s %3d pass %3d fail %3d skip" % (f, c["pass"], c["fail"], c["skip"]))
    runnable = tot["pass"] + tot["fail"]
    pct = 100.0 * tot["pass"] / runnable if runnable else 0.0
    lines.append("  total: %d pass, %d fail, %d skip: %.1f%% of the runnable tests pass" % (
        tot["pass"], tot["fail"], tot["skip"], pct))
    return "\n".join(lines), pct, tot


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    uri = sys.argv[sys.argv.index("--server") + 1] if "--server" in sys.argv else "mongodb://127.0.0.1:27017/"
    if "--server" in sys.argv:
        args.remove(uri)
    paths = []
    for a in args:
        paths += sorted(os.path.join(a, f) for f in os.listdir(a) if f.endswith(".json")) if os.path.isdir(a) else [a]
    text, _, _ = report(run_files(uri, paths, verbose="--verbose" in sys.argv), "unified tests")
    print(text)
