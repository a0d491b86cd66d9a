from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import UserFactory


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def agent():
    return UserFactory(roles=["concierge_agent"], first_name="Alice", last_name="Agent")


@pytest.fixture
def colleague():
    return UserFactory(roles=["concierge_agent"], first_name="Bob", last_name="Colleague")


@pytest.fixture
def partner_user():
    return UserFactory(roles=["partner_staff"], first_name="Paula", last_name="Partner")


@pytest.fixture
def manager():
    return UserFactory(roles=["programme_manager"], first_name="Mona", last_name="Manager")


@pytest.fixture
def member_user():
    return UserFactory(roles=["member"])
