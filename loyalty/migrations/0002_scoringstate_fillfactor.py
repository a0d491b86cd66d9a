from django.db import migrations


def fillfactor(apps, schema_editor):
    # Room on every page for the runs' UPDATEs of the state to be HOT (heap-only: no index writes).
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE loyalty_scoringstate SET (fillfactor = 50)")


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0001_initial")]
    operations = [migrations.RunPython(fillfactor, migrations.RunPython.noop)]
