"""A small publishing site: blogs, authors, tags and entries; an entry
carries its place (an embedded address) and its contributors (an array of
sub-documents) inside its own document."""
from django.core.exceptions import ValidationError

from djongo import models


def no_script(value):
    # the original djongo README's example validator
    if "<script>" in value.lower():
        raise ValidationError("Script injection in %(value)s", params={"value": value})


class Address(models.Model):
    """Where an entry was written: a sub-document of the entry."""

    street = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100)
    country = models.CharField(max_length=100, blank=True)
    homepage = models.URLField(blank=True, validators=[no_script])

    class Meta:
        abstract = True

    def __str__(self):
        return ", ".join(p for p in (self.street, self.city, self.country) if p)


class Contributor(models.Model):
    """Someone credited on an entry: an element of the entry's array."""

    name = models.CharField(max_length=200)
    role = models.CharField(max_length=50, blank=True)
    email = models.EmailField(blank=True)

    class Meta:
        abstract = True

    def __str__(self):
        return "%s (%s)" % (self.name, self.role) if self.role else self.name


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
    address = models.EmbeddedField(model_container=Address, null=True, blank=True)
    contributors = models.ArrayField(model_container=Contributor, blank=True)

    class Meta:
        verbose_name_plural = "entries"
        ordering = ["-pub_date"]
        # the text index the site's search box reads (views.index: headline__search)
        indexes = [models.Index(fields=["pub_date"]),
                   models.TextIndex(fields=["headline", "body_text"], weights={"headline": 5},
                                    default_language="english", name="entry_text")]

    def __str__(self):
        return self.headline
