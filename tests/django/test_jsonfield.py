"""Django's own JSONField on djongo (jsonfield_tests.py) in a pytest process
of its own: those tests configure Django's settings for their app
(tests/django/jsonapp) at import, which would clash with the other modules
that configure Django differently in the same process. Every test's result
is printed; any failure fails this one."""
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent


def test_django_jsonfield_suite():
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
                        str(HERE / "jsonfield_tests.py")], capture_output=True, text=True, timeout=600, cwd=HERE)
    print(p.stdout[-20000:])
    assert p.returncode == 0, p.stdout[-20000:] + p.stderr[-5000:]
    assert " passed" in p.stdout.splitlines()[-1]
