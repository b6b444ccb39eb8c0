"""A small publishing site: blogs, authors, tags and entries."""
from django.db import models


class Blog(models.Model):
    name = models.CharField(max_length=100, unique=True)
    tagline = models.TextField(blank=True)

    def __str__(self):
        return self.name


class Author(models.Model):
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    city = models.CharField(max_length=100, blank=True)

    def __str__(self):
        return self.name


class Tag(models.Model):
    name = models.SlugField(max_length=50, unique=True)

    def __str__(self):
        return self.name


class Entry(models.Model):
    blog = models.ForeignKey(Blog, on_delete=models.CASCADE, related_name="entries")
    headline = models.CharField(max_length=255)
    body_text = models.TextField(blank=True)
    pub_date = models.DateTimeField()
    authors = models.ManyToManyField(Author, blank=True, related_name="entries")
    tags = models.ManyToManyField(Tag, blank=True, related_name="entries")
    rating = models.IntegerField(default=0)
    website = models.URLField(blank=True)

    class Meta:
        verbose_name_plural = "entries"
        ordering = ["-pub_date"]
        indexes = [models.Index(fields=["pub_date"])]

    def __str__(self):
        return self.headline
