"""Models of tests/django/surface_tests.py: SCHEMA_VALIDATION's generated
validators (their migrations in migrations/ create, alter and drop them),
bulk writes, concerns."""
from django.core.validators import MaxValueValidator, MinValueValidator

from djongo import models


class Dimensions(models.Model):
    width = models.FloatField()
    unit = models.CharField(max_length=2, choices=[("cm", "cm"), ("in", "in")])

    class Meta:
        abstract = True


class Maker(models.Model):
    name = models.CharField(max_length=30)

    class Meta:
        constraints = [models.CheckConstraint(condition=~models.Q(name=""), name="maker_name_nonempty")]


class Product(models.Model):
    name = models.CharField(max_length=20)
    kind = models.CharField(max_length=10, choices=[("book", "Book"), ("toy", "Toy")])
    stars = models.IntegerField(validators=[MinValueValidator(1), MaxValueValidator(5)])
    price = models.DecimalField(max_digits=8, decimal_places=2, null=True)
    released = models.DateTimeField(null=True)
    maker = models.ForeignKey(Maker, null=True, on_delete=models.SET_NULL)
    size = models.EmbeddedField(model_container=Dimensions, null=True)
    tags = models.ArrayField(models.CharField(max_length=8), blank=True, default=list)
    note = models.TextField(blank=True, default="")

    objects = models.DjongoManager()
