"""The libmongoc transport's client pool (src/transport/pool.c) against
djongo-server: one pool per server per process, so a connection closed and
made again (Django's CONN_MAX_AGE) reuses the pooled socket; after fork()
a child never uses its parent's sockets (it makes a pool of its own, and a
connection it inherited takes a client from it) while the parent's
connection goes on over its own; Django's CONN_HEALTH_CHECKS pings the
server and replaces a connection that no longer answers. The socket a
command came over is the server's whatsmyuri answer."""
import os
import pathlib
import signal
import subprocess
import sys

from djongo import driver

ROOT = pathlib.Path(__file__).resolve().parents[2]


def me(conn):
    return conn.command({"whatsmyuri": 1}, db="admin")["you"]


def test_a_connection_made_again_reuses_the_pooled_socket(server):
    a = driver.connect(server.uri, db="p", autocommit=True)
    first = me(a)
    a.close()
    b = driver.connect(server.uri, db="p", autocommit=True)
    assert me(b) == first  # the pool's socket, not a new one
    c = driver.connect(server.uri, db="p", autocommit=True)  # while b holds a client: another one
    assert me(c) != first
    b.close()
    c.close()
    d = driver.connect(server.uri, db="p", autocommit=True, options={"appname": "other"})  # other settings
    assert me(d) != first
    d.close()


def test_a_forked_child_uses_sockets_of_its_own(server):
    conn = driver.connect(server.uri, db="p", autocommit=True)
    conn.command({"insert": "t", "documents": [{"_id": 1}]})
    parent = me(conn)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            conn.command({"insert": "t", "documents": [{"_id": 2}]})  # the inherited connection
            os.write(w, me(conn).encode())
            conn.close()
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    child = os.read(r, 200).decode()
    os.close(r)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child and child != parent
    assert me(conn) == parent  # the parent's socket, untouched by the child
    conn.command({"insert": "t", "documents": [{"_id": 3}]})
    assert sorted(d["_id"] for d in conn.command({"find": "t"})["cursor"]["firstBatch"]) == [1, 2, 3]
    conn.close()


SCRIPT = r'''
import os
from django.conf import settings
settings.configure(DATABASES={"default": {"ENGINE": "djongo", "NAME": "hc", "HOST": os.environ["URI"],
                                          "CONN_HEALTH_CHECKS": True, "CONN_MAX_AGE": None,
                                          "OPTIONS": {"serverSelectionTimeoutMS": 5000,
                                                      "socketTimeoutMS": 1000}}},
                   USE_TZ=True)
import django
django.setup()
import signal
from django.db import connection
connection.ensure_connection()
assert connection.is_usable(), "a running server's connection is usable"
first = connection.connection
# a request starts: the health check finds the connection answering and keeps it
connection.close_if_health_check_failed()
assert connection.connection is first, "a connection that answers is kept"
import time
pid = int(os.environ["SERVER_PID"])
os.kill(pid, signal.SIGSTOP)  # the server stops answering
# ... once every thread of it has stopped: kill() only makes the signal
# pending, and on a loaded machine a server thread still ran long enough to
# answer the ping below (1 run in 5 beside other jobs)
def stopped():
    for t in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
            if f.read().rsplit(")", 1)[1].split()[0] not in "Tt":
                return False
    return True
deadline = time.monotonic() + 10
while not stopped() and time.monotonic() < deadline:
    time.sleep(0.001)
assert stopped(), "the server stopped"
try:
    connection.health_check_done = False
    assert not connection.is_usable(), "a stopped server's connection is not usable"
    connection.close_if_health_check_failed()
    assert connection.connection is None, "closed: the next query makes it again"
finally:
    os.kill(pid, signal.SIGCONT)
connection.ensure_connection()
assert connection.is_usable() and connection.connection is not first, "a new connection, usable"
print("health checks: ok")
'''


def test_django_health_checks_replace_a_dead_connection(server):
    env = dict(os.environ, URI=server.uri, SERVER_PID=str(server.proc.pid))
    try:
        p = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)  # (whatever became of the script)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "health checks: ok" in p.stdout
