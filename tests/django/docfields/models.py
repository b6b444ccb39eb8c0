"""Models exercising djongo.models' document fields (tests/django/docfields_tests.py)."""
from django.core.exceptions import ValidationError

from djongo import models


def no_script(value):
    # the original djongo README's example validator
    if "<script>" in value:
        raise ValidationError("Script injection in %(value)s", params={"value": value})


class Geo(models.Model):
    lat = models.FloatField()
    lng = models.FloatField()

    class Meta:
        abstract = True


class Address(models.Model):
    city = models.CharField(max_length=50)
    homepage = models.URLField(validators=[no_script], blank=True)
    since = models.DateField(null=True, blank=True)
    geo = models.EmbeddedField(model_container=Geo, null=True, blank=True)

    class Meta:
        abstract = True


class Author(models.Model):
    name = models.CharField(max_length=50)
    email = models.EmailField(blank=True)

    class Meta:
        abstract = True


class Tag(models.Model):
    name = models.CharField(max_length=20)

    def __str__(self):
        return self.name


class Entry(models.Model):
    headline = models.CharField(max_length=100)
    address = models.EmbeddedField(model_container=Address)
    authors = models.ArrayField(model_container=Author, blank=True)
    keywords = models.ArrayField(models.CharField(max_length=20), blank=True)
    tags = models.ArrayReferenceField(to=Tag, on_delete=models.PROTECT, blank=True)
    data = models.JSONField(null=True, blank=True)

    objects = models.DjongoManager()

    class Meta:
        # an index on embedded paths (MongoDB: {"address.city": 1, "authors.name": -1})
        indexes = [models.Index(models.F("address__city"), models.F("authors__name").desc(), name="entry_city_author")]


class Reader(models.Model):
    name = models.CharField(max_length=20)
    liked = models.ArrayReferenceField(to=Tag, on_delete=models.CASCADE, related_name="fans", blank=True)
    watched = models.ArrayReferenceField(to=Tag, on_delete=models.SET_NULL, related_name="watchers", blank=True)


class Doc(models.Model):
    _id = models.ObjectIdField()
    title = models.CharField(max_length=20)
    ref = models.GenericObjectIdField(null=True, blank=True)


class Event(models.Model):
    """For the time functions and JSONObject (docfields_tests.FunctionTests)."""

    name = models.CharField(max_length=20)
    at = models.DateTimeField()
    starts = models.TimeField()
