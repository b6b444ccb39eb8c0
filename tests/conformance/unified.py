"""A unified-test-format runner over the engine API (through djongo-engine).

MongoDB's drivers run the specification's "unified" tests against a server;
this runs the same files against the embedded engine. It implements the
format's matching rules (extra fields allowed in root-level documents,
$$exists, $$type, $$unsetOrMatches, numeric equality across int/long/double)
and the CRUD operations the engine answers directly. What only a driver can
check (the exact command a driver sends, client-side validation, sessions
over a network) is reported as skipped, with the reason.

Format: source/unified-test-format/unified-test-format.md in
mongodb/specifications. Test data: the spec JSON files in pymongo's sdist
(specdata.py; scripts/deps.sh fetches it), test input only.
"""

import json
import os
import subprocess

from bson import json_util, Int64, Decimal128, ObjectId
from bson.json_util import CANONICAL_JSON_OPTIONS

SERVER_VERSION = (7, 0, 0)  # what the engine answers like
MISSING = object()


class Skip(Exception):
    pass


class EngineError(Exception):
    def __init__(self, reply):
        super().__init__(reply.get("errmsg", reply))
        self.reply = reply
        self.code = reply.get("code")
        self.code_name = reply.get("codeName")


class Engine:
    """One djongo-engine process; commands go down a pipe, replies come back."""

    def __init__(self, tool, dbpath):
        self.proc = subprocess.Popen([tool, "--dbpath", dbpath, "--canonical"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.db = None

    def command(self, db, cmd):
        if db != self.db:
            self.proc.stdin.write("use %s\n" % db)
            self.proc.stdout.readline()
            self.db = db
        self.proc.stdin.write(json_util.dumps(cmd, json_options=CANONICAL_JSON_OPTIONS) + "\n")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("djongo-engine exited")
        return json_util.loads(line)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def version(s):
    parts = [int(p) for p in s.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def requirements_met(reqs, topology="single", server_version=SERVER_VERSION):
    """runOnRequirements: any one entry may hold. The engine API is a
    standalone server; djongo-server passes topology="replicaset"."""
    if not reqs:
        return True, ""
    reasons = []
    for r in reqs:
        why = []
        if "minServerVersion" in r and version(r["minServerVersion"]) > server_version:
            why.append("needs server >= %s" % r["minServerVersion"])
        if "maxServerVersion" in r and version(r["maxServerVersion"]) < server_version:
            why.append("needs server <= %s" % r["maxServerVersion"])
        if "topologies" in r and topology not in r["topologies"]:
            why.append("needs topology %s" % "/".join(r["topologies"]))
        if r.get("serverless") == "require":
            why.append("needs serverless")
        if r.get("auth") is True:
            why.append("needs auth")
        if r.get("csfle"):
            why.append("needs client-side encryption")
        if r.get("serverParameters"):
            why.append("needs server parameters %s" % ", ".join(r["serverParameters"]))
        if not why:
            return True, ""
        reasons.append(", ".join(why))
    return False, "; ".join(reasons)


# MongoDB's $type names of the Python values bson decodes to; order matters
# (bool before int, Int64 before int: each is a subclass of the next).
TYPE_NAMES = [(bool, "bool"), (Int64, "long"), (int, "int"), (float, "double"), (str, "string"), (dict, "object"),
              (list, "array"), (Decimal128, "decimal"), (ObjectId, "objectId"), (type(None), "null")]


def type_name(v):
    if v is MISSING:
        return "missing"
    for cls, name in TYPE_NAMES:
        if isinstance(v, cls):
            return name
    return type(v).__name__


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def matches(expected, actual, root=True):
    """The unified format's "Evaluating Matches" rules."""
    if isinstance(expected, dict) and len(expected) == 1 and next(iter(expected)).startswith("$$"):
        op, arg = next(iter(expected.items()))
        if op == "$$exists":
            return (actual is not MISSING) == bool(arg)
        if op == "$$type":
            names = arg if isinstance(arg, list) else [arg]
            t = type_name(actual)
            return t in names or (t == "int" and "number" in names)
        if op == "$$unsetOrMatches":
            return actual is MISSING or matches(arg, actual, root)
        if op == "$$lte":
            return is_number(actual) and actual <= arg
        if op in ("$$sessionLsid", "$$matchesEntity", "$$matchAsDocument", "$$matchAsRoot"):
            raise Skip("operator %s needs driver entities" % op)
        raise Skip("unknown special operator %s" % op)
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return False
        for k, v in expected.items():
            if not matches(v, actual.get(k, MISSING), root=False):
                return False
        return root or set(actual) <= set(expected)
    if isinstance(expected, list):
        # the documents of a root-level array (a find's expectResult) are
        # root-level documents themselves: extra fields allowed
        return (isinstance(actual, list) and len(actual) == len(expected)
                and all(matches(e, a, root) for e, a in zip(expected, actual)))
    if is_number(expected) and is_number(actual):
        return float(expected) == float(actual)
    if type(expected) is not type(actual) and not (isinstance(expected, str) and isinstance(actual, str)):
        return False
    return expected == actual


class Runner:
    def __init__(self, engine, doc):
        self.e = engine
        self.doc = doc
        self.entities = {}
        for ent in doc.get("createEntities", []):
            (kind, spec), = ent.items()
            if kind == "database":
                self.entities[spec["id"]] = (spec["databaseName"], None)
            elif kind == "collection":
                db = self.entities[spec["database"]][0]
                self.entities[spec["id"]] = (db, spec["collectionName"])
            else:
                self.entities[spec["id"]] = kind

    def run(self, db, cmd):
        r = self.e.command(db, cmd)
        if r.get("ok") != 1:
            raise EngineError(r)
        return r

    def load_initial(self):
        for data in self.doc.get("initialData", []):
            db, coll = data["databaseName"], data["collectionName"]
            self.run(db, {"drop": coll})
            if data.get("documents"):
                r = self.run(db, {"insert": coll, "documents": data["documents"]})
                assert not r.get("writeErrors"), r
            else:
                self.run(db, {"create": coll})

    def cursor_all(self, db, coll, reply, batch):
        docs = list(reply["cursor"]["firstBatch"])
        cid = reply["cursor"]["id"]
        ns_coll = reply["cursor"]["ns"].split(".", 1)[1]
        while cid:
            gm = {"getMore": Int64(cid), "collection": ns_coll}
            if batch:
                gm["batchSize"] = batch
            r = self.run(db, gm)
            docs.extend(r["cursor"]["nextBatch"])
            cid = r["cursor"]["id"]
        return docs

    # -- operations ---------------------------------------------------------
    def op_aggregate(self, target, args):
        db, coll = target
        cmd = {"aggregate": coll if coll else 1, "pipeline": args["pipeline"], "cursor": {}}
        if "batchSize" in args:
            cmd["cursor"]["batchSize"] = args["batchSize"]
        for k in ("allowDiskUse", "let", "collation", "comment", "hint", "maxTimeMS", "bypassDocumentValidation",
                  "readConcern", "writeConcern"):
            if k in args:
                cmd[k] = args[k]
        if "session" in args:
            raise Skip("sessions are exercised through the wire server")
        if "rawData" in args:
            raise Skip("rawData is for time-series buckets")
        if any("$listLocalSessions" in st for st in args["pipeline"]):
            raise Skip("lists the driver's implicit session, which exists only over the wire (wire-server runner)")
        return self.cursor_all(db, coll, self.run(db, cmd), args.get("batchSize"))

    def execute(self, op):
        name = op["name"]
        target = self.entities.get(op["object"])
        if not isinstance(target, tuple):
            raise Skip("operation %s on %s needs a driver entity" % (name, op["object"]))
        fn = getattr(self, "op_" + name, None)
        if fn is None:
            raise Skip("operation %s is not run by this runner" % name)
        return fn(target, op.get("arguments", {}))

    def check_outcome(self, outcome):
        for o in outcome or []:
            r = self.run(o["databaseName"], {"find": o["collectionName"], "sort": {"_id": 1}, "batchSize": 100000})
            actual = r["cursor"]["firstBatch"]
            if not matches(o["documents"], actual, root=False):
                raise AssertionError("outcome of %s: %r != %r" % (o["collectionName"], actual, o["documents"]))

    def run_test(self, test):
        ok, why = requirements_met(self.doc.get("runOnRequirements", []) + [])
        if ok:
            ok, why = requirements_met(test.get("runOnRequirements"))
        if not ok:
            raise Skip(why)
        if test.get("skipReason"):
            raise Skip(test["skipReason"])
        self.load_initial()
        for op in test["operations"]:
            if op["name"] in ("failPoint", "targetedFailPoint"):
                raise Skip("failPoint needs a test-only server hook")
            expect_error = op.get("expectError")
            if expect_error and expect_error.get("isClientError"):
                raise Skip("client-side validation happens in drivers")
            try:
                result = self.execute(op)
            except EngineError as err:
                if not expect_error:
                    raise AssertionError("%s failed: %s" % (op["name"], err.reply))
                if "errorCode" in expect_error and err.code != expect_error["errorCode"]:
                    raise AssertionError("error code %s, wanted %s" % (err.code, expect_error["errorCode"]))
                if "errorCodeName" in expect_error and err.code_name != expect_error["errorCodeName"]:
                    raise AssertionError("error %s, wanted %s" % (err.code_name, expect_error["errorCodeName"]))
                if "errorContains" in expect_error and expect_error["errorContains"].lower() not in str(err).lower():
                    raise AssertionError("error %r does not contain %r" % (str(err), expect_error["errorContains"]))
                continue
            if expect_error:
                raise AssertionError("%s succeeded, wanted an error %r" % (op["name"], expect_error))
            if "expectResult" in op and not matches(op["expectResult"], result):
                raise AssertionError("result %r\n  wanted %r" % (result, op["expectResult"]))
        self.check_outcome(test.get("outcome"))


def load(path):
    with open(path) as f:
        return json_util.loads(f.read(), json_options=CANONICAL_JSON_OPTIONS)


def run_files(tool, dbpath, paths):
    """Runs every test of every file; returns [(file, description, status, detail)]."""
    results = []
    engine = Engine(tool, dbpath)
    try:
        for path in paths:
            doc = load(path)
            for test in doc["tests"]:
                runner = Runner(engine, doc)
                try:
                    runner.run_test(test)
                    results.append((os.path.basename(path), test["description"], "passed", ""))
                except Skip as s:
                    results.append((os.path.basename(path), test["description"], "skipped", str(s)))
                except (AssertionError, EngineError, KeyError) as e:
                    results.append((os.path.basename(path), test["description"], "failed", str(e)[:500]))
    finally:
        engine.close()
    return results
