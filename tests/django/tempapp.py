"""A throwaway Django project for the tests that run manage.py commands
(makemigrations, sqlmigrate, migrate) in subprocesses: one app with the
models given, settings naming it, a data directory under tmp_path."""
import os
import subprocess
import sys
import textwrap

# manage.py, without a file: `python -c MANAGE command ...`
MANAGE = ["-c", "import sys; from django.core.management import execute_from_command_line; "
                "execute_from_command_line(['manage.py'] + sys.argv[1:])"]


def make_app(tmp_path, name, models, settings):
    """Writes app `name` (models: its models.py, migrations empty) and
    `<name>_settings.py` (settings: its text; DJONGO_HOST is the data
    directory). Returns (the app's directory, the environment to run in)."""
    app = tmp_path / name
    (app / "migrations").mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "migrations" / "__init__.py").write_text("")
    (app / "models.py").write_text(textwrap.dedent(models))
    (tmp_path / ("%s_settings.py" % name)).write_text(settings)
    paths = [str(tmp_path)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, DJONGO_HOST=str(tmp_path / "data"), DJANGO_SETTINGS_MODULE="%s_settings" % name,
               PYTHONPATH=os.pathsep.join(paths))
    return app, env


INDEX_NAMES = """
import sys
import django
django.setup()
from django.db import connection
reply = connection.command({"listIndexes": sys.argv[1], "cursor": {}})
print(" ".join(sorted(ix["name"] for ix in reply["cursor"]["firstBatch"])))
"""


def migrate(tmp_path, env, app, models=None):
    """Rewrites the app's models.py (models: its new text, None: as it is),
    then makemigrations, sqlmigrate and migrate for the migration that makes;
    returns that migration's text and its SQL."""
    name = app.name
    if models is not None:
        (app / "models.py").write_text(textwrap.dedent(models))
    before = set((app / "migrations").glob("0*.py"))
    run(tmp_path, env, *MANAGE, "makemigrations", name)
    (made,) = set((app / "migrations").glob("0*.py")) - before
    sql = run(tmp_path, env, *MANAGE, "sqlmigrate", name, made.stem[:4])
    run(tmp_path, env, *MANAGE, "migrate", name)
    return made.read_text(), sql


def index_names(cwd, env, collection):
    """The names of the collection's indexes, through the app's connection."""
    return run(cwd, env, "-c", INDEX_NAMES, collection).split()


def run(cwd, env, *args):
    """python *args in cwd; its stdout (it must succeed)."""
    p = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout
