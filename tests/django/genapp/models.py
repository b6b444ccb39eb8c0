"""Django's GeneratedField (db_persist=True) over arithmetic, text
functions, a CASE and a condition, and one with db_persist=False (a
VIRTUAL column) (tests/django/generated_tests.py)."""
from django.db import models
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Concat, Lower


class Item(models.Model):
    a = models.IntegerField()
    b = models.IntegerField(null=True)
    name = models.CharField(max_length=20)
    total = models.GeneratedField(expression=F("a") + F("b"), output_field=models.IntegerField(), db_persist=True)
    label = models.GeneratedField(expression=Lower(Concat("name", Value("-X"))),
                                  output_field=models.CharField(max_length=30), db_persist=True)
    size = models.GeneratedField(expression=Case(When(a__gt=10, then=Value("big")), default=Value("small")),
                                 output_field=models.CharField(max_length=5), db_persist=True)
    positive = models.GeneratedField(expression=Q(a__gt=0), output_field=models.BooleanField(), db_persist=True)
    doubled = models.GeneratedField(expression=F("a") * 2, output_field=models.IntegerField(), db_persist=False)


class Plain(models.Model):
    """A model a migration gives a generated column and takes it back."""
    a = models.IntegerField()
