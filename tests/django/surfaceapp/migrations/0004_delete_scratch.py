from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("surfaceapp", "0003_scratch")]
    operations = [migrations.DeleteModel(name="Scratch")]
