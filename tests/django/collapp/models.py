"""Columns with a collation (Django's db_collation) and Collate()
(tests/django/collation_tests.py)."""
from django.db import models


class Person(models.Model):
    name = models.CharField(max_length=20, db_collation="nocase")
    code = models.CharField(max_length=20, db_collation="binary", unique=True)
    note = models.TextField(null=True)
