"""core.rows: hot queries written once as SQL, their rows mapped back exactly as the ORM maps them, and (on
PostgreSQL) prepared once per database session."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.rows import Columns, Statement
from events.models import Event
from loyalty.models import Membership
from loyalty.programmes.selectors.members import _load_member_context
from tests.conftest import ON_POSTGRES
from tests.events.factories import EventFactory, member
from tests.factories import TierFactory

pytestmark = pytest.mark.django_db


def _fields(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


def test_the_member_context_row_equals_the_orm_instances_field_for_field():
    user, membership = member(rank=1)
    override = TierFactory(programme=membership.programme, rank=2)
    Membership.objects.filter(pk=membership.pk).update(
        override_tier=override, override_expires_at=timezone.now() + timedelta(days=3)
    )
    membership.customer.attributes = {"plan": "family", "lines": 3}
    membership.customer.save(update_fields=["attributes"])
    expected = Membership.objects.select_related("programme", "tier", "override_tier", "customer").get(pk=membership.pk)

    loaded, has_role = _load_member_context(user)

    assert has_role is True
    assert _fields(loaded) == _fields(expected)
    for related in ("programme", "tier", "override_tier", "customer"):
        assert _fields(getattr(loaded, related)) == _fields(getattr(expected, related)), related
    assert loaded.customer.attributes == {"plan": "family", "lines": 3}
    assert loaded._state.adding is False
    assert loaded.customer.user is user


def test_a_left_join_without_a_row_loads_none():
    user, membership = member()
    loaded, _ = _load_member_context(user)
    assert membership.override_tier_id is None
    assert loaded.override_tier is None


def test_values_apply_the_database_converters():
    event = EventFactory(price=Decimal("12.50"))
    columns = Columns(Event, "e", only=["id", "price", "starts_at"])
    statement = Statement(
        lambda using: f"SELECT {columns.sql(using)} FROM events_event e WHERE e.id = %s", name="test_rows_values"
    )
    values = columns.values(statement.fetchone([event.pk]))
    assert values == {"id": event.pk, "price": Decimal("12.50"), "starts_at": event.starts_at}


def test_statement_names_are_unique_identifiers():
    with pytest.raises(ValueError, match="not a lowercase SQL identifier"):
        Statement(lambda using: "SELECT 1", name="Bad-Name")
    Statement(lambda using: "SELECT 1", name="test_rows_unique")
    with pytest.raises(ValueError, match="Two statements"):
        Statement(lambda using: "SELECT 1", name="test_rows_unique")


@pytest.mark.skipif(not ON_POSTGRES, reason="prepared statements are PostgreSQL's")
def test_on_postgresql_a_statement_is_prepared_once_per_session_and_then_executed():
    first, second = EventFactory(title="First"), EventFactory(title="Second")
    statement = Statement(lambda using: "SELECT title FROM events_event WHERE id = %s", name="test_rows_prepared")
    with CaptureQueriesContext(connection) as captured:
        assert statement.fetchone([first.pk]) == ("First",)
        assert statement.fetchone([second.pk]) == ("Second",)
    assert [q["sql"] for q in captured.captured_queries] == [
        f"EXECUTE premier_test_rows_prepared({first.pk})",
        f"EXECUTE premier_test_rows_prepared({second.pk})",
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE name = 'premier_test_rows_prepared'")
        assert cursor.fetchone() == (1,)
