"""Datetimes with microseconds (tests/django/datetime_us_tests.py)."""
from django.db import models


class Event(models.Model):
    name = models.CharField(max_length=20, unique=True)
    at = models.DateTimeField(null=True)
    until = models.DateTimeField(null=True)
    length = models.DurationField(null=True)
