"""Models of the Django SQL corpus (django_corpus.py): a small publishing site."""
from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=50)
    email = models.CharField(max_length=80, null=True, unique=True)
    age = models.IntegerField(null=True)


class Blog(models.Model):
    name = models.CharField(max_length=50, unique=True)
    tagline = models.TextField(default="")
    owner = models.ForeignKey(Author, models.SET_NULL, null=True, related_name="blogs")


class Tag(models.Model):
    name = models.CharField(max_length=30)


class Entry(models.Model):
    blog = models.ForeignKey(Blog, models.CASCADE, related_name="entries")
    headline = models.CharField(max_length=100)
    body = models.TextField(null=True)
    pub_date = models.DateField(null=True)
    rating = models.IntegerField(null=True)
    score = models.FloatField(null=True)
    published = models.BooleanField(default=False)
    authors = models.ManyToManyField(Author, related_name="entries")
    tags = models.ManyToManyField(Tag, related_name="entries")

    class Meta:
        ordering = ["id"]


class Comment(models.Model):
    entry = models.ForeignKey(Entry, models.CASCADE, related_name="comments")
    author = models.ForeignKey(Author, models.SET_NULL, null=True)
    text = models.CharField(max_length=200)
    likes = models.IntegerField(default=0)
