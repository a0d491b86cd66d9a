"""Derived tables keyed by their natural key instead of a surrogate id; CustomerMetrics partitioned by run.

CustomerMetrics (1,000,000 rows per scoring run), the rollups (a row per customer, day and channel, added to at
every ingestion) and the scoring state (a row per model and customer) are written set-based in bulk. A surrogate
id cost every row a sequence value and one more index insertion; the natural key is now the primary key.

On PostgreSQL CustomerMetrics is partitioned by scoring run: a run loads a table of its own without any index,
builds the primary key by one sort and attaches the table as its run's partition (loyalty.segmentation.services.scoring).
Rows written through the ORM land in the default partition. Existing rows are kept everywhere."""

from django.db import migrations, models

# model -> (unique constraint replaced by the primary key, the key's columns)
KEYS = {
    "CustomerMetrics": ("metrics_run_customer_unique", "scoring_run_id, customer_id"),
    "InteractionDayRollup": ("interaction_rollup_unique", "customer_id, day, channel"),
    "RevenueDayRollup": ("revenue_rollup_unique", "customer_id, day"),
    "ScoringState": ("scoringstate_model_customer_unique", "scoring_model_id, customer_id"),
}


def _postgresql(execute, table: str, unique: str, columns: str, *, partitioned: bool) -> None:
    execute(f"ALTER TABLE {table} DROP CONSTRAINT {unique}")
    execute(f"ALTER TABLE {table} DROP COLUMN id")
    if not partitioned:
        execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({columns})")
        return
    execute(f"ALTER TABLE {table} RENAME TO {table}_old")
    execute(
        f"CREATE TABLE {table} (LIKE {table}_old INCLUDING DEFAULTS INCLUDING CONSTRAINTS, PRIMARY KEY ({columns})) "
        "PARTITION BY LIST (scoring_run_id)"
    )
    execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
    execute(f"INSERT INTO {table} SELECT * FROM {table}_old")
    execute(f"DROP TABLE {table}_old")


def _sqlite(schema_editor, model) -> None:
    """SQLite cannot change a primary key in place: the table is made anew from the model and the rows copied."""
    execute, table = schema_editor.execute, model._meta.db_table
    execute(f'ALTER TABLE "{table}" RENAME TO "{table}_old"')
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = %s AND sql IS NOT NULL", [f"{table}_old"]
        )
        for (index,) in cursor.fetchall():  # index names are global: free them for the new table
            execute(f'DROP INDEX "{index}"')
    schema_editor.create_model(model)
    columns = ", ".join(schema_editor.quote_name(f.column) for f in model._meta.concrete_fields)
    execute(f'INSERT INTO "{table}" ({columns}) SELECT {columns} FROM "{table}_old"')
    execute(f'DROP TABLE "{table}_old"')


def forward(apps, schema_editor):
    for name, (unique, columns) in KEYS.items():
        model = apps.get_model("loyalty", name)
        if schema_editor.connection.vendor == "postgresql":
            table = model._meta.db_table
            _postgresql(schema_editor.execute, table, unique, columns, partitioned=name == "CustomerMetrics")
        else:
            _sqlite(schema_editor, model)


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0002_scoringstate_fillfactor")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(
                    model_name='customermetrics',
                    name='metrics_run_customer_unique',
                ),
                migrations.RemoveConstraint(
                    model_name='interactiondayrollup',
                    name='interaction_rollup_unique',
                ),
                migrations.RemoveConstraint(
                    model_name='revenuedayrollup',
                    name='revenue_rollup_unique',
                ),
                migrations.RemoveConstraint(
                    model_name='scoringstate',
                    name='scoringstate_model_customer_unique',
                ),
                migrations.RemoveField(
                    model_name='customermetrics',
                    name='id',
                ),
                migrations.RemoveField(
                    model_name='interactiondayrollup',
                    name='id',
                ),
                migrations.RemoveField(
                    model_name='revenuedayrollup',
                    name='id',
                ),
                migrations.RemoveField(
                    model_name='scoringstate',
                    name='id',
                ),
                migrations.AddField(
                    model_name='customermetrics',
                    name='pk',
                    field=models.CompositePrimaryKey('scoring_run_id', 'customer_id', blank=True, editable=False, primary_key=True, serialize=False),
                ),
                migrations.AddField(
                    model_name='interactiondayrollup',
                    name='pk',
                    field=models.CompositePrimaryKey('customer_id', 'day', 'channel', blank=True, editable=False, primary_key=True, serialize=False),
                ),
                migrations.AddField(
                    model_name='revenuedayrollup',
                    name='pk',
                    field=models.CompositePrimaryKey('customer_id', 'day', blank=True, editable=False, primary_key=True, serialize=False),
                ),
                migrations.AddField(
                    model_name='scoringstate',
                    name='pk',
                    field=models.CompositePrimaryKey('scoring_model_id', 'customer_id', blank=True, editable=False, primary_key=True, serialize=False),
                ),
    
            ]
        ),
        migrations.RunPython(forward),
    ]
