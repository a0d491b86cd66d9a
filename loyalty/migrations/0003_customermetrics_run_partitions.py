"""CustomerMetrics keyed by (scoring run, customer), without the surrogate id; on PostgreSQL partitioned by run.

A scoring run writes 1,000,000 rows. With a surrogate id and a unique (run, customer) index every row paid for
a sequence value and two index insertions; now a run loads a table of its own without any index, builds the
primary key by one sort and attaches the table as its run's partition (loyalty.services.scoring). Rows written
through the ORM land in the default partition. Existing rows are kept (in the default partition)."""

from django.db import migrations, models

TABLE = "loyalty_customermetrics"


def forward(apps, schema_editor):
    execute = schema_editor.execute
    if schema_editor.connection.vendor == "postgresql":
        execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT metrics_run_customer_unique")
        execute(f"ALTER TABLE {TABLE} DROP COLUMN id")
        execute(f"ALTER TABLE {TABLE} RENAME TO {TABLE}_old")
        execute(
            f"CREATE TABLE {TABLE} (LIKE {TABLE}_old INCLUDING DEFAULTS INCLUDING CONSTRAINTS, "
            "PRIMARY KEY (scoring_run_id, customer_id)) PARTITION BY LIST (scoring_run_id)"
        )
        execute(f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT")
        execute(f"INSERT INTO {TABLE} SELECT * FROM {TABLE}_old")
    else:
        execute(f"ALTER TABLE {TABLE} RENAME TO {TABLE}_old")
        model = apps.get_model("loyalty", "CustomerMetrics")
        schema_editor.create_model(model)
        columns = ", ".join(schema_editor.quote_name(f.column) for f in model._meta.concrete_fields)
        execute(f"INSERT INTO {TABLE} ({columns}) SELECT {columns} FROM {TABLE}_old")
    execute(f"DROP TABLE {TABLE}_old")


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0002_scoringstate_fillfactor")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(model_name="customermetrics", name="metrics_run_customer_unique"),
                migrations.RemoveField(model_name="customermetrics", name="id"),
                migrations.AddField(
                    model_name="customermetrics",
                    name="pk",
                    field=models.CompositePrimaryKey(
                        "scoring_run_id", "customer_id", blank=True, editable=False, primary_key=True, serialize=False
                    ),
                ),
            ]
        ),
        migrations.RunPython(forward),
    ]
