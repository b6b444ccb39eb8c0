"""djongo's DB-API driver (libmongoc underneath) against simulated
deployments: MockupDB servers (PyPI mockupdb) on loopback, started and
stopped inside each test, answering the handshake as members of a
three-member replica set or as a mongos, and every other command as the
test scripts it. Asserted on the commands each member receives:

- discovery from a seed list: writes and djongo's own table lookups go to
  the primary, reads of data with readPreference=secondary to a secondary,
  and a cursor's getMore to the member that opened it;
- a primary stepping down mid-write (NotWritablePrimary, labelled
  RetryableWriteError, as MongoDB 4.4+ labels it): the write is sent once
  more, to the newly elected primary, with the same lsid and txnNumber
  (https://github.com/mongodb/specifications/blob/master/source/retryable-writes/retryable-writes.md);
  with retryWrites=false it is not, and OperationalError says why;
- a mongos (hello's msg: "isdbgrid"): reads carry $readPreference, which
  only a mongos is sent;
- no member selectable: OperationalError naming each host and what was
  seen of it (djongo adds to libmongoc's message the members it knows and
  their state, and the seeds it never reached)."""
import datetime
import threading

import mockupdb  # PyPI mockupdb: scripts/deps.sh installs it
import pytest
from bson import ObjectId

from djongo import driver

SELECT = 'SELECT "items"."n" FROM "items"'
INSERT = 'INSERT INTO "items" ("n") VALUES (%s)'


class Member:
    """One simulated server: answers hello/isMaster from the topology's
    current state and hands every other command to the topology's script,
    recording it."""

    def __init__(self, topology):
        self.topology = topology
        self.server = mockupdb.MockupDB(port=None, request_timeout=30)
        self.port = self.server.run()
        self.address = "localhost:%d" % self.port
        self.commands = []  # (name, document) of every non-handshake command
        self.stopped = False
        self.down = False
        self.server.autoresponds(self._handle)

    def _handle(self, request):
        if self.down:
            return request.hangup()  # unreachable: every connection dropped
        name = (request.command_name or "").lower()
        if name in ("ismaster", "hello"):
            return request.replies(self.topology.hello(self))
        with self.topology.lock:
            self.commands.append((request.command_name, dict(request.doc)))
        return self.topology.script(self, request)

    def names(self):
        with self.topology.lock:
            return [n for n, _ in self.commands]

    def stop(self):
        if not self.stopped:
            self.stopped = True
            self.server.stop()


def _cursor(ns, docs, cursor_id=0, first=True):
    return {"cursor": {"id": cursor_id, "ns": ns, "firstBatch" if first else "nextBatch": docs}}


class ReplicaSet:
    """Three members of set "rs"; `primary` (an index, or None) is elected
    and the others are secondaries. elect() moves the primary with a higher
    electionId, as a real election does."""

    def __init__(self, script):
        self.lock = threading.Lock()
        self.script = script
        self.primary = 0
        self.election = 1
        self.members = [Member(self) for _ in range(3)]

    def elect(self, index):
        with self.lock:
            self.primary = index
            self.election += 1

    def hello(self, member):
        with self.lock:
            me = self.members.index(member)
            primary = self.members[self.primary].address if self.primary is not None else None
            doc = {"ismaster": me == self.primary, "isWritablePrimary": me == self.primary,
                   "secondary": me != self.primary, "setName": "rs", "setVersion": 1,
                   "hosts": [m.address for m in self.members], "me": member.address,
                   "minWireVersion": 0, "maxWireVersion": 17, "logicalSessionTimeoutMinutes": 30,
                   "maxBsonObjectSize": 16777216, "maxMessageSizeBytes": 48000000, "maxWriteBatchSize": 100000,
                   "lastWrite": {"lastWriteDate": datetime.datetime.now(datetime.timezone.utc)}}
            if primary:
                doc["primary"] = primary
            if me == self.primary:
                doc["electionId"] = ObjectId("7fffffff%016x" % self.election)
            return doc

    def uri(self):
        return "mongodb://%s/?replicaSet=rs" % ",".join(m.address for m in self.members)

    def close(self):
        for m in self.members:
            m.stop()


