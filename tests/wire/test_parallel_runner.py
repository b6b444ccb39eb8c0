"""Django's own test runner with --parallel (issue 20's fork safety, end to
end): `manage.py test --parallel 2` clones the test database once per
worker and forks the workers, which use connections their parent opened
before the fork. On the embedded engine (and, once djongo-server lets
transactions that touch different documents write at once, over libmongoc
against it) every worker's tests must pass against its own clone --
each test class below counts the rows it made, so a worker that wrote into
another's database, or used its parent's socket or LMDB environment, fails
or hangs."""
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

MODELS = '''
from django.db import models


class Note(models.Model):
    text = models.CharField(max_length=20)
    n = models.IntegerField()
'''

# Eight classes: the parallel runner deals them out to its two workers.
TESTS = "from django.test import TestCase\nfrom partest.models import Note\n" + "".join(textwrap.dedent('''

    class Worker{i}Test(TestCase):
        @classmethod
        def setUpTestData(cls):
            Note.objects.bulk_create([Note(text="c{i}", n=k) for k in range({i} + 1)])

        def test_own_rows_only(self):
            self.assertEqual(Note.objects.count(), {i} + 1)
            self.assertEqual(sorted(Note.objects.values_list("n", flat=True)), list(range({i} + 1)))

        def test_write_then_read(self):
            Note.objects.create(text="x", n=100)
            self.assertEqual(Note.objects.filter(n__gte=100).count(), 1)
    ''').format(i=i) for i in range(8))

SETTINGS = '''
import os
SECRET_KEY = "x"
USE_TZ = True
INSTALLED_APPS = ["partest"]
DATABASES = {"default": {"ENGINE": "djongo", "NAME": "partest", "HOST": os.environ["DJONGO_HOST"]}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
'''


def _project(tmp_path):
    app = tmp_path / "partest"
    (app / "migrations").mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "migrations" / "__init__.py").write_text("")
    (app / "models.py").write_text(MODELS)
    (app / "tests.py").write_text(TESTS)
    (tmp_path / "partest_settings.py").write_text(SETTINGS)


def _run_parallel(tmp_path, host):
    _project(tmp_path)
    env = dict(os.environ, DJONGO_HOST=host, DJANGO_SETTINGS_MODULE="partest_settings",
               PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, "-m", "django", "test", "partest", "--parallel", "2", "-v", "2"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert re.search(r"Ran 16 tests", out), out
    # two clones made, i.e. the runner really ran two forked workers
    assert len(re.findall(r"Cloning test database for alias 'default'", out)) == 2, out


def test_parallel_runner_embedded(tmp_path):
    _run_parallel(tmp_path, str(tmp_path / "data"))


@pytest.mark.xfail(strict=True, reason="djongo-server lets one transaction write at a time over the whole data "
                   "directory: the second worker's TestCase transaction gets WriteConflict at its first write "
                   "(README, Transactions); strict, so this turns into a failure once that is lifted")
def test_parallel_runner_over_djongo_server(tmp_path, server):
    _run_parallel(tmp_path, server.uri)
