"""The example site (example/) on the embedded engine, as the README's main
command sets it up: migrate, seed (superuser + sample data), then the admin
driven end to end (admin_flow.py). Each step runs in its own process, as
manage.py would, on a fresh data directory."""
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def run(args, host):
    # the example site, with the djongo this test imports (its PYTHONPATH kept)
    path = [str(ROOT / "example")] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, DJONGO_HOST=str(host), PYTHONPATH=os.pathsep.join(path))
    p = subprocess.run([sys.executable, *args], cwd=ROOT / "example", env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def test_migrate_seed_and_admin(tmp_path):
    host = tmp_path / "site-data"
    out = run(["manage.py", "migrate", "--no-input"], host)
    assert "Applying blog.0001_initial... OK" in out and "Applying auth.0001_initial... OK" in out
    assert "No migrations to apply" in run(["manage.py", "migrate", "--no-input"], host)
    assert "created 2 blogs, 3 authors, 4 tags, 4 entries" in run(["manage.py", "seed"], host)
    assert "already there" in run(["manage.py", "seed"], host)
    assert "admin flow: ok" in run([str(ROOT / "tests" / "django" / "admin_flow.py")], host)


def test_makemigrations_is_clean(tmp_path):
    """The committed migrations match the models (djongo's introspection and
    autodetector agree)."""
    assert "No changes detected" in run(["manage.py", "makemigrations", "--check", "--dry-run"], tmp_path / "d")


def test_sqlmigrate_shows_sql_and_mongodb_commands(tmp_path):
    out = run(["manage.py", "sqlmigrate", "blog", "0001"], tmp_path / "d")
    assert 'CREATE TABLE "blog_entry"' in out
    assert '-- MongoDB: { "create" : "blog_entry" }' in out
    assert '"createIndexes" : "blog_entry"' in out and '"name" : "blog_entry_pub_dat' in out
