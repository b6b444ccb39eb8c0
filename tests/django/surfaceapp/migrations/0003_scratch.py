from django.db import migrations, models as dj_models


class Migration(migrations.Migration):
    """A model made and dropped again (0004): its validator goes with it."""
    dependencies = [("surfaceapp", "0002_product_name_longer_no_legacy")]
    operations = [
        migrations.CreateModel(name="Scratch", fields=[
            ("id", dj_models.AutoField(primary_key=True, serialize=False)),
            ("code", dj_models.CharField(max_length=3))]),
    ]
