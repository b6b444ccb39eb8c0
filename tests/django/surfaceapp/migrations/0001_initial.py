from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import migrations, models as dj_models

import djongo.models.fields
import surfaceapp.models


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(name="Maker", fields=[
            ("id", dj_models.AutoField(primary_key=True, serialize=False)),
            ("name", dj_models.CharField(max_length=30))],
            options={"constraints": [dj_models.CheckConstraint(condition=~dj_models.Q(name=""),
                                                               name="maker_name_nonempty")]}),
        migrations.CreateModel(name="Product", fields=[
            ("id", dj_models.AutoField(primary_key=True, serialize=False)),
            ("name", dj_models.CharField(max_length=10)),
            ("kind", dj_models.CharField(max_length=10, choices=[("book", "Book"), ("toy", "Toy")])),
            ("stars", dj_models.IntegerField(validators=[MinValueValidator(1), MaxValueValidator(5)])),
            ("price", dj_models.DecimalField(max_digits=8, decimal_places=2, null=True)),
            ("released", dj_models.DateTimeField(null=True)),
            ("maker", dj_models.ForeignKey(null=True, on_delete=dj_models.SET_NULL, to="surfaceapp.maker")),
            ("size", djongo.models.fields.EmbeddedField(model_container=surfaceapp.models.Dimensions, null=True)),
            ("tags", djongo.models.fields.ArrayField(base_field=dj_models.CharField(max_length=8), blank=True,
                                                     default=list)),
            ("note", dj_models.TextField(blank=True, default="")),
            ("legacy", dj_models.CharField(max_length=5, default="x"))]),
    ]
