"""On PostgreSQL, the audit table refuses UPDATE and DELETE (a trigger), so not even code that bypasses the
services can rewrite history. (TRUNCATE, used by test flushes, is not a row operation and is unaffected.)"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION concierge_requestevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'concierge_requestevent is append-only (% refused)', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS concierge_requestevent_append_only ON concierge_requestevent;
CREATE TRIGGER concierge_requestevent_append_only
    BEFORE UPDATE OR DELETE ON concierge_requestevent
    FOR EACH ROW EXECUTE FUNCTION concierge_requestevent_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS concierge_requestevent_append_only ON concierge_requestevent;
DROP FUNCTION IF EXISTS concierge_requestevent_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("concierge", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
