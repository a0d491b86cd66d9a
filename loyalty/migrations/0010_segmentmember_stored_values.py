"""SegmentMember.values becomes `stored_values` in the model (same database column "values", so no SQL): the
values of a member are read through `segments.segment_member_values(run)`, because a run with the new
`SegmentRun.compact_values` stores in the column only what its scoring run's metrics do not hold. Existing runs
keep compact_values false and are read from the column as before."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0009_rollup_batches")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RenameField(model_name="segmentmember", old_name="values", new_name="stored_values"),
                migrations.AlterField(
                    model_name="segmentmember",
                    name="stored_values",
                    field=models.JSONField(
                        db_column="values",
                        default=dict,
                        help_text="The values that qualified it; of a compact run only those the metrics do not hold.",
                    ),
                ),
            ]
        ),
        migrations.AddField(
            model_name="segmentrun",
            name="compact_values",
            field=models.BooleanField(
                default=False,
                db_default=False,
                help_text="Its members store only the values that the scoring run's metrics do not hold (customer "
                "attributes, influence); the metric values are read back from the metrics (SegmentMember).",
            ),
        ),
    ]
