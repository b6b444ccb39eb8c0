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


def test_embedded_connection_used_in_parent_and_child(tmp_path):
    conn = driver.connect(str(tmp_path / "d"), db="f", autocommit=True)
    conn.command({"insert": "t", "documents": [{"_id": 1}]})

    def child():
        conn.command({"insert": "t", "documents": [{"_id": 2}]})  # the inherited connection
        other = driver.connect(str(tmp_path / "d"), db="f", autocommit=True)  # and a new one
        other.command({"insert": "t", "documents": [{"_id": 3}]})
        ok = _ids(conn) == [1, 2, 3] == _ids(other)
        other.close()
        conn.close()
        return ok

    assert _in_child(child) == 0
    conn.command({"insert": "t", "documents": [{"_id": 4}]})
    assert _ids(conn) == [1, 2, 3, 4]
    conn.close()


def test_embedded_transaction_stays_with_the_parent(tmp_path):
    conn = driver.connect(str(tmp_path / "d"), db="f")  # autocommit off
    assert _ids(conn) == [] and conn.in_transaction  # a read snapshot: the parent's transaction

    def child():
        # the inherited connection is the child's own now, outside the
        # parent's transaction; it writes and commits through a new one
        fresh = not conn.in_transaction
        conn.command({"insert": "t", "documents": [{"_id": 9}]})
        conn.commit()
        return fresh and _ids(conn) == [9]

    assert _in_child(child) == 0
    assert _ids(conn) == []  # the parent's snapshot, still open
    conn.rollback()
    assert _ids(conn) == [9]
    conn.close()


def test_no_fork_no_reopen(tmp_path):
    # (the same process: one environment, shared by both handles)
    a = driver.connect(str(tmp_path / "d"), db="f", autocommit=True)
    b = driver.connect(str(tmp_path / "d"), db="f", autocommit=True)
    a.command({"insert": "t", "documents": [{"_id": 1}]})
    assert _ids(b) == [1]
    a.close()
    b.close()


@pytest.mark.parametrize("close_in_child", [True, False])
def test_closing_an_inherited_connection_leaves_the_parent_alone(tmp_path, close_in_child):
    conn = driver.connect(str(tmp_path / "d"), db="f", autocommit=True)
    conn.command({"insert": "t", "documents": [{"_id": 1}]})

    def child():
        if close_in_child:
            conn.close()  # Django's workers close what they inherited
        return True

    assert _in_child(child) == 0
    conn.command({"insert": "t", "documents": [{"_id": 2}]})
    assert _ids(conn) == [1, 2]
    conn.close()
