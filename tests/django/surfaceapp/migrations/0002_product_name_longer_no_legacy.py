from django.db import migrations, models as dj_models


class Migration(migrations.Migration):
    """alter_field (max_length 10 -> 20) and remove_field: the validator follows."""
    dependencies = [("surfaceapp", "0001_initial")]
    operations = [
        migrations.AlterField(model_name="product", name="name", field=dj_models.CharField(max_length=20)),
        migrations.RemoveField(model_name="product", name="legacy"),
    ]
