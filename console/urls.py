from django.urls import path

from console.views import agents, home

app_name = "console"

urlpatterns = [
    path("", home.home, name="home"),
    path("login/", home.ConsoleLoginView.as_view(), name="login"),
    path("logout/", home.ConsoleLogoutView.as_view(), name="logout"),
    path("agent/queue/", agents.queue, name="agent-queue"),
    path("agent/requests/<int:request_id>/", agents.request_page, name="agent-request"),
    path("agent/requests/<int:request_id>/assign-me/", agents.assign_me, name="agent-assign-me"),
    path("agent/requests/<int:request_id>/assign/", agents.assign, name="agent-assign"),
    path("agent/requests/<int:request_id>/unassign/", agents.unassign, name="agent-unassign"),
    path("agent/requests/<int:request_id>/reply/", agents.reply, name="agent-reply"),
    path("agent/requests/<int:request_id>/note/", agents.note, name="agent-note"),
    path("agent/requests/<int:request_id>/transition/", agents.transition, name="agent-transition"),
]
