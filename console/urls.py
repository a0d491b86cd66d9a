from django.urls import path

from console.views import agents, home, managers, partners, programmes

app_name = "console"

urlpatterns = [
    path("", home.home, name="home"),
    path("login/", home.login, name="login"),
    path("logout/", home.ConsoleLogoutView.as_view(), name="logout"),
    path("agent/queue/", agents.queue, name="agent-queue"),
    path("agent/requests/<int:request_id>/", agents.request_page, name="agent-request"),
    path("agent/requests/<int:request_id>/assign-me/", agents.assign_me, name="agent-assign-me"),
    path("agent/requests/<int:request_id>/assign/", agents.assign, name="agent-assign"),
    path("agent/requests/<int:request_id>/unassign/", agents.unassign, name="agent-unassign"),
    path("agent/requests/<int:request_id>/reply/", agents.reply, name="agent-reply"),
    path("agent/requests/<int:request_id>/note/", agents.note, name="agent-note"),
    path("agent/requests/<int:request_id>/transition/", agents.transition, name="agent-transition"),
    path("partner/events/", partners.events, name="partner-events"),
    path("partner/events/new/", partners.event_new, name="partner-event-new"),
    path("partner/events/<int:event_id>/", partners.event_detail, name="partner-event"),
    path("partner/events/<int:event_id>/edit/", partners.event_edit, name="partner-event-edit"),
    path("partner/events/<int:event_id>/publish/", partners.event_publish, name="partner-event-publish"),
    path("partner/events/<int:event_id>/cancel/", partners.event_cancel, name="partner-event-cancel"),
    path(
        "partner/events/<int:event_id>/bookings/<int:booking_id>/check-in/",
        partners.booking_check_in,
        name="partner-check-in",
    ),
    path("manager/segments/", managers.segments, name="manager-segments"),
    path("manager/segments/new/", managers.segment_new, name="manager-segment-new"),
    path("manager/segments/<int:segment_id>/", managers.segment_detail, name="manager-segment"),
    path("manager/segments/<int:segment_id>/run/", managers.segment_run, name="manager-segment-run"),
    path("manager/runs/<int:run_id>/", managers.segment_run_detail, name="manager-run"),
    path("manager/runs/<int:run_id>/members.csv", managers.segment_run_csv, name="manager-run-csv"),
    path("manager/runs/<int:run_id>/explain/", managers.segment_run_explain, name="manager-run-explain"),
    path("manager/programmes/", programmes.programmes, name="manager-programmes"),
    path("manager/programmes/new/", programmes.programme_new, name="manager-programme-new"),
    path("manager/programmes/<int:programme_id>/", programmes.programme_detail, name="manager-programme"),
    path("manager/programmes/<int:programme_id>/edit/", programmes.programme_edit, name="manager-programme-edit"),
    path("manager/programmes/<int:programme_id>/tiers/new/", programmes.tier_new, name="manager-tier-new"),
    path(
        "manager/programmes/<int:programme_id>/tiers/<int:tier_id>/edit/",
        programmes.tier_edit,
        name="manager-tier-edit",
    ),
    path("manager/programmes/<int:programme_id>/enrol/", programmes.enrol, name="manager-enrol"),
    path(
        "manager/programmes/<int:programme_id>/enrolments/<int:enrolment_id>/",
        programmes.enrolment_detail,
        name="manager-enrolment",
    ),
    path(
        "manager/programmes/<int:programme_id>/enrolments/<int:enrolment_id>/retry/",
        programmes.enrolment_retry,
        name="manager-enrolment-retry",
    ),
    path("manager/programmes/<int:programme_id>/memberships/", programmes.memberships, name="manager-memberships"),
    path(
        "manager/programmes/<int:programme_id>/memberships.csv",
        programmes.memberships_csv,
        name="manager-memberships-csv",
    ),
    path(
        "manager/programmes/<int:programme_id>/memberships/<int:membership_id>/",
        programmes.membership_detail,
        name="manager-membership",
    ),
    path(
        "manager/programmes/<int:programme_id>/memberships/<int:membership_id>/override/",
        programmes.membership_override,
        name="manager-membership-override",
    ),
    path("manager/impact/", programmes.impact, name="manager-impact"),
]
