"""Drives the example site's admin with Django's test client (run by
test_example_site.py in a subprocess, on a fresh data directory): log in,
list, search, filter, add, edit and delete, then check the documents in the
engine directly (through the driver's MongoDB command, not the ORM)."""
import os
import sys

import django

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "example"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "publishing.settings")
django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from blog.models import Author, Blog, Entry, Tag  # noqa: E402

setup_test_environment()
c = Client()
assert c.login(username="admin", password="admin"), "login"
pages = ["/", "/admin/", "/admin/blog/entry/", "/admin/blog/entry/?q=bread", "/admin/blog/entry/?blog__id__exact=1",
         "/admin/blog/entry/?pub_date__year=2026", "/admin/blog/entry/?o=2.1", "/admin/blog/entry/?tags__id__exact=1",
         "/admin/blog/entry/add/", "/admin/blog/blog/", "/admin/auth/user/", "/admin/auth/user/1/change/"]
for url in pages:
    r = c.get(url)
    assert r.status_code == 200, (url, r.status_code)
r = c.get("/admin/blog/entry/?q=omelette")
assert b"The perfect omelette" in r.content and b"Bread in five steps" not in r.content, "search"

# add
blog = Blog.objects.get(name="Cooking")
tags = list(Tag.objects.filter(name__in=["food", "news"]).order_by("name"))
author = Author.objects.get(name="Ann")
r = c.post("/admin/blog/entry/add/", {
    "blog": blog.pk, "headline": "Soup for winter", "body_text": "Carrots.", "pub_date_0": "2026-01-02",
    "pub_date_1": "10:30:00", "rating": "4", "tags": [t.pk for t in tags], "authors": [author.pk], "website": ""})
assert r.status_code == 302, r.content[:2000]
e = Entry.objects.get(headline="Soup for winter")
# edit, with a validation error first (bad URL): nothing changes
r = c.post("/admin/blog/entry/%d/change/" % e.pk, {
    "blog": blog.pk, "headline": "Soup for winter!", "body_text": "Carrots.", "pub_date_0": "2026-01-02",
    "pub_date_1": "10:30:00", "rating": "5", "tags": [tags[0].pk], "authors": [], "website": "not a url"})
assert r.status_code == 200 and b"Enter a valid URL" in r.content, "validation error shown"
assert Entry.objects.get(pk=e.pk).headline == "Soup for winter"
r = c.post("/admin/blog/entry/%d/change/" % e.pk, {
    "blog": blog.pk, "headline": "Soup for winter!", "body_text": "Carrots.", "pub_date_0": "2026-01-02",
    "pub_date_1": "10:30:00", "rating": "5", "tags": [tags[0].pk], "authors": [], "website": "https://example.com"})
assert r.status_code == 302, r.content[:2000]

# the documents, read from MongoDB itself
doc = connection.command({"find": "blog_entry", "filter": {"id": e.pk}})["cursor"]["firstBatch"][0]
assert doc["headline"] == "Soup for winter!" and doc["rating"] == 5 and doc["blog_id"] == blog.pk, doc
assert doc["pub_date"].isoformat() == "2026-01-02T10:30:00", doc["pub_date"]
links = connection.command({"find": "blog_entry_tags", "filter": {"entry_id": e.pk}})["cursor"]["firstBatch"]
assert [d["tag_id"] for d in links] == [tags[0].pk], links
assert connection.command({"count": "blog_entry_authors", "query": {"entry_id": e.pk}})["n"] == 0

# delete (the admin's confirmation page, then the POST); the m2m rows go too
assert c.get("/admin/blog/entry/%d/delete/" % e.pk).status_code == 200
r = c.post("/admin/blog/entry/%d/delete/" % e.pk, {"post": "yes"})
assert r.status_code == 302
assert connection.command({"count": "blog_entry", "query": {"id": e.pk}})["n"] == 0
assert connection.command({"count": "blog_entry_tags", "query": {"entry_id": e.pk}})["n"] == 0
print("admin flow: ok")
