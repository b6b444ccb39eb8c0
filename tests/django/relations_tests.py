"""JOINs whose ON has several conditions and the subquery shapes Django
emits, on djongo and on SQLite side by side: every queryset runs on both
databases (``.using("lite")``) and must return the same rows.

- FilteredRelation: LEFT OUTER JOIN ... ON (a.id = b.a_id AND (b.flag = %s)),
  whose extra condition picks the partners and keeps the rows without one;
- GenericRelation: JOIN ... ON (a.id = t.object_id AND t.content_type_id = %s);
- ForeignObject over two columns (a composite key) and CompositePrimaryKey;
- Subquery / Exists with OuterRef(OuterRef(...)), subqueries in HAVING and
  beside aggregates, IN (... UNION ...).

https://docs.djangoproject.com/en/5.2/ref/models/querysets/#filteredrelation-objects
https://docs.djangoproject.com/en/5.2/ref/contrib/contenttypes/#generic-relations
https://docs.djangoproject.com/en/5.2/ref/models/expressions/#referencing-columns-from-the-outer-queryset
Run in a process of its own (test_models.py); models: relapp/models.py."""
import side_by_side

side_by_side.configure("relapp", "django.contrib.contenttypes")

import pytest  # noqa: E402
from django.contrib.contenttypes.models import ContentType  # noqa: E402
from django.db.models import Count, Exists, FilteredRelation, IntegerField, Max, OuterRef, Q, Subquery  # noqa: E402
from django.test import TestCase  # noqa: E402
from relapp.models import Author, Book, Bookmark, Chapter, Member, Post, Tag  # noqa: E402

DBS = side_by_side.DBS


@pytest.fixture(scope="module", autouse=True)
def test_databases():
    side_by_side.create_test_databases()


def seed(db):
    ann = Author.objects.using(db).create(name="Ann", threshold=10)
    bob = Author.objects.using(db).create(name="Bob", threshold=None)
    cy = Author.objects.using(db).create(name="Cy", threshold=1)
    b1 = Book.objects.using(db).create(author=ann, title="Poems", rating=5, published=True)
    b2 = Book.objects.using(db).create(author=ann, title="Drafts", rating=None, published=False)
    b3 = Book.objects.using(db).create(author=bob, title="Recipes", rating=3, published=False)
    Book.objects.using(db).create(author=cy, title="Maps", rating=4, published=True)
    for book, pages in ((b1, 12), (b1, 3), (b2, 30), (b3, 2)):
        Chapter.objects.using(db).create(book=book, pages=pages)
    ct = ContentType.objects.db_manager(db).get_for_model(Bookmark)
    other = ContentType.objects.db_manager(db).get_for_model(Author)
    m1 = Bookmark.objects.using(db).create(url="a")
    m2 = Bookmark.objects.using(db).create(url="b")
    Bookmark.objects.using(db).create(url="c")
    Tag.objects.using(db).create(label="red", content_type=ct, object_id=m1.pk)
    Tag.objects.using(db).create(label="blue", content_type=ct, object_id=m1.pk)
    Tag.objects.using(db).create(label="red", content_type=ct, object_id=m2.pk)
    # the same object id under another model: generic relations must not see it
    Tag.objects.using(db).create(label="green", content_type=other, object_id=m2.pk)
    Tag.objects.using(db).create(label="green", content_type=other, object_id=3)
    for tenant, number, name in ((1, 1, "t1-1"), (1, 2, "t1-2"), (2, 1, "t2-1")):
        Member.objects.using(db).create(tenant=tenant, number=number, name=name)
    for tenant, number, title in ((1, 1, "p1"), (2, 1, "p2"), (2, 2, "p3"), (1, None, "p4"), (1, 2, "p5")):
        Post.objects.using(db).create(tenant=tenant, member_number=number, title=title)


