"""A throwaway Django project in a temporary directory, for the tests that
run makemigrations / migrate / scripts in subprocesses of their own
(test_index_kinds.py, test_geo.py): an app package with a migrations
package and its models, a settings module, and the environment that finds
them (PYTHONPATH first, then the caller's)."""
import os
import subprocess
import sys
import textwrap

# `python -c MANAGE ...` is manage.py
MANAGE = ["-c", "import sys; from django.core.management import execute_from_command_line; "
                "execute_from_command_line(['manage.py'] + sys.argv[1:])"]


SETTINGS = """import os
SECRET_KEY = "x"
USE_TZ = True
INSTALLED_APPS = [%(app)r]
DATABASES = {"default": {"ENGINE": "djongo", "NAME": %(db)r, "HOST": os.environ["DJONGO_HOST"], "OPTIONS": %(options)r}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
"""


def make_project(tmp_path, app, models, db, options=None):
    """Writes the app (models.py from `models`) and its settings module
    `<app>_settings` (only that app installed, database `db` on the embedded
    engine with OPTIONS `options`); returns the environment to run Django in
    (DJONGO_HOST: a data directory under tmp_path)."""
    settings_module = app + "_settings"
    settings = SETTINGS % {"app": app, "db": db, "options": options or {}}
    (tmp_path / app / "migrations").mkdir(parents=True)
    (tmp_path / app / "__init__.py").write_text("")
    (tmp_path / app / "migrations" / "__init__.py").write_text("")
    (tmp_path / app / "models.py").write_text(textwrap.dedent(models))
    (tmp_path / (settings_module + ".py")).write_text(settings)
    return dict(os.environ, DJONGO_HOST=str(tmp_path / "data"), DJANGO_SETTINGS_MODULE=settings_module,
                PYTHONPATH=os.pathsep.join([str(tmp_path)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))


def first_migration(tmp_path, env, app):
    """makemigrations for app: (0001_initial.py's text, sqlmigrate's output)."""
    run(tmp_path, env, *MANAGE, "makemigrations", app)
    text = (tmp_path / app / "migrations" / "0001_initial.py").read_text()
    return text, run(tmp_path, env, *MANAGE, "sqlmigrate", app, "0001")


def run(cwd, env, *args):
    """python *args in cwd; its stdout (a failure shows both outputs)."""
    p = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout
