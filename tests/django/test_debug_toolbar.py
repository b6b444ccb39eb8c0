"""djongo.debug_toolbar.MongoPanel through django-debug-toolbar, in a test
request as a browser makes it: the page with the toolbar, the panel's
content (render_panel: each SQL statement, its MongoDB commands, its time),
the explain button's remote call (the plan: the index a lookup scans, a
collection scan without one), a forged explain and a write command refused, and the SQL panel
beside it still listing the statements. In a process of its own.
"""
import json
import os
import subprocess
import sys
import textwrap

SETTINGS = '''
import os
SECRET_KEY = "x"
DEBUG = True
ALLOWED_HOSTS = ["testserver"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.staticfiles",
                  "debug_toolbar", "djongo", "tbapp"]
DATABASES = {"default": {"ENGINE": "djongo", "NAME": "tb", "HOST": os.environ["DJONGO_HOST"]}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
ROOT_URLCONF = "tbapp.urls"
STATIC_URL = "/static/"
MIDDLEWARE = ["debug_toolbar.middleware.DebugToolbarMiddleware"]
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
DEBUG_TOOLBAR_PANELS = ["debug_toolbar.panels.sql.SQLPanel", "djongo.debug_toolbar.MongoPanel"]
DEBUG_TOOLBAR_CONFIG = {"SHOW_TOOLBAR_CALLBACK": lambda request: True, "IS_RUNNING_TESTS": False}
'''

MODELS = '''
from django.db import models

class Item(models.Model):
    name = models.CharField(max_length=20, db_index=True)
    note = models.CharField(max_length=20)
'''

URLS = '''
from debug_toolbar.toolbar import debug_toolbar_urls
from django.http import HttpResponse
from django.urls import path
from tbapp.models import Item

def page(request):
    by_index = list(Item.objects.filter(name="a"))
    by_scan = list(Item.objects.filter(note="n"))
    return HttpResponse("<html><body>%d %d</body></html>" % (len(by_index), len(by_scan)))

urlpatterns = [path("", page)] + debug_toolbar_urls()
'''

CHECK = '''
import html, json, re
import django
django.setup()
from django.core.management import call_command
from django.test import Client
from django.test.utils import setup_test_environment
call_command("migrate", run_syncdb=True, verbosity=0)
from tbapp.models import Item
Item.objects.create(name="a", note="n")
client = Client()
page = client.get("/").content.decode()
out = {"toolbar": "djDebug" in page}
request_id = re.search(r'data-request-id="([^"]+)"', page).group(1)
panel = client.get("/__debug__/render_panel/", {"request_id": request_id, "panel_id": "MongoPanel"}).json()["content"]
out["panel_sql"] = [html.unescape(s) for s in re.findall(r'<td class="djdt-sql"><code>(.*?)</code>', panel, re.S)]
out["panel_commands"] = [html.unescape(c) for c in re.findall(r'<div class="djongo-command">\\s*<code>(.*?)</code>', panel, re.S)]
out["panel_times"] = re.findall(r'<td class="djdt-time">([0-9.]+)</td>', panel)
forms = re.findall(r'<input type="hidden" name="signed" value="([^"]+)"', panel)
out["plans"] = []
for signed in forms:
    reply = client.post("/__debug__/djongo_explain/", {"signed": html.unescape(signed)})
    out["plans"].append(html.unescape(re.search(r'<dd class="djongo-plan">(.*?)</dd>', reply.json()["content"]).group(1)))
out["forged"] = client.post("/__debug__/djongo_explain/", {"signed": '{"alias": "default", "command": "{}"}:x'}).status_code
from debug_toolbar.forms import SignedDataForm
write = SignedDataForm.sign({"alias": "default", "command": '{"delete": "tbapp_item", "deletes": [{"q": {}, "limit": 0}]}'})
out["signed_write"] = client.post("/__debug__/djongo_explain/", {"signed": write}).status_code
out["items_left"] = Item.objects.count()
sql_panel = client.get("/__debug__/render_panel/", {"request_id": request_id, "panel_id": "SQLPanel"}).json()["content"]
out["sql_panel_items"] = sql_panel.count("tbapp_item")
print(json.dumps(out))
'''


def test_mongo_panel_through_the_toolbar(tmp_path):
    app = tmp_path / "tbapp"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "models.py").write_text(textwrap.dedent(MODELS))
    (app / "urls.py").write_text(textwrap.dedent(URLS))
    (tmp_path / "tb_settings.py").write_text(SETTINGS)
    env = dict(os.environ, DJONGO_HOST=str(tmp_path / "data"), DJANGO_SETTINGS_MODULE="tb_settings",
               PYTHONPATH=os.pathsep.join([str(tmp_path)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    p = subprocess.run([sys.executable, "-c", CHECK], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    out = json.loads(p.stdout.splitlines()[-1])
    assert out["toolbar"]
    assert len(out["panel_sql"]) == 2 and all("tbapp_item" in s for s in out["panel_sql"]), out["panel_sql"]
    assert "'a'" in out["panel_sql"][0] and "'n'" in out["panel_sql"][1]
    finds = [json.loads(c) for c in out["panel_commands"]]
    assert [next(iter(f)) for f in finds] == ["find", "find"], out["panel_commands"]
    assert finds[0]["filter"] == {"name": {"$eq": "a"}} and finds[1]["filter"] == {"note": {"$eq": "n"}}
    assert len(out["panel_times"]) == 2 and all(float(t) > 0 for t in out["panel_times"]), out["panel_times"]
    assert len(out["plans"]) == 2
    assert "IXSCAN" in out["plans"][0] and "name" in out["plans"][0], out["plans"]  # the db_index
    assert "COLLSCAN" in out["plans"][1], out["plans"]
    assert out["forged"] == 400
    assert out["signed_write"] == 400 and out["items_left"] == 1  # only read commands are explained
    assert out["sql_panel_items"] >= 2
