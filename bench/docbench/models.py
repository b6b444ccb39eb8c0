"""The same data two ways (bench/django_documents.py): an entry with its
address and contributors inside one document (djongo.models), and the
normalized tables an SQL database wants (an address row, contributor rows)."""
from djongo import models


class Address(models.Model):
    street = models.CharField(max_length=100)
    city = models.CharField(max_length=50)

    class Meta:
        abstract = True


class Contributor(models.Model):
    name = models.CharField(max_length=50)
    role = models.CharField(max_length=20)

    class Meta:
        abstract = True


class DocEntry(models.Model):
    headline = models.CharField(max_length=100)
    address = models.EmbeddedField(model_container=Address)
    contributors = models.ArrayField(model_container=Contributor)

    class Meta:
        indexes = [models.Index(models.F("address__city"), name="docentry_city"),
                   models.Index(models.F("contributors__name"), name="docentry_contributor")]


class NEntry(models.Model):
    headline = models.CharField(max_length=100)


class NAddress(models.Model):
    entry = models.OneToOneField(NEntry, on_delete=models.CASCADE, related_name="address")
    street = models.CharField(max_length=100)
    city = models.CharField(max_length=50, db_index=True)


class NContributor(models.Model):
    entry = models.ForeignKey(NEntry, on_delete=models.CASCADE, related_name="contributors")
    name = models.CharField(max_length=50, db_index=True)
    role = models.CharField(max_length=20)