class Relations(TestCase):
    databases = set(DBS)

    @classmethod
    def setUpTestData(cls):
        for db in DBS:
            seed(db)

    def same(self, make, ordered=False):
        """make(db) -> a queryset; its rows on djongo are SQLite's."""
        got, want = (list(make(db)) for db in DBS)
        if not ordered:
            got, want = sorted(got, key=repr), sorted(want, key=repr)
        self.assertEqual(got, want)
        self.assertTrue(want, "the case returns rows")
        return got

    # -- FilteredRelation: LEFT OUTER JOIN with an extra ON condition

    def test_filtered_relation_keeps_rows_without_partner(self):
        rows = self.same(lambda db: Author.objects.using(db).annotate(
            pub=FilteredRelation("books", condition=Q(books__published=True))).values_list("name", "pub__title"))
        self.assertIn(("Bob", None), rows)

    def test_filtered_relation_isnull(self):
        self.same(lambda db: Author.objects.using(db).annotate(
            pub=FilteredRelation("books", condition=Q(books__published=True))).filter(pub__isnull=True)
            .values_list("name", flat=True))

    def test_filtered_relation_condition_on_outer_column(self):
        self.same(lambda db: Author.objects.using(db).annotate(
            good=FilteredRelation("books", condition=Q(books__rating__gte=4) | Q(books__title__startswith="D")))
            .values_list("name", "good__title"))

    def test_filtered_relation_count(self):
        self.same(lambda db: Author.objects.using(db).annotate(
            pub=FilteredRelation("books", condition=Q(books__published=False)))
            .annotate(n=Count("pub")).values_list("name", "n"))

    # -- generic relations: ON (id = object_id AND content_type_id = %s)

    def test_generic_relation_count_left_join(self):
        rows = self.same(lambda db: Bookmark.objects.using(db).annotate(n=Count("tags")).values_list("url", "n"))
        self.assertIn(("b", 1), rows)  # the green tag of another model is not counted

    def test_generic_relation_values(self):
        self.same(lambda db: Bookmark.objects.using(db).values_list("url", "tags__label"))

    # -- composite keys: ForeignObject over (tenant, number)

    def test_composite_join_left(self):
        rows = self.same(lambda db: Post.objects.using(db).values_list("title", "member__name"))
        self.assertIn(("p3", None), rows)

    def test_composite_reverse_count(self):
        self.same(lambda db: Member.objects.using(db).annotate(n=Count("posts")).values_list("name", "n"))

    def test_composite_pk_exact_subquery(self):
        # pk=queryset[:1] on a composite key: (tenant, number) = (SELECT ..., ... LIMIT 1)
        self.same(lambda db: Member.objects.using(db).filter(
            pk=Member.objects.using(db).filter(name="t1-2")[:1]).values_list("name", flat=True))
        self.same(lambda db: Member.objects.using(db).exclude(
            pk=Member.objects.using(db).filter(name="t1-2")[:1]).values_list("name", flat=True))

    # -- subqueries

    def test_outer_ref_two_levels(self):
        # authors with a book having a chapter longer than the author's threshold
        self.same(lambda db: Author.objects.using(db).filter(Exists(
            Book.objects.filter(author=OuterRef("pk")).filter(Exists(
                Chapter.objects.filter(book=OuterRef("pk"), pages__gt=OuterRef(OuterRef("threshold")))))))
            .values_list("name", flat=True))

    def test_outer_ref_two_levels_annotation(self):
        self.same(lambda db: Author.objects.using(db).annotate(longest=Subquery(
            Book.objects.filter(author=OuterRef("pk")).annotate(m=Subquery(
                Chapter.objects.filter(book=OuterRef("pk"), pages__lt=OuterRef(OuterRef("threshold")))
                .order_by("-pages").values("pages")[:1])).order_by("-m", "pk").values("m")[:1]))
            .values_list("name", "longest"))

    def test_subquery_in_having(self):
        rated = Book.objects.filter(rating__isnull=False).values("rating")
        self.same(lambda db: Author.objects.using(db).annotate(n=Count("books")).filter(
            n__gt=Subquery(rated.using(db).annotate(c=Count("*")).values("c")[:1], output_field=IntegerField()))
            .values_list("name", "n"))

    def test_subquery_annotation_with_aggregate(self):
        self.same(lambda db: Author.objects.using(db).annotate(
            n=Count("books"),
            top=Subquery(Book.objects.filter(author=OuterRef("pk")).order_by("-rating").values("title")[:1]))
            .values_list("name", "n", "top"))

    def test_in_union_subquery(self):
        self.same(lambda db: Book.objects.using(db).filter(author__in=Author.objects.using(db).filter(name="Ann").values("pk")
            .union(Author.objects.using(db).filter(threshold=1).values("pk"))).values_list("title", flat=True))

    def test_union_subquery_referring_to_outer_query(self):
        # the branches of a combined Subquery read OuterRef: the second runs as $unionWith
        same_author = Book.objects.order_by().filter(author=OuterRef("pk"), published=True)
        rated = Book.objects.order_by().filter(rating__lt=OuterRef("threshold"))
        self.same(lambda db: Author.objects.using(db).annotate(
            t=Subquery(same_author.using(db).union(rated.using(db)).order_by("title").values("title")[:1]))
            .values_list("name", "t"))


class PastTheSortMemoryLimit(TestCase):
    """Sorts bigger than the engine's blocking-sort limit (setParameter,
    here 200 bytes) spill to temporary files and return SQLite's rows:
    aggregate's allowDiskUse defaults to true (allowDiskUseByDefault,
    MongoDB 6.0+): a join's and an aggregate's pipeline sort through them.
    https://www.mongodb.com/docs/manual/reference/parameters/#mongodb-parameter-param.allowDiskUseByDefault"""
    databases = set(DBS)

    @classmethod
    def setUpTestData(cls):
        for db in DBS:
            authors = [Author.objects.using(db).create(name="a%03d" % i, threshold=i % 7) for i in range(60)]
            books = [Book.objects.using(db).create(author=authors[i % 60], title="t%03d" % i, rating=(i * 37) % 11,
                                                   published=i % 3 == 0) for i in range(150)]
            for i, b in enumerate(books):
                Chapter.objects.using(db).create(book=b, pages=(i * 53) % 17)

    def setUp(self):
        from django.db import connections
        self.djongo = connections["default"]
        self.was = self.djongo.command({"setParameter": 1, "internalQueryMaxBlockingSortMemoryUsageBytes": 200},
                                       db="admin")["was"]
        self.djongo.command({"setParameter": 1, "internalDocumentSourceGroupMaxMemoryBytes": 200}, db="admin")

    def tearDown(self):
        for p in ("internalQueryMaxBlockingSortMemoryUsageBytes", "internalDocumentSourceGroupMaxMemoryBytes"):
            self.djongo.command({"setParameter": 1, p: self.was}, db="admin")

    def same(self, make):
        got, want = (list(make(db)) for db in DBS)
        self.assertEqual(got, want)
        self.assertGreater(len(want), 50)

    def test_order_by_of_a_join(self):
        self.same(lambda db: Chapter.objects.using(db).order_by("pages", "-book__title")
                  .values_list("book__title", "book__author__name", "pages"))

    def test_order_by_of_an_aggregate(self):
        self.same(lambda db: Author.objects.using(db).annotate(n=Count("books"), r=Max("books__rating"))
                  .order_by("-n", "-r", "name").values_list("name", "n", "r"))
