"""Derived tables keyed by their natural key instead of a surrogate id; CustomerMetrics partitioned by run.

CustomerMetrics (1,000,000 rows per scoring run), the rollups (a row per customer, day and channel, added to at
every ingestion) and the scoring state (a row per model and customer) are written set-based in bulk. A surrogate
id cost every row a sequence value and one more index insertion; the natural key is now the primary key.

On PostgreSQL CustomerMetrics is partitioned by scoring run: a run loads a table of its own without any index,
builds the primary key by one sort and attaches the table as its run's partition (loyalty.services.scoring).
Rows written through the ORM land in the default partition. Existing rows are kept everywhere."""

from django.db import migrations, models

# table -> (unique constraint replaced by the primary key, its columns)
KEYS = {
    "loyalty_customermetrics": ("metrics_run_customer_unique", "scoring_run_id, customer_id"),
    "loyalty_interactiondayrollup": ("interaction_rollup_unique", "customer_id, day, channel"),
    "loyalty_revenuedayrollup": ("revenue_rollup_unique", "customer_id, day"),
    "loyalty_scoringstate": ("scoringstate_model_customer_unique", "scoring_model_id, customer_id"),
}
MODELS = {
    "loyalty_customermetrics": "CustomerMetrics",
    "loyalty_interactiondayrollup": "InteractionDayRollup",
    "loyalty_revenuedayrollup": "RevenueDayRollup",
    "loyalty_scoringstate": "ScoringState",
}
METRICS = "loyalty_customermetrics"


def _postgresql(execute, table: str) -> None:
    unique, columns = KEYS[table]
    execute(f"ALTER TABLE {table} DROP CONSTRAINT {unique}")
    execute(f"ALTER TABLE {table} DROP COLUMN id")
    if table != METRICS:
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


def _sqlite(apps, schema_editor, table: str) -> None:
    """SQLite cannot change a primary key in place: the table is made anew from the model and the rows copied."""
    execute = schema_editor.execute
    execute(f'ALTER TABLE "{table}" RENAME TO "{table}_old"')
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = %s AND sql IS NOT NULL", [f"{table}_old"]
        )
        for (index,) in cursor.fetchall():  # index names are global: free them for the new table
            execute(f'DROP INDEX "{index}"')
    model = apps.get_model("loyalty", MODELS[table])
    schema_editor.create_model(model)
    columns = ", ".join(schema_editor.quote_name(f.column) for f in model._meta.concrete_fields)
    execute(f'INSERT INTO "{table}" ({columns}) SELECT {columns} FROM "{table}_old"')
    execute(f'DROP TABLE "{table}_old"')


def forward(apps, schema_editor):
    for table in KEYS:
        if schema_editor.connection.vendor == "postgresql":
            _postgresql(schema_editor.execute, table)
        else:
            _sqlite(apps, schema_editor, table)


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
