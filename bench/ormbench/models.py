"""The models of bench/orm_ops.py: plain Django models (no document fields),
the same on both sides."""
from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=50)


class Book(models.Model):
    title = models.CharField(max_length=100)
    author = models.ForeignKey(Author, on_delete=models.CASCADE)
    rating = models.IntegerField(db_index=True)
    pages = models.IntegerField()
