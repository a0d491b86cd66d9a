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


def test_login_page_logs_in_through_allauth_and_goes_on(agent):
    from allauth.account.signals import user_logged_in

    seen = []

    def receiver(sender, request, user, **kwargs):
        seen.append(user)

    user_logged_in.connect(receiver)
    client = Client()
    try:
        page = client.get("/console/login/?next=/console/agent/queue/")
        assert page.status_code == 200
        content = page.content.decode()
        assert '<label for="id_login">Email:</label>' in content
        assert '<label for="id_password">Password:</label>' in content
        response = client.post(
            "/console/login/", {"login": agent.email, "password": TEST_PASSWORD, "next": "/console/agent/queue/"}
        )
    finally:
        user_logged_in.disconnect(receiver)
    assert response.status_code == 302
    assert response["Location"] == "/console/agent/queue/"
    assert seen == [agent]  # allauth's flow ran (its signal, not only Django's)
    assert client.get("/console/").status_code == 200


def test_wrong_password_says_so_and_logs_nobody_in(agent):
    client = Client()
    response = client.post("/console/login/", {"login": agent.email, "password": "wrong"})
    assert response.status_code == 400
    assert response.context["form"].errors["__all__"] == [
        "The email address and/or password you specified are not correct."
    ]
    assert "_auth_user_id" not in client.session


def test_allauths_rate_limit_stops_guessing_even_with_the_right_password(agent):
    client = Client()
    for _ in range(5):
        assert client.post("/console/login/", {"login": agent.email, "password": "wrong"}).status_code == 400
    response = client.post("/console/login/", {"login": agent.email, "password": TEST_PASSWORD})
    assert response.status_code == 400
    assert response.context["form"].errors["__all__"] == ["Too many failed login attempts. Try again later."]
    assert "_auth_user_id" not in client.session


def test_an_unverified_address_is_refused_with_a_message(agent):
    from allauth.account.models import EmailAddress

    EmailAddress.objects.filter(user=agent).update(verified=False)
    client = Client()
    response = client.post("/console/login/", {"login": agent.email, "password": TEST_PASSWORD})
    assert response.status_code == 400
    assert response.context["form"].errors["__all__"][0].startswith("This email address is not verified yet.")
    assert "_auth_user_id" not in client.session


def test_login_never_sends_a_person_to_another_site(agent):
    client = Client()
    response = client.post(
        "/console/login/", {"login": agent.email, "password": TEST_PASSWORD, "next": "https://evil.example/"}
    )
    assert response["Location"] == "/console/"
    assert client.get("/console/login/?next=/console/agent/queue/")["Location"] == "/console/agent/queue/"


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
