"""Connections across fork() (gunicorn's pre-fork workers, Django's test
--parallel): a child that uses a connection its parent opened must not
touch the parent's LMDB environment (LMDB forbids it: lmdb.h, caveats) or
its sockets. The transport opens it again in the child
(src/transport/transport.c, reopen_after_fork; storage/env.c forgets the
parent's environments; pool.c the parent's client pools), and the parent's
connection goes on working, with its transaction."""
import os

import pytest

from djongo import driver


def _in_child(work):
    """Runs work() in a forked child; its exit status says how it went."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if work() else 3
        except BaseException as e:  # noqa: BLE001 -- reported through the exit status
            os.write(2, ("child: %r\n" % (e,)).encode())
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _ids(conn):
    return sorted(d["_id"] for d in conn.command({"find": "t"})["cursor"]["firstBatch"])


def test_embedded_connections_across_fork(tmp_path):
    path = str(tmp_path / "d")
    a = driver.connect(path, db="f")  # autocommit off
    b = driver.connect(path, db="f", autocommit=True)
    b.command({"insert": "t", "documents": [{"_id": 1}]})
    assert _ids(a) == [1] and a.in_transaction  # a read snapshot: the parent's transaction

    def child():
        # inherited connections are the child's own now: `a` outside the
        # parent's transaction (it writes and commits through a new one),
        # `b` as it was; and a connection made here shares their
        # environment (the child's, not the parent's)
        fresh = not a.in_transaction
        a.command({"insert": "t", "documents": [{"_id": 2}]})
        a.commit()
        b.command({"insert": "t", "documents": [{"_id": 3}]})
        c = driver.connect(path, db="f", autocommit=True)
        ok = fresh and _ids(c) == [1, 2, 3] == _ids(b)
        c.close()
        b.close()  # closing what it inherited leaves the parent's alone
        return ok

    assert _in_child(child) == 0
    assert _ids(a) == [1]  # the parent's snapshot, still open
    a.rollback()
    assert _ids(a) == [1, 2, 3]
    b.command({"insert": "t", "documents": [{"_id": 4}]})
    assert _ids(b) == [1, 2, 3, 4]
    a.close()
    b.close()
