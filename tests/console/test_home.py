"""The console's login, home page and role gate."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.console.conftest import client_for
from tests.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def test_anonymous_goes_to_the_console_login():
    response = Client().get("/console/")
    assert response.status_code == 302
    assert response["Location"] == "/console/login/?next=/console/"


def test_login_page_logs_in_with_email_and_password_and_goes_on(agent):
    client = Client()
    page = client.get("/console/login/?next=/console/agent/queue/")
    assert page.status_code == 200
    assert b'<label for="id_username">Email address:</label>' in page.content
    response = client.post(
        "/console/login/", {"username": agent.email, "password": TEST_PASSWORD, "next": "/console/agent/queue/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/console/agent/queue/"
    assert client.get("/console/").status_code == 200


def test_wrong_password_says_so_and_logs_nobody_in(agent):
    client = Client()
    response = client.post("/console/login/", {"username": agent.email, "password": "wrong"})
    assert response.status_code == 200
    assert b"Please enter a correct email address and password" in response.content
    assert "_auth_user_id" not in client.session


def test_home_shows_each_area_of_the_persons_roles():
    both = UserFactory(roles=["concierge_agent", "partner_staff"])
    content = client_for(both).get("/console/").content.decode()
    assert 'href="/console/agent/queue/">Concierge queue</a></h2>' in content
    assert 'href="/console/partner/events/">Partner events</a></h2>' in content


def test_agent_home_shows_only_the_queue(agent):
    content = client_for(agent).get("/console/").content.decode()
    assert "Concierge queue" in content
    assert "Partner events" not in content


def test_a_member_is_refused_the_console(member_user):
    assert client_for(member_user).get("/console/").status_code == 403


def test_pages_carry_the_csp_and_a_local_stylesheet(agent):
    response = client_for(agent).get("/console/")
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert b'<link rel="stylesheet" href="/static/console/console.css">' in response.content
    assert b"<script" not in response.content


def test_logout_is_a_post_and_ends_the_session(agent):
    client = client_for(agent)
    response = client.post("/console/logout/")
    assert response.status_code == 302
    assert client.get("/console/").status_code == 302


def test_the_refusal_page_says_why(member_user):
    response = client_for(member_user).get("/console/agent/queue/")
    assert response.status_code == 403
    assert "This page is for concierge agents; your account has no such role." in response.content.decode()
