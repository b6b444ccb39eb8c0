"""Relations whose JOIN ... ON has several conditions, and correlated
subqueries (tests/django/relations_tests.py)."""
from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=50)
    threshold = models.IntegerField(null=True)


class Book(models.Model):
    author = models.ForeignKey(Author, models.CASCADE, related_name="books")
    title = models.CharField(max_length=50)
    rating = models.IntegerField(null=True)
    published = models.BooleanField(default=False)


class Chapter(models.Model):
    book = models.ForeignKey(Book, models.CASCADE, related_name="chapters")
    pages = models.IntegerField()


class Tag(models.Model):
    label = models.CharField(max_length=20)
    content_type = models.ForeignKey(ContentType, models.CASCADE)
    object_id = models.PositiveIntegerField()
    content_object = GenericForeignKey("content_type", "object_id")


class Bookmark(models.Model):
    url = models.CharField(max_length=50)
    tags = GenericRelation(Tag)


class Member(models.Model):
    """A composite primary key (Django 5.2's CompositePrimaryKey)."""
    pk = models.CompositePrimaryKey("tenant", "number")
    tenant = models.IntegerField()
    number = models.IntegerField()
    name = models.CharField(max_length=20)


class Post(models.Model):
    """Joined to Member by two columns (a ForeignObject)."""
    tenant = models.IntegerField()
    member_number = models.IntegerField(null=True)
    title = models.CharField(max_length=20)
    member = models.ForeignObject(Member, models.DO_NOTHING, from_fields=("tenant", "member_number"),
                                  to_fields=("tenant", "number"), null=True, related_name="posts")
