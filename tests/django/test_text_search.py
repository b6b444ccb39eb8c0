"""djongo.models.TextIndex, the __search lookup and TextScore() through
Django: makemigrations writes the index (weights, default_language),
migrate creates MongoDB's text index, querysets search it and order by the
score, and a migration that removes it drops it.

https://www.mongodb.com/docs/manual/core/indexes/index-types/index-text/
https://www.mongodb.com/docs/manual/reference/operator/query/text/
https://www.mongodb.com/docs/manual/reference/operator/aggregation/meta/
"""
import pytest

import textwrap

from appdir import MANAGE, first_migration, make_project, run

MODELS_WITH = '''
from djongo import models

class Article(models.Model):
    subject = models.CharField(max_length=100)
    body = models.TextField(blank=True)
    views = models.IntegerField(default=0)
    author = models.CharField(max_length=20, blank=True)
    class Meta:
        indexes = [models.TextIndex(fields=["subject", "body"], weights={"subject": 3},
                                    default_language="english", name="article_text")]
'''
MODELS_WITHOUT = MODELS_WITH.split("    class Meta:")[0]  # the same model, without its TextIndex


# the manual's $text examples, as rows
CHECK = '''
import django
django.setup()
from django.db import NotSupportedError, connection
from djongo.models import TextQuery, TextScore
from textapp.models import Article

with connection.cursor() as c:
    found = connection.introspection.get_constraints(c, "textapp_article")["article_text"]
print("INTROSPECTED", found["columns"], found["type"], found["index"])
ix = {i["name"]: i for i in connection.command({"listIndexes": "textapp_article", "cursor": {}})["cursor"]["firstBatch"]}
t = ix["article_text"]
print("INDEX", t["key"], t["weights"], t["default_language"])
for n, (s, v) in enumerate([("coffee", 50), ("Coffee Shopping", 5), ("Baking a cake", 90), ("baking", 100),
                            ("Café Con Leche", 200), ("Сырники", 80), ("coffee and cream", 10), ("Cafe con Leche", 10)]):
    Article.objects.create(subject=s, views=v)
def subjects(qs):
    return sorted(qs.values_list("subject", flat=True))
print("ONE", subjects(Article.objects.filter(subject__search="coffee")))
print("ANY", subjects(Article.objects.filter(body__search="bake coffee cake")))
print("PHRASE", subjects(Article.objects.filter(subject__search='"coffee shop"')))
print("NOT", subjects(Article.objects.filter(subject__search="coffee -shop")))
print("LANG", subjects(Article.objects.filter(subject__search=TextQuery("leche", language="spanish"))))
print("AND", subjects(Article.objects.filter(subject__search="coffee", views__gt=6)))
print("COUNT", Article.objects.filter(subject__search="coffee cake").count())
ranked = (Article.objects.filter(subject__search="cake coffee").annotate(score=TextScore())
          .order_by("-score", "subject").values_list("subject", "score"))
print("RANKED", [(s, round(x, 4)) for s, x in ranked])
top = Article.objects.filter(subject__search="coffee").annotate(score=TextScore()).order_by("-score").first()
print("TOP", top.subject, top.score)
try:
    list(Article.objects.exclude(subject__search="coffee"))
    print("EXCLUDE allowed")
except NotSupportedError as e:
    print("EXCLUDE", type(e).__name__)
try:
    list(Article.objects.filter(author__search="coffee"))
    print("NOFIELD allowed")
except Exception as e:
    print("NOFIELD", type(e).__name__)
'''



INDEX_NAMES = '''
import django
django.setup()
from django.db import connection
reply = connection.command({"listIndexes": "textapp_article", "cursor": {}})
print(" ".join(sorted(ix["name"] for ix in reply["cursor"]["firstBatch"])))
'''


def test_text_index_lookup_and_score_through_django(tmp_path):
    app = tmp_path / "textapp"
    env = make_project(tmp_path, "textapp", MODELS_WITH, "texts")

    first, sql = first_migration(tmp_path, env, "textapp")
    assert "djongo.models.TextIndex(" in first and "weights={'subject': 3}" in first
    assert "default_language='english'" in first
    assert '("subject" TEXT WEIGHT 3, "body" TEXT) WITH (default_language = \'english\')' in sql
    run(tmp_path, env, *MANAGE, "migrate", "textapp")

    out = dict(line.split(" ", 1) for line in run(tmp_path, env, "-c", CHECK).splitlines())
    assert out["INTROSPECTED"] == "['body', 'subject'] text True"  # the fields, not _fts/_ftsx
    assert out["INDEX"] == "{'_fts': 'text', '_ftsx': 1} {'body': 1, 'subject': 3} english"
    assert out["ONE"] == "['Coffee Shopping', 'coffee', 'coffee and cream']"
    # the index's fields are searched together, whichever the lookup names
    assert out["ANY"] == "['Baking a cake', 'Coffee Shopping', 'baking', 'coffee', 'coffee and cream']"
    assert out["PHRASE"] == "['Coffee Shopping']"
    assert out["NOT"] == "['coffee', 'coffee and cream']"
    assert out["LANG"] == "['Cafe con Leche', 'Café Con Leche']"
    assert out["AND"] == "['coffee', 'coffee and cream']"
    assert out["COUNT"] == "4"
    # weight 3 on subject: "coffee" alone 3 * 1, one of two terms 3 * 0.75
    assert out["RANKED"] == ("[('coffee', 3.0), ('Baking a cake', 2.25), ('Coffee Shopping', 2.25), "
                             "('coffee and cream', 2.25)]")
    assert out["TOP"] == "coffee 3.0"
    assert out["EXCLUDE"] == "NotSupportedError"  # MongoDB has no negated $text
    assert out["NOFIELD"] == "NotSupportedError"  # author is in no TextIndex

    (app / "models.py").write_text(textwrap.dedent(MODELS_WITHOUT))
    run(tmp_path, env, *MANAGE, "makemigrations", "textapp")
    second = next((app / "migrations").glob("0002_*.py")).read_text()
    assert second.count("migrations.RemoveIndex(") == 1
    run(tmp_path, env, *MANAGE, "migrate", "textapp")
    names = run(tmp_path, env, "-c", INDEX_NAMES).split()
    assert "_id_" in names and "article_text" not in names, names


def test_text_index_arguments():
    from djongo.models import TextIndex, TextQuery

    with pytest.raises(ValueError):
        TextIndex(fields=["-a"], name="x")
    with pytest.raises(ValueError):
        TextIndex(fields=["a"], weights={"b": 2}, name="x")
    with pytest.raises(ValueError):
        TextIndex(fields=["a"], weights={"a": 0}, name="x")
    with pytest.raises(ValueError):
        TextIndex(fields=["a"], default_language="klingon", name="x")
    with pytest.raises(ValueError):
        TextQuery("x", language="klingon")
    ix = TextIndex(fields=["a", "b"], weights={"a": 2}, default_language="fr", language_override="lang", name="x")
    assert ix.deconstruct() == ("djongo.models.TextIndex", (), {"fields": ["a", "b"], "name": "x", "weights": {"a": 2},
                                                                 "default_language": "fr", "language_override": "lang"})
