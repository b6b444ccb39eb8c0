"""A djongo-server for the wire tests: started on a free port over a fresh
data directory, stopped with SIGTERM (which must end it cleanly)."""
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

TOOL = os.environ.get("DJONGO_SERVER") or shutil.which("djongo-server")


class Server:
    def __init__(self, dbpath, *extra):
        if not TOOL:
            pytest.fail("djongo-server is not installed (pip install . puts it on PATH)")
        env = dict(os.environ)
        if "DJONGO_SERVER_ASAN_OPTIONS" in env:  # the sanitizer build: its own settings (leak checks)
            env["ASAN_OPTIONS"] = env["DJONGO_SERVER_ASAN_OPTIONS"]
            env.pop("LD_PRELOAD", None)
        self.proc = subprocess.Popen([TOOL, "--dbpath", str(dbpath), "--port", "0", "--nosync", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        assert line.startswith("djongo-server listening on port "), line + self.proc.stderr.read()
        self.port = int(line.split()[-1])
        self.uri = "mongodb://127.0.0.1:%d/" % self.port
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise
        return self.proc.returncode


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path / "data")
    yield s
    assert s.stop() == 0, "djongo-server did not stop cleanly on SIGTERM"


_DJANGO_PRELUDE = r'''
import json, os, sys
sys.path.insert(0, os.environ["DJONGO_TEST_APPS"])
from django.conf import settings
settings.configure(INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "surfaceapp"],
                   DATABASES={"default": {"ENGINE": "djongo", "NAME": os.environ["DJONGO_TEST_NAME"],
                                          "HOST": os.environ["URI"],
                                          "OPTIONS": json.loads(os.environ["DJONGO_TEST_OPTIONS"])}},
                   USE_TZ=True, DEFAULT_AUTO_FIELD="django.db.models.AutoField")
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
'''


def run_django(uri, name, body, options=None):
    """Runs `body` (Python source) in an interpreter of its own -- Django
    configured for tests/django/surfaceapp on database `name` at `uri`
    (OPTIONS: `options`) and migrated -- and fails the test with its output
    unless it exits 0 and prints "ok" last."""
    import json
    import pathlib
    import sys

    env = dict(os.environ, URI=uri, DJONGO_TEST_NAME=name, DJONGO_TEST_OPTIONS=json.dumps(options or {}),
               DJONGO_TEST_APPS=str(pathlib.Path(__file__).resolve().parents[1] / "django"))
    p = subprocess.run([sys.executable, "-c", _DJANGO_PRELUDE + body], env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stdout + p.stderr


OPENSSL = shutil.which("openssl")  # tests/wire/test_tls.py's certificates


def _openssl(*args, cwd):
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(d, name):
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", name + ".key", "-out", name + ".pem", "-days", "2", "-subj", "/CN=djongo test " + name,
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def _make_leaf(d, name, ca, usage, san):
    """name.pem: the certificate then its private key (mongod's certificateKeyFile layout)."""
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=%s\n" % usage)
        if san:
            f.write("subjectAltName=%s\n" % san)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", name + ".key",
             "-out", name + ".csr", "-subj", "/CN=" + name, cwd=d)
    _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key", "-CAcreateserial",
             "-out", name + ".crt", "-days", "2", "-extfile", ext, cwd=d)
    with open(os.path.join(d, name + ".pem"), "w") as out:
        for part in (name + ".crt", name + ".key"):
            with open(os.path.join(d, part)) as f:
                out.write(f.read())


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """TLS test material, made once per run by the openssl command in a
    temporary directory (nothing committed): a throwaway CA, a server
    certificate for 127.0.0.1/localhost, a client certificate, and a second
    CA (other-ca) with a client certificate of its own (stranger) that the
    first does not trust. {name: path of name.pem}."""
    if not OPENSSL:
        pytest.fail("the openssl command is not installed (scripts/deps.sh installs it)")
    d = str(tmp_path_factory.mktemp("tls"))
    _make_ca(d, "ca")
    _make_ca(d, "other-ca")
    _make_leaf(d, "server", "ca", "serverAuth", "IP:127.0.0.1,DNS:localhost")
    _make_leaf(d, "client", "ca", "clientAuth", None)
    _make_leaf(d, "stranger", "other-ca", "clientAuth", None)
    return {k: os.path.join(d, k + ".pem") for k in ("ca", "other-ca", "server", "client", "stranger")}