def _answer(member, request):
    """The commands djongo sends for INSERT and SELECT on a table no
    migration made: its table lookup (nothing recorded), whether the
    collection exists (it does), the insert, the find."""
    name = request.command_name
    doc = request.doc
    if name == "find" and doc["find"] == "__djongo_tables":
        return request.replies(_cursor("d.__djongo_tables", []))
    if name == "listCollections":
        return request.replies(_cursor("d.$cmd.listCollections", [{"name": "items", "type": "collection"}]))
    if name == "insert":
        return request.replies(n=len(doc.get("documents", [])))
    if name == "find":
        return request.replies(_cursor("d.items", [{"_id": 1, "n": member.address}]))
    return request.replies()


@pytest.fixture
def replica_set():
    sets = []

    def make(script=_answer):
        rs = ReplicaSet(script)
        sets.append(rs)
        return rs
    yield make
    for rs in sets:
        rs.close()


def _connect(uri, **options):
    options.setdefault("serverSelectionTimeoutMS", 10000)
    options.setdefault("heartbeatFrequencyMS", 500)
    return driver.connect(uri, db="d", autocommit=True, options=options)


def test_discovery_routes_writes_to_the_primary_and_reads_to_a_secondary(replica_set):
    def script(member, request):
        doc = request.doc
        if request.command_name == "find" and doc["find"] == "items":
            # a first batch with the cursor left open, then the rest
            return request.replies(_cursor("d.items", [{"_id": 1, "n": member.address}], cursor_id=77))
        if request.command_name == "getMore":
            return request.replies(_cursor("d.items", [{"_id": 2, "n": member.address}], first=False))
        return _answer(member, request)
    rs = replica_set(script)
    primary, secondaries = rs.members[0], rs.members[1:]
    with _connect(rs.uri(), readPreference="secondary") as conn:
        cur = conn.cursor()
        cur.execute(INSERT, [1])
        cur.execute(SELECT)
        rows = cur.fetchall()
    assert "insert" in primary.names()
    readers = [m for m in secondaries if "find" in m.names()]
    assert len(readers) == 1 and "find" not in [n for n, d in primary.commands if d.get("find") == "items"]
    reader = readers[0]
    assert rows == [(reader.address,), (reader.address,)]  # both batches from the same member
    assert "getMore" in reader.names() and "getMore" not in primary.names()
    find = [d for n, d in reader.commands if n == "find"][0]
    assert find["$readPreference"]["mode"] == "secondary"
    # djongo's own lookup of the table went to the primary
    assert any(n == "find" and d["find"] == "__djongo_tables" for n, d in primary.commands)
    assert not any(n == "insert" for m in secondaries for n in m.names())


def _failover_script(rs, new_primary):
    def script(member, request):
        if request.command_name == "insert" and member is rs.members[0]:
            rs.elect(new_primary)  # the old primary steps down as it answers
            return request.replies(ok=0, code=10107, codeName="NotWritablePrimary", errmsg="not primary",
                                   errorLabels=["RetryableWriteError"])
        return _answer(member, request)
    return script


def test_a_write_interrupted_by_a_step_down_is_retried_once_on_the_new_primary(replica_set):
    rs = replica_set()
    rs.script = _failover_script(rs, 1)
    with _connect(rs.uri()) as conn:
        cur = conn.cursor()
        cur.execute(INSERT, [5])
        assert cur.rowcount == 1
    first = [d for n, d in rs.members[0].commands if n == "insert"]
    again = [d for n, d in rs.members[1].commands if n == "insert"]
    assert len(first) == 1 and len(again) == 1, (first, again)
    assert first[0]["txnNumber"] == again[0]["txnNumber"]
    assert first[0]["lsid"] == again[0]["lsid"]
    assert again[0]["documents"] == first[0]["documents"] == [{"n": 5}]
    assert not any(n == "insert" for n in rs.members[2].names())
    # the next write is a new statement: a new transaction number, same session
    with _connect(rs.uri()) as conn:
        conn.cursor().execute(INSERT, [6])
    later = [d for n, d in rs.members[1].commands if n == "insert"]
    assert len(later) == 2


