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
