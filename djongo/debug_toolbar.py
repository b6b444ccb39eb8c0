"""djongo.debug_toolbar.MongoPanel: a django-debug-toolbar panel with, per
request, each SQL statement of each djongo database, the MongoDB commands
it became and its time, and -- one click away, run only when asked -- the
``explain`` of each read command (the plan MongoDB chose: the index it
scans, or a collection scan).

    INSTALLED_APPS = [..., "debug_toolbar", "djongo"]    # djongo: the panel's template
    DEBUG_TOOLBAR_PANELS = [..., "debug_toolbar.panels.sql.SQLPanel",
                            "djongo.debug_toolbar.MongoPanel"]

The statements come from ``connection.queries`` (djongo.base.DebugCursor puts
each statement's commands under ``"mongodb"``): the panel turns
``force_debug_cursor`` on for the request, and takes the entries the request
added. The SQL panel wraps cursors of its own and keeps working beside it.
The explain button posts a signed copy of the command (Django's signing, the
toolbar's SignedDataForm), so only commands the panel recorded are explained,
and only read commands are (find, aggregate, count, distinct): explain runs
no write. https://www.mongodb.com/docs/manual/reference/command/explain/
"""
import json

from bson import json_util
from debug_toolbar._compat import login_not_required
from debug_toolbar.decorators import render_with_toolbar_language, require_show_toolbar
from debug_toolbar.forms import SignedDataForm
from debug_toolbar.panels import Panel
from django.db import DatabaseError, connections
from django.http import HttpResponseBadRequest, JsonResponse
from django.template.loader import render_to_string
from django.urls import path
from django.utils.translation import gettext_lazy as _, ngettext
from django.views.decorators.csrf import csrf_exempt

READ_COMMANDS = ("find", "aggregate", "count", "distinct")


def _djongo_aliases():
    return [alias for alias in connections if connections[alias].vendor == "djongo"]


def winning_stages(plan):
    """The stages of an explain reply's winning plan, outermost first, each
    "STAGE" or "STAGE index_name" (IXSCAN names its index; COLLSCAN is a
    collection scan)."""
    node = (plan.get("queryPlanner") or {}).get("winningPlan")
    if node is None:  # an aggregate's explain: its first stage ($cursor) holds the query planner's
        for stage in plan.get("stages") or ():
            if "$cursor" in stage:
                node = (stage["$cursor"].get("queryPlanner") or {}).get("winningPlan")
                break
    stages = []
    while node:
        stages.append(node["stage"] + (" " + node["indexName"] if node.get("indexName") else ""))
        node = node.get("inputStage")
    return stages


class MongoPanel(Panel):
    title = _("MongoDB")
    template = "djongo/debug_toolbar/mongo.html"

    @property
    def nav_subtitle(self):
        stats = self.get_stats()
        n = len(stats.get("statements", ()))
        return ngettext("%(n)d statement in %(ms).2f ms", "%(n)d statements in %(ms).2f ms", n) % {
            "n": n, "ms": stats.get("time_ms", 0.0)}

    def enable_instrumentation(self):
        self._marks = {}
        for alias in _djongo_aliases():
            connection = connections[alias]
            log = connection.queries_log  # a deque with a maxlen: marked by its last entry, not a length
            self._marks[alias] = (connection.force_debug_cursor, log[-1] if log else None)
            connection.force_debug_cursor = True

    def disable_instrumentation(self):
        for alias, (forced, _start) in getattr(self, "_marks", {}).items():
            connections[alias].force_debug_cursor = forced

    def generate_stats(self, request, response):
        statements, total = [], 0.0
        for alias, (_forced, last) in getattr(self, "_marks", {}).items():
            log = list(connections[alias].queries_log)
            start = next((len(log) - i for i, e in enumerate(reversed(log)) if e is last), 0)
            for entry in log[start:]:
                ms = entry.get("time_ms", float(entry.get("time") or 0) * 1000)
                total += ms
                commands = []
                for text in entry.get("mongodb") or ():
                    name = next(iter(json_util.loads(text)), "")
                    commands.append({"text": text, "name": name, "explainable": name in READ_COMMANDS})
                statements.append({"alias": alias, "sql": entry["sql"], "time_ms": ms, "commands": commands})
        self.record_stats({"statements": statements, "time_ms": total})

    @property
    def content(self):
        statements = []
        for s in self.get_stats().get("statements", ()):
            commands = [dict(c, form=SignedDataForm(initial={"alias": s["alias"], "command": c["text"]})
                             if c["explainable"] else None) for c in s["commands"]]
            statements.append(dict(s, commands=commands))
        return render_to_string(self.template, {"statements": statements,
                                                "time_ms": self.get_stats().get("time_ms", 0.0)})

    @classmethod
    def get_urls(cls):
        return [path("djongo_explain/", explain, name="djongo_explain")]


@csrf_exempt
@login_not_required
@require_show_toolbar
@render_with_toolbar_language
def explain(request):
    """The explain of one recorded read command (a signed form), as the
    toolbar's remote calls want it: {"content": html}."""
    form = SignedDataForm(request.POST if request.method == "POST" else request.GET)
    data = form.verified_data()
    if not data:
        return HttpResponseBadRequest("Invalid signature")
    alias, text = data.get("alias"), data.get("command")
    if alias not in _djongo_aliases():
        return HttpResponseBadRequest("Not a djongo database: %s" % alias)
    command = json_util.loads(text)
    name = next(iter(command), "")
    if name not in READ_COMMANDS:
        return HttpResponseBadRequest("Not a read command: %s" % name)
    for key in ("$db", "lsid", "txnNumber", "autocommit", "startTransaction", "$clusterTime"):
        command.pop(key, None)
    try:
        plan = connections[alias].command({"explain": command, "verbosity": "queryPlanner"})
    except DatabaseError as e:
        plan = {"error": str(e)}
    content = render_to_string("djongo/debug_toolbar/mongo_explain.html", {
        "alias": alias, "command": text, "stages": winning_stages(plan),
        "plan": json.dumps(json.loads(json_util.dumps(plan)), indent=2)})
    return JsonResponse({"content": content})