def test_without_retry_writes_the_step_down_is_an_operational_error(replica_set):
    rs = replica_set()
    rs.script = _failover_script(rs, 2)
    with _connect(rs.uri(), retryWrites=False) as conn:
        with pytest.raises(driver.OperationalError) as e:
            conn.cursor().execute(INSERT, [5])
    assert e.value.code == 10107 and "not primary" in str(e.value)
    sent = [d for n, d in rs.members[0].commands if n == "insert"]
    assert len(sent) == 1 and "txnNumber" not in sent[0]
    assert not any(n == "insert" for m in rs.members[1:] for n in m.names())


def test_updates_of_many_rows_are_not_retried(replica_set):
    rs = replica_set()

    def script(member, request):
        if request.command_name == "update":
            rs.elect(1)
            return request.replies(ok=0, code=10107, errmsg="not primary", errorLabels=["RetryableWriteError"])
        return _answer(member, request)
    rs.script = script
    with _connect(rs.uri()) as conn:
        with pytest.raises(driver.OperationalError):
            conn.cursor().execute('UPDATE "items" SET "n" = 0 WHERE "items"."n" > 1')
    updates = [d for m in rs.members for n, d in m.commands if n == "update"]
    assert len(updates) == 1 and updates[0]["updates"][0].get("multi") is True
    assert "txnNumber" not in updates[0]


class Mongos:
    def __init__(self):
        self.lock = threading.Lock()
        self.member = Member(self)

    def hello(self, member):
        return {"ismaster": True, "isWritablePrimary": True, "msg": "isdbgrid", "minWireVersion": 0,
                "maxWireVersion": 17, "logicalSessionTimeoutMinutes": 30, "maxBsonObjectSize": 16777216,
                "maxMessageSizeBytes": 48000000, "maxWriteBatchSize": 100000}

    def script(self, member, request):
        return _answer(member, request)


def test_a_mongos_is_sent_the_read_preference():
    mongos = Mongos()
    try:
        with _connect("mongodb://%s/" % mongos.member.address, readPreference="secondaryPreferred",
                      readPreferenceTags=[{"dc": "east"}, {}]) as conn:
            cur = conn.cursor()
            cur.execute(INSERT, [1])
            cur.execute(SELECT)
            assert cur.fetchall() == [(mongos.member.address,)]
        cmds = mongos.member.commands
        find = [d for n, d in cmds if n == "find" and d["find"] == "items"][0]
        assert find["$readPreference"] == {"mode": "secondaryPreferred", "tags": [{"dc": "east"}, {}]}
        insert = [d for n, d in cmds if n == "insert"][0]
        assert "$readPreference" not in insert and "txnNumber" in insert  # retryable through a mongos too
    finally:
        mongos.member.stop()


def test_no_selectable_member_is_an_operational_error_naming_the_hosts(replica_set):
    rs = replica_set()
    rs.elect(None)  # no primary: every member a secondary
    gone = rs.members[2]
    gone.down = True
    with _connect(rs.uri(), serverSelectionTimeoutMS=1500) as conn:
        with pytest.raises(driver.OperationalError) as e:
            conn.cursor().execute(INSERT, [1])
    msg = str(e.value)
    assert "No suitable servers found" in msg
    for m in rs.members[:2]:
        assert "%s (RSSecondary)" % m.address in msg, msg
    assert "%s (Unknown)" % gone.address in msg, msg  # (libmongoc's pooled clients do not name it themselves)


@pytest.mark.parametrize("retry_reads", [True, False])
def test_a_read_cut_off_by_the_network_is_retried_once_with_retry_reads(replica_set, retry_reads):
    rs = replica_set()
    cut = []

    def script(member, request):
        if request.command_name == "find" and request.doc["find"] == "items" and not cut:
            cut.append(member)
            return request.hangup()  # the connection drops mid-read
        return _answer(member, request)
    rs.script = script
    with _connect(rs.uri(), readPreference="secondary", retryReads=retry_reads) as conn:
        cur = conn.cursor()
        if retry_reads:
            cur.execute(SELECT)
            assert len(cur.fetchall()) == 1
        else:
            with pytest.raises(driver.OperationalError):
                cur.execute(SELECT)
    finds = [d for m in rs.members for n, d in m.commands if n == "find" and d["find"] == "items"]
    assert len(finds) == (2 if retry_reads else 1)
    assert not any(d["find"] == "items" for n, d in rs.members[0].commands if n == "find")  # never the primary
