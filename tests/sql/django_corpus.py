"""SQL that Django 5.2 really emits, captured from the ORM.

``capture()`` builds a small publishing schema in an in-memory SQLite
database, runs a few hundred ORM operations on it (lookups, joins, m2m,
aggregation, annotation, subqueries, updates, deletes, bulk operations) and
returns every statement Django sent to the cursor, with its parameters, in
order. Django's SQLite SQL is close to our dialect (double-quoted names,
%s parameters, LIKE ... ESCAPE '\\'); where it calls SQLite-only functions
(django_date_extract, ...) the compiler must refuse, never guess.

Used by test_django_corpus.py (replay on the engine, rows compared with
SQLite) and scripts/capture_django_sql.py (the golden file of the corpus).

Explicit primary keys everywhere: integer key generation belongs to the
DB-API driver (issue 6), not to the compiler under test here.
"""
import datetime
import os
import sys

import django
from django.conf import settings

def setup():
    if settings.configured:
        return
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    settings.configure(
        DEBUG=False,
        USE_TZ=False,
        INSTALLED_APPS=["corpus_app"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()


class Recorder:
    """Django's execute_wrapper: sees (sql, params) before the backend
    rewrites %s to ?."""

    def __init__(self):
        self.statements = []
        self.enabled = True

    def __call__(self, execute, sql, params, many, context):
        if self.enabled:
            if many:
                for p in params:
                    self.statements.append((sql, list(p)))
            else:
                self.statements.append((sql, list(params or ())))
        return execute(sql, params, many, context)


def capture():
    """Returns [(sql, params)] in execution order."""
    setup()
    from django.db import connection, models
    from django.db.models import (Avg, Case, Count, Exists, F, Max, Min, OuterRef, Q, Subquery, Sum, Value, When)
    from django.db.models.functions import Coalesce, Length, Lower, Upper

    from corpus_app.models import Author, Blog, Comment, Entry, Tag

    rec = Recorder()
    with connection.execute_wrapper(rec):
        with connection.schema_editor() as se:
            for m in (Author, Blog, Tag, Entry, Comment):
                se.create_model(m)
        ops = []

        def run(fn):
            ops.append(fn)

        # -- data (explicit keys) ------------------------------------------------
        a = [Author.objects.create(id=i, name=n, email=e, age=g) for i, n, e, g in [
            (1, "Ann", "ann@x.org", 34), (2, "Bob", None, 51), (3, "Cid", "cid@x.org", None),
            (4, "Dee", None, 28), (5, "Eve", "eve@y.org", 40)]]
        b = [Blog.objects.create(id=i, name=n, tagline=t, owner=o) for i, n, t, o in [
            (1, "Beatles Blog", "All the latest Beatles news.", a[0]), (2, "Cooking", "Food!", a[1]),
            (3, "Darts", "", None), (4, "Empty", "nothing here", a[0])]]
        t = [Tag.objects.create(id=i, name=n) for i, n in [(1, "music"), (2, "food"), (3, "news"), (4, "misc")]]
        d = datetime.date
        e = [Entry.objects.create(id=i, blog=bl, headline=h, body=bo, pub_date=pd, rating=r, score=s, published=p)
             for i, bl, h, bo, pd, r, s, p in [
                 (1, b[0], "Hello world", "first post", d(2024, 1, 5), 5, 4.5, True),
                 (2, b[0], "Let it be", None, d(2024, 2, 1), 3, None, True),
                 (3, b[1], "Pasta 100% good", "carbs", d(2023, 12, 24), None, 3.25, False),
                 (4, b[1], "Soup_of_the_day", "hot", None, 4, 2.0, True),
                 (5, b[2], "Bullseye", "", d(2024, 3, 3), 1, None, False),
                 (6, b[0], "hello again", "second", d(2024, 3, 9), 5, 5.0, True),
                 (7, b[2], "Darts night", None, None, None, None, False)]]
        e[0].authors.set([a[0], a[1]])
        e[1].authors.set([a[1]])
        e[2].authors.set([a[2], a[3]])
        e[3].authors.set([a[3]])
        e[5].authors.set([a[0]])
        e[0].tags.set([t[0], t[2]])
        e[1].tags.set([t[0]])
        e[2].tags.set([t[1]])
        e[5].tags.set([t[0], t[3]])
        for i, (en, au, tx, lk) in enumerate([(e[0], a[1], "Great", 3), (e[0], None, "anon", 0), (e[2], a[0], "yum", 5),
                                             (e[5], a[2], "again?", 1), (e[5], a[0], "yes", 2)], start=1):
            Comment.objects.create(id=i, entry=en, author=au, text=tx, likes=lk)
        Entry.objects.bulk_create([Entry(id=10 + i, blog=b[3], headline="bulk %d" % i, rating=i % 3, score=i / 2)
                                   for i in range(5)])

        # -- reads ---------------------------------------------------------------
        E = Entry.objects
        run(lambda: list(E.all()))
        run(lambda: list(E.filter(rating=5)))
        run(lambda: list(E.filter(rating__isnull=True)))
        run(lambda: list(E.exclude(rating=5)))
        run(lambda: list(E.exclude(rating__isnull=True)))
        run(lambda: list(E.filter(rating__gt=2, rating__lte=5)))
        run(lambda: list(E.filter(rating__in=[1, 3, 5])))
        run(lambda: list(E.exclude(rating__in=[1, 3])))
        run(lambda: list(E.filter(rating__range=(2, 4))))
        run(lambda: list(E.filter(headline__contains="ell")))
        run(lambda: list(E.filter(headline__icontains="hello")))
        run(lambda: list(E.filter(headline__startswith="Hel")))
        run(lambda: list(E.filter(headline__istartswith="hel")))
        run(lambda: list(E.filter(headline__endswith="day")))
        run(lambda: list(E.filter(headline__contains="100%")))
        run(lambda: list(E.filter(headline__contains="_of_")))
        run(lambda: list(E.filter(headline__exact="Let it be")))
        run(lambda: list(E.filter(headline__iexact="LET IT BE")))
        run(lambda: list(E.filter(Q(rating=5) | Q(score__lt=3))))
        run(lambda: list(E.filter(~Q(rating=5) & Q(published=True))))
        run(lambda: list(E.filter(~(Q(rating__gt=3) | Q(score__isnull=True)))))
        run(lambda: list(E.filter(published=True)))
        run(lambda: list(E.filter(published=False)))
        run(lambda: list(E.filter(pub_date__gte=d(2024, 2, 1))))
        run(lambda: list(E.filter(pub_date__isnull=True)))
        run(lambda: list(E.filter(pub_date__range=(d(2024, 1, 1), d(2024, 2, 28)))))
        run(lambda: list(E.filter(rating__gt=F("score"))))
        run(lambda: list(E.filter(score__gte=F("rating") * 2 - 5)))
        run(lambda: list(E.order_by("-rating", "id")))
        run(lambda: list(E.order_by("score", "-id")))
        run(lambda: list(E.order_by(F("rating").asc(nulls_last=True), "id")))
        run(lambda: list(E.order_by(F("rating").desc(nulls_first=True), "id")))
        run(lambda: list(E.all()[2:5]))
        run(lambda: list(E.all()[:3]))
        run(lambda: E.first())
        run(lambda: E.last())
        run(lambda: E.filter(rating=5).exists())
        run(lambda: E.filter(rating=99).exists())
        run(lambda: E.count())
        run(lambda: E.filter(score__isnull=False).count())
        run(lambda: E.get(id=3))
        run(lambda: list(E.values("id", "headline")))
        run(lambda: list(E.values_list("headline", flat=True)))
        run(lambda: list(E.values_list("rating", flat=True).distinct()))
        run(lambda: list(E.values("rating").distinct().order_by("rating")))
        run(lambda: list(E.only("headline")))
        run(lambda: list(E.defer("body")))
        run(lambda: list(E.filter(id__in=[1, 2, 99]).in_bulk()))
        # joins
        run(lambda: list(E.filter(blog__name="Beatles Blog")))
        run(lambda: list(E.filter(blog__name__startswith="C").order_by("blog__name", "id")))
        run(lambda: list(E.filter(blog__owner__name="Ann")))
        run(lambda: list(E.filter(blog__owner__isnull=True)))
        run(lambda: list(E.select_related("blog")))
        run(lambda: list(E.select_related("blog__owner")))
        run(lambda: list(E.filter(blog__tagline="").select_related("blog")))
        run(lambda: list(Blog.objects.filter(entries__rating=5)))
        run(lambda: list(Blog.objects.filter(entries__rating=5).distinct()))
        run(lambda: list(Blog.objects.filter(owner__email__isnull=True)))
        run(lambda: list(Blog.objects.exclude(owner__age__gt=40)))
        run(lambda: list(Blog.objects.order_by("owner__name", "id")))
        # many-to-many
        run(lambda: list(E.filter(authors__name="Bob")))
        run(lambda: list(E.filter(authors__name="Bob").distinct()))
        run(lambda: list(E.exclude(authors__name="Bob")))
        run(lambda: list(E.filter(tags__name__in=["music", "food"]).distinct()))
        run(lambda: list(e[0].authors.all()))
        run(lambda: list(a[0].entries.all()))
        run(lambda: list(Tag.objects.filter(entries__blog__name="Beatles Blog").distinct()))
        run(lambda: list(E.prefetch_related("authors")))
        run(lambda: list(Blog.objects.prefetch_related("entries")))
        run(lambda: list(Author.objects.prefetch_related("entries__tags")))
        # aggregation and annotation
        run(lambda: E.aggregate(Avg("rating"), Max("score"), Min("pub_date"), Sum("rating"), Count("id")))
        run(lambda: E.filter(rating__gt=100).aggregate(Sum("rating"), Count("id"), Avg("score")))
        run(lambda: E.aggregate(n=Count("rating"), d=Count("rating", distinct=True)))
        run(lambda: list(Blog.objects.annotate(n=Count("entries")).order_by("id")))
        run(lambda: list(Blog.objects.annotate(n=Count("entries")).filter(n__gt=1)))
        run(lambda: list(Blog.objects.annotate(avg=Avg("entries__rating")).order_by("-avg", "id")))
        run(lambda: list(Author.objects.annotate(n=Count("entries", distinct=True), b=Count("blogs", distinct=True))))
        run(lambda: list(E.values("blog").annotate(total=Sum("rating")).order_by("blog")))
        run(lambda: list(E.values("published").annotate(c=Count("id"), m=Max("rating")).order_by("published")))
        run(lambda: list(Blog.objects.annotate(r=Sum("entries__rating", filter=Q(entries__published=True)))))
        run(lambda: list(E.annotate(double=F("rating") * 2).filter(double__gt=5)))
        run(lambda: list(E.annotate(hl=Upper("headline")).order_by("hl")))
        run(lambda: list(E.annotate(hl=Lower("headline"), n=Length("headline")).filter(n__gt=10)))
        run(lambda: list(E.annotate(r=Coalesce("rating", Value(0))).order_by("r", "id")))
        run(lambda: list(E.annotate(kind=Case(When(rating__gte=4, then=Value("good")), When(rating__isnull=True,
                                                                                        then=Value("?")),
                                              default=Value("meh"), output_field=models.CharField()))))
        run(lambda: list(E.filter(rating=Subquery(E.filter(blog=OuterRef("blog")).order_by("-rating")
                                                  .values("rating")[:1]))))
        run(lambda: list(Blog.objects.annotate(has_good=Exists(E.filter(blog=OuterRef("pk"), rating__gte=5)))))
        run(lambda: list(Blog.objects.filter(Exists(E.filter(blog=OuterRef("pk"), published=False)))))
        run(lambda: list(Blog.objects.filter(~Exists(E.filter(blog=OuterRef("pk"))))))
        run(lambda: list(Blog.objects.annotate(latest=Subquery(E.filter(blog=OuterRef("pk")).order_by("-id")
                                                               .values("headline")[:1]))))
        run(lambda: list(E.filter(blog__in=Blog.objects.filter(name__contains="o"))))
        run(lambda: list(E.filter(blog__in=Blog.objects.filter(owner__age__gte=40).values("id"))))
        run(lambda: list(E.exclude(blog__in=Blog.objects.filter(tagline=""))))
        run(lambda: list(Comment.objects.filter(entry__blog__owner=F("author"))))
        run(lambda: list(Comment.objects.select_related("entry__blog", "author").order_by("-likes")))
        run(lambda: Comment.objects.aggregate(Sum("likes"), Avg("likes")))
        run(lambda: list(Author.objects.filter(comment__likes__gte=2).distinct()))
        run(lambda: list(Author.objects.filter(email__isnull=False).order_by("-email")))
        run(lambda: list(Author.objects.filter(age__lt=F("id") * 20)))
        run(lambda: list(Author.objects.values_list("name", "age").order_by("age", "name")))
        run(lambda: list(E.dates("pub_date", "year")))
        run(lambda: list(E.filter(pub_date__year=2024)))
        run(lambda: list(E.filter(pub_date__month=3)))
        run(lambda: list(E.filter(headline__regex=r"^[HL]")))
        run(lambda: list(Blog.objects.union(Blog.objects.filter(id=1))))
        run(lambda: list(E.order_by("blog__name", "-pub_date", "id").values("headline", "blog__name")))
        # more lookups
        for r in (0, 1, 3, 5):
            run(lambda r=r: list(E.filter(rating__gte=r).order_by("-id")[:2]))
            run(lambda r=r: list(E.filter(rating__lt=r) | E.filter(score__gt=r)))
            run(lambda r=r: E.filter(blog__entries__rating=r).distinct().count())
        for word in ("hello", "O", "%", "_", "night", "\\"):
            run(lambda w=word: list(E.filter(headline__icontains=w).values_list("id", flat=True)))
            run(lambda w=word: list(E.exclude(headline__contains=w).values_list("id", flat=True)))
            run(lambda w=word: list(Author.objects.filter(name__istartswith=w)))
        run(lambda: list(E.filter(headline__iendswith="WORLD")))
        run(lambda: list(E.filter(body__isnull=True, rating__isnull=False)))
        run(lambda: list(E.filter(Q(body="") | Q(body__isnull=True))))
        run(lambda: list(E.filter(id__in=E.filter(rating__gte=4).values("id"))))
        run(lambda: list(E.filter(id__in=[]).values("id")))
        run(lambda: list(E.filter(pub_date__lt=d(2024, 1, 1)) | E.filter(pub_date__isnull=True)))
        run(lambda: list(E.filter(pub_date__gt=F("blog__owner__age"))))
        run(lambda: list(E.filter(rating=F("blog__owner__age") / 10)))
        run(lambda: list(E.filter(score__lt=F("rating") + 0.5)))
        run(lambda: list(E.filter(rating__in=[1, 2, 3], published=True).exclude(score__isnull=True)))
        run(lambda: list(E.exclude(Q(rating__gt=2) & Q(published=True))))
        run(lambda: list(E.filter(Q(blog__name__startswith="B") | Q(authors__name="Dee")).distinct()))
        run(lambda: E.filter(authors__isnull=True).count())
        run(lambda: E.exclude(tags__isnull=True).distinct().count())
        run(lambda: list(E.reverse()[:3]))
        run(lambda: E.latest("pub_date"))
        run(lambda: E.earliest("pub_date"))
        run(lambda: list(E.filter(blog=b[0]).values_list("headline", "rating")))
        run(lambda: list(E.filter(blog_id__in=[1, 2]).order_by("blog_id", "-rating")))
        run(lambda: list(Blog.objects.filter(entries__authors__name="Ann").distinct().order_by("name")))
        run(lambda: list(Blog.objects.filter(entries__isnull=True)))
        run(lambda: list(Blog.objects.exclude(entries__published=False)))
        run(lambda: list(Blog.objects.filter(owner__blogs__name="Empty").distinct()))
        run(lambda: list(Author.objects.filter(blogs__isnull=False).distinct()))
        run(lambda: list(Author.objects.exclude(entries__isnull=True).order_by("-age")))
        run(lambda: list(Comment.objects.filter(author__isnull=True)))
        run(lambda: list(Comment.objects.filter(entry__authors=F("author"))))
        run(lambda: list(Comment.objects.filter(likes__gt=F("entry__rating"))))
        run(lambda: list(Comment.objects.values("entry__blog__name").annotate(n=Count("id"), s=Sum("likes"))))
        run(lambda: list(Tag.objects.annotate(n=Count("entries")).filter(n=0)))
        run(lambda: list(Tag.objects.annotate(n=Count("entries")).order_by("-n", "name")))
        run(lambda: list(Author.objects.annotate(c=Count("comment"), m=Max("comment__likes")).order_by("id")))
        run(lambda: list(Author.objects.annotate(total=Sum("entries__rating")).filter(total__gte=5)))
        run(lambda: list(Author.objects.annotate(older=Case(When(age__gte=40, then=Value(True)), default=Value(False),
                                                            output_field=models.BooleanField())).filter(older=True)))
        run(lambda: list(E.annotate(score2=Coalesce("score", F("rating") * 1.0)).order_by("-score2", "id")))
        run(lambda: list(E.annotate(bn=F("blog__name")).values("bn").distinct().order_by("bn")))
        run(lambda: list(E.values("blog__owner__name").annotate(n=Count("id")).order_by("blog__owner__name")))
        run(lambda: list(E.values("rating").annotate(n=Count("id")).filter(n__gt=1).order_by("rating")))
        run(lambda: E.aggregate(r=Sum(F("rating") * 2), m=Max(F("score") + 1)))
        run(lambda: Blog.objects.aggregate(n=Count("entries__authors", distinct=True)))
        run(lambda: list(Blog.objects.annotate(n_pub=Count("entries", filter=Q(entries__published=True)),
                                               n_all=Count("entries")).order_by("id")))
        run(lambda: list(Blog.objects.annotate(best=Max("entries__rating")).filter(best__isnull=True)))
        run(lambda: list(E.filter(rating=Subquery(Comment.objects.filter(entry=OuterRef("pk")).values("likes")[:1]))))
        run(lambda: list(Author.objects.annotate(last_like=Subquery(Comment.objects.filter(author=OuterRef("pk"))
                                                                      .order_by("-id").values("likes")[:1]))))
        run(lambda: list(Author.objects.filter(Exists(Comment.objects.filter(author=OuterRef("pk"), likes__gte=2)))))
        run(lambda: list(E.filter(blog__in=Blog.objects.filter(owner__isnull=False)).exclude(rating__in=[1, 2])))
        run(lambda: list(E.select_related("blog").filter(blog__owner__age__lt=50).order_by("-blog__owner__age", "id")))
        run(lambda: list(Comment.objects.select_related("author", "entry").filter(entry__published=True)))
        run(lambda: list(E.prefetch_related("comments", "tags")))
        run(lambda: list(Tag.objects.prefetch_related("entries__blog")))
        run(lambda: list(E.order_by().union(E.filter(rating=1).order_by(), all=True).order_by("id")))
        run(lambda: list(E.order_by().filter(rating=5).intersection(E.order_by().filter(published=True))))
        run(lambda: list(E.order_by().filter(published=True).difference(E.order_by().filter(rating=5))))
        run(lambda: list(E.values_list("id", flat=True).order_by("-id")[1:4]))
        run(lambda: list(E.all()[5:]))
        for op in ops:
            op()
        # -- writes --------------------------------------------------------------
        E.filter(rating__isnull=True).update(rating=0)
        E.filter(blog__name="Darts").update(score=F("rating") + 1)
        E.filter(id=1).update(headline="Hello, world", body=None)
        Blog.objects.filter(owner__isnull=True).update(tagline="ownerless")
        a[0].refresh_from_db()
        e[0].headline = "Hello world!"
        e[0].save()
        e[3].tags.add(t[3])
        e[0].authors.remove(a[1])
        Author.objects.get_or_create(id=6, defaults={"name": "Fay"})
        Author.objects.get_or_create(id=6, defaults={"name": "Fay"})
        Author.objects.update_or_create(id=6, defaults={"age": 22})
        Comment.objects.filter(likes=0).delete()
        E.filter(id__gte=13).delete()
        Tag.objects.filter(entries__isnull=True).delete()
        Comment.objects.filter(entry__blog__name="Cooking").update(likes=F("likes") + 10)
        E.filter(authors__name="Dee").update(published=True)
        Author.objects.bulk_create([Author(id=20 + i, name="bulk%d" % i, age=20 + i) for i in range(3)])
        Author.objects.filter(id__gte=20).update(email=None)
        Blog.objects.filter(id=4).delete()
        for op in ops:
            op()
    return rec.statements


if __name__ == "__main__":
    for sql, params in capture():
        print(sql, params, file=sys.stdout)
