"""Events API: partner staff manage their own partner's events; members browse, book, pay and cancel; Stripe
posts webhooks. Thin: parse, call a service or selector, return a schema."""

import json
import logging

import stripe
from django.conf import settings
from django.views.decorators.csrf import csrf_exempt
from ninja import Path, Query, Router, Schema
from ninja.pagination import paginate

from accounts.models import Role
from core.auth import require_role, user_auth
from core.errors import BusinessRuleError, ServiceUnavailable
from core.idempotency import IdempotencyKeyHeader, run_idempotent
from core.pagination import Page
from core.schemas import ErrorOut, describe, responses
from events import selectors
from events.models import Booking
from events.schemas import (
    BookingCreatedOut,
    BookingIn,
    BookingOut,
    BookingStatus,
    EventIn,
    EventPatch,
    EventStatus,
    MemberEventOut,
    PartnerBookingOut,
    PartnerEventOut,
    PaymentOut,
    WebhookOut,
)
from events.services import bookings, partners, payments
from loyalty.programmes.selectors.members import require_member

logger = logging.getLogger("premier.events")

router = Router()
partner_router = Router(tags=["partner events"], auth=user_auth)
member_router = Router(tags=["member events"], auth=user_auth)
webhook_router = Router(tags=["stripe"])

MAX_ID = 9_223_372_036_854_775_807
EventId = Path(..., ge=1, le=MAX_ID)
BookingId = Path(..., ge=1, le=MAX_ID)

PARTNER = "partner staff (role `partner_staff`), for the partner their account is linked to."
NO_PARTNER = "`no_partner`: the account is not linked to a partner."
PARTNER_EVENT_404 = "`event_not_found`: no such event, or another partner's (the same answer for both)."
MEMBER = "members (role `member`) with an active treatment membership, on their own bookings."
NOT_A_MEMBER_403 = "`not_a_member`: no active treatment membership (control group and ended memberships included)."
MEMBER_EVENT_404 = "`event_not_found`: no such event, not published, or for tiers my programme does not have."
TIER_TOO_LOW_403 = (
    "`tier_too_low`: a published event above my tier; `detail` and `fields.required_tier` name the tier it needs."
)
MEMBER_BOOKING_404 = "`booking_not_found`: no such booking, or someone else's (the same answer for both)."


class EventFilter(Schema):
    status: EventStatus | None = None


class BookingFilter(Schema):
    status: BookingStatus | None = None


def _partner(request):
    user = require_role(request, Role.PARTNER_STAFF)
    return user, partners.partner_for_user(user)


def _member(request):
    """The caller's membership and effective tier, from the member context resolved once per request."""
    context = require_member(request)
    return context.membership, context.tier


# ---------------------------------------------------------------------------------------------- partner staff


@partner_router.get(
    "/partner/events",
    response=responses({200: list[PartnerEventOut]}),
    summary="List my partner's events",
    description=describe(
        PARTNER,
        "The partner's events with booking counts; completed events carry their final attendance (`attended_*` "
        "and `no_show_*`). Paginated.",
        errors={403: NO_PARTNER},
    ),
)
@paginate(Page)
def partner_list_events(request, filters: EventFilter = Query(...)):
    _, partner = _partner(request)
    return selectors.partner_events(partner=partner, status=filters.status)


@partner_router.post(
    "/partner/events",
    response=responses({201: PartnerEventOut}, 409),
    summary="Create an event (draft)",
    description=describe(
        PARTNER,
        "The event starts as a draft; publish it to open bookings. Accepts an `Idempotency-Key`.",
        errors={
            403: NO_PARTNER,
            422: "`invalid_event`: inconsistent times, capacity or booking window (`fields` names them).",
        },
    ),
)
def partner_create_event(request, payload: EventIn, idempotency_key: str | None = IdempotencyKeyHeader):
    user, partner = _partner(request)
    return run_idempotent(
        request,
        key=idempotency_key,
        payload=payload,
        action=lambda: partners.event_create(partner=partner, created_by=user, data=payload.model_dump()),
        out=PartnerEventOut,
    )


@partner_router.get(
    "/partner/events/{event_id}",
    response=responses({200: PartnerEventOut}),
    summary="One of my partner's events",
    description=describe(
        PARTNER, "The event with its booking counts.", errors={403: NO_PARTNER, 404: PARTNER_EVENT_404}
    ),
)
def partner_get_event(request, event_id: int = EventId):
    _, partner = _partner(request)
    return selectors.partner_event(partner=partner, event_id=event_id)


@partner_router.patch(
    "/partner/events/{event_id}",
    response=responses({200: PartnerEventOut}, 409),
    summary="Edit an event",
    description=describe(
        PARTNER,
        "Draft and published events; only fields sent change. More capacity promotes the waitlist.",
        errors={
            400: "`capacity_below_booked`: the capacity would be below the seats already booked.",
            403: NO_PARTNER,
            404: PARTNER_EVENT_404,
            409: [
                "`event_not_editable`: the event is cancelled or completed.",
                "`price_locked`: the event has bookings; its price cannot change.",
            ],
            422: "`invalid_event`: inconsistent times, capacity or booking window (`fields` names them).",
        },
    ),
)
def partner_update_event(request, payload: EventPatch, event_id: int = EventId):
    _, partner = _partner(request)
    partners.event_update(partner=partner, event_id=event_id, data=payload.changes())
    return selectors.partner_event(partner=partner, event_id=event_id)


@partner_router.post(
    "/partner/events/{event_id}/publish",
    response=responses({200: PartnerEventOut}, 409),
    summary="Publish an event",
    description=describe(
        PARTNER,
        "Eligible members can then see and book it. Publishing twice is a no-op.",
        errors={
            400: "`event_started`: the event has already started.",
            403: NO_PARTNER,
            404: PARTNER_EVENT_404,
            409: "`event_not_publishable`: the event is cancelled or completed.",
        },
    ),
)
def partner_publish_event(request, event_id: int = EventId):
    _, partner = _partner(request)
    partners.event_publish(partner=partner, event_id=event_id)
    return selectors.partner_event(partner=partner, event_id=event_id)


@partner_router.post(
    "/partner/events/{event_id}/cancel",
    response=responses({200: PartnerEventOut}, 409),
    summary="Cancel an event",
    description=describe(
        PARTNER,
        "Every live booking is cancelled, paid ones are refunded in full and members are emailed. Cancelling "
        "twice is a no-op.",
        errors={
            403: NO_PARTNER,
            404: PARTNER_EVENT_404,
            409: "`event_not_cancellable`: the event is completed.",
        },
    ),
)
def partner_cancel_event(request, event_id: int = EventId):
    _, partner = _partner(request)
    partners.event_cancel(partner=partner, event_id=event_id)
    return selectors.partner_event(partner=partner, event_id=event_id)


@partner_router.get(
    "/partner/events/{event_id}/bookings",
    response=responses({200: list[PartnerBookingOut]}),
    summary="Bookings of one of my partner's events",
    description=describe(
        PARTNER,
        "Attendee names for check-in; no contact details. Paginated.",
        errors={403: NO_PARTNER, 404: PARTNER_EVENT_404},
    ),
)
@paginate(Page)
def partner_list_bookings(request, event_id: int = EventId, filters: BookingFilter = Query(...)):
    _, partner = _partner(request)
    return selectors.partner_event_bookings(partner=partner, event_id=event_id, status=filters.status)


@partner_router.post(
    "/partner/bookings/{booking_id}/check-in",
    response=responses({200: PartnerBookingOut}, 409),
    summary="Check an attendee in",
    description=describe(
        PARTNER,
        "Confirmed -> attended (records an engagement interaction). Checking in twice is a no-op. Check-in opens "
        "`EVENT_CHECKIN_OPENS_HOURS` (default 2) before the start and stays open until the check-in grace "
        "(`EVENT_COMPLETION_GRACE_HOURS`, default 2) after the end.",
        errors={
            403: NO_PARTNER,
            404: "`booking_not_found`: no such booking, or one of another partner's events.",
            409: [
                "`booking_not_checkable`: the booking is not confirmed (held, waitlisted, cancelled...).",
                "`check_in_not_open`: too early; the message and `fields.opens_at` say when check-in opens.",
                "`check_in_closed`: the check-in grace after the event's end has passed.",
                "`event_completed`: the event is completed; remaining confirmed bookings became `no_show`.",
            ],
        },
    ),
)
def partner_check_in(request, booking_id: int = BookingId):
    user, partner = _partner(request)
    partners.booking_check_in(partner=partner, booking_id=booking_id, by=user)
    return selectors.partner_event_bookings(partner=partner, event_id=Booking.objects.get(pk=booking_id).event_id).get(
        pk=booking_id
    )


# ---------------------------------------------------------------------------------------------------- members


@member_router.get(
    "/events",
    response=responses({200: list[MemberEventOut]}),
    summary="Events I can book",
    description=describe(
        MEMBER,
        "Published events my tier is eligible for whose booking window is open for my tier (higher tiers open "
        "earlier by their early-access hours). Paginated.",
        errors={403: NOT_A_MEMBER_403},
    ),
)
@paginate(Page)
def member_list_events(request):
    _, tier = _member(request)
    return selectors.member_bookable_events(tier=tier)


@member_router.get(
    "/events/{event_id}",
    response=responses({200: MemberEventOut}),
    summary="An event, with seats left",
    description=describe(
        MEMBER,
        "The event with the seats left.",
        errors={
            403: [NOT_A_MEMBER_403, TIER_TOO_LOW_403],
            404: MEMBER_EVENT_404,
        },
    ),
)
def member_get_event(request, event_id: int = EventId):
    _, tier = _member(request)
    return selectors.member_event(tier=tier, event_id=event_id)


def _with_payment(body: dict, membership) -> dict:
    """The first answer to a booking carries its PaymentIntent when one is due (after the booking and its
    Idempotency-Key record committed: a replay answers the stored booking with `payment: null`)."""
    if body.get("status") != Booking.Status.HELD:
        return body
    info = payments.booking_payment_for_new_booking(membership=membership, booking_id=body["id"])
    if info is None:
        return body
    return {
        **body,
        "payment": {"payment_intent_id": info.id, "client_secret": info.client_secret, "status": info.status},
    }


@member_router.post(
    "/events/{event_id}/bookings",
    response=responses({201: BookingCreatedOut}, 409, 503),
    summary="Book an event",
    description=describe(
        MEMBER,
        "Seats = me + `guests` (up to my tier's allowance). Free events confirm at once; paid events are held for "
        "15 minutes and answer the Stripe PaymentIntent to confirm. When full, `join_waitlist` gives a "
        "waitlisted booking. One live booking per member per event. Send `Idempotency-Key` to retry safely: a "
        "retry answers the booking as first created, with `payment: null` (get the PaymentIntent with POST "
        "/bookings/{id}/payment), and never calls Stripe; a duplicate sent while the first is running waits for it, "
        "or gets 409 `idempotency_key_in_use` with `Retry-After`.",
        errors={
            400: [
                "`booking_not_open`: the booking window has not opened for my tier yet.",
                "`booking_closed`: the booking window has closed.",
                "`too_many_guests`: more guests than my tier allows.",
            ],
            403: [NOT_A_MEMBER_403, TIER_TOO_LOW_403],
            404: MEMBER_EVENT_404,
            409: [
                "`event_full`: no seats left (send `join_waitlist` to queue).",
                "`already_booked`: I already have a live booking for this event.",
            ],
            503: "`payment_provider_unavailable`: Stripe did not answer within its time budget (`Retry-After`, "
            "`fields.booking_id`); the booking stays held and can be paid with POST /bookings/{id}/payment.",
        },
    ),
)
def member_book(
    request, payload: BookingIn, event_id: int = EventId, idempotency_key: str | None = IdempotencyKeyHeader
):
    membership, _ = _member(request)

    def action() -> dict:
        booking = bookings.booking_create(
            membership=membership, event_id=event_id, guests=payload.guests, join_waitlist=payload.join_waitlist
        )
        return {**BookingOut.from_orm(booking).model_dump(mode="json"), "payment": None}

    return run_idempotent(
        request,
        key=idempotency_key,
        payload={"event_id": event_id, **payload.model_dump()},
        action=action,
        then=lambda body: _with_payment(body, membership),
    )


@member_router.get(
    "/bookings",
    response=responses({200: list[BookingOut]}),
    summary="My bookings",
    description=describe(
        MEMBER, "My own bookings, newest first, optionally by status. Paginated.", errors={403: NOT_A_MEMBER_403}
    ),
)
@paginate(Page)
def member_list_bookings(request, filters: BookingFilter = Query(...)):
    membership, _ = _member(request)
    return selectors.member_bookings(membership=membership, status=filters.status)


@member_router.get(
    "/bookings/{booking_id}",
    response=responses({200: BookingOut}),
    summary="One of my bookings",
    description=describe(
        MEMBER, "One booking with its payment status.", errors={403: NOT_A_MEMBER_403, 404: MEMBER_BOOKING_404}
    ),
)
def member_get_booking(request, booking_id: int = BookingId):
    membership, _ = _member(request)
    return selectors.member_booking(membership=membership, booking_id=booking_id)


@member_router.post(
    "/bookings/{booking_id}/cancel",
    response=responses({200: BookingOut}, 409),
    summary="Cancel my booking",
    description=describe(
        MEMBER,
        "Seats return and promote the waitlist. A paid booking is refunded in full until the event's "
        "`full_refund_hours` before the start, by `late_refund_percent` after.",
        errors={
            400: "`event_started`: the event has already started.",
            403: NOT_A_MEMBER_403,
            404: MEMBER_BOOKING_404,
            409: "`booking_not_cancellable`: the booking is already cancelled, expired, attended or a no-show.",
        },
    ),
)
def member_cancel_booking(request, booking_id: int = BookingId):
    membership, _ = _member(request)
    bookings.booking_cancel(membership=membership, booking_id=booking_id)
    return selectors.member_booking(membership=membership, booking_id=booking_id)


@member_router.post(
    "/bookings/{booking_id}/payment",
    response=responses({200: PaymentOut}, 409, 503),
    summary="Pay for my held booking",
    description=describe(
        MEMBER,
        "The Stripe PaymentIntent of a held booking (created once, then reused), e.g. after a waitlist promotion.",
        errors={
            403: NOT_A_MEMBER_403,
            404: MEMBER_BOOKING_404,
            409: "`booking_not_payable`: nothing is due (free, paid, expired or cancelled).",
            503: "`payment_provider_unavailable`: Stripe could not be reached; retry shortly.",
        },
    ),
)
def member_pay_booking(request, booking_id: int = BookingId):
    membership, _ = _member(request)
    info = payments.booking_payment_start(membership=membership, booking_id=booking_id)
    return PaymentOut(payment_intent_id=info.id, client_secret=info.client_secret, status=info.status)


@member_router.post(
    "/bookings/{booking_id}/standin-payment",
    response=responses({200: BookingOut}, 409, 503),
    summary="Pay my held booking with the local payment stand-in (demos only)",
    description=describe(
        MEMBER,
        "Only when the server runs without Stripe credentials (no `STRIPE_SECRET_KEY`) and not in production: the "
        "local stand-in (not Stripe; nothing is charged) completes the payment of my held booking, as if Stripe's "
        "webhook reported `payment_intent.succeeded`.",
        errors={
            403: NOT_A_MEMBER_403,
            404: ["`payment_standin_disabled`: Stripe is configured or production mode is on.", MEMBER_BOOKING_404],
            409: "`booking_not_payable`: nothing is due on this booking.",
            503: "`payment_provider_unavailable`: the stand-in could not complete the payment; retry shortly.",
        },
    ),
)
def member_standin_pay_booking(request, booking_id: int = BookingId):
    membership, _ = _member(request)
    payments.booking_standin_pay(membership=membership, booking_id=booking_id)
    return selectors.member_booking(membership=membership, booking_id=booking_id)


# ----------------------------------------------------------------------------------------------------- stripe


@webhook_router.post(
    "/stripe/webhook",
    auth=None,
    response={200: WebhookOut, 400: ErrorOut, 429: ErrorOut, 503: ErrorOut},
    summary="Stripe webhook",
    description=describe(
        "Stripe, signing with the webhook secret (no other credentials).",
        "The `Stripe-Signature` header is verified against the raw body. Each event id is applied once "
        "(duplicates answer 200 with outcome `duplicate`). An error changes nothing.",
        errors={
            400: [
                "`invalid_signature`: the `Stripe-Signature` header is missing or does not match the body.",
                "`invalid_event`: the body is not a Stripe event.",
            ],
            503: "`webhook_not_configured`: no signing secret (`STRIPE_WEBHOOK_SECRET`; required in production).",
        },
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}},
        }
    },
)
@csrf_exempt
def stripe_webhook(request):
    if not settings.STRIPE_WEBHOOK_SECRET:
        raise ServiceUnavailable(
            "The Stripe webhook is disabled: no signing secret is configured (STRIPE_WEBHOOK_SECRET).",
            code="webhook_not_configured",
        )
    try:
        event = stripe.Webhook.construct_event(
            request.body, request.headers.get("Stripe-Signature", ""), settings.STRIPE_WEBHOOK_SECRET
        )
        event_id, event_type = event["id"], event["type"]
        data_object = json.loads(request.body)["data"]["object"]
        if not isinstance(event_id, str) or not isinstance(event_type, str) or not isinstance(data_object, dict):
            raise TypeError("unexpected event shape")
    except stripe.SignatureVerificationError as exc:
        raise BusinessRuleError("The Stripe signature is missing or invalid.", code="invalid_signature") from exc
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise BusinessRuleError("The body is not a Stripe event.", code="invalid_event") from exc
    outcome = payments.stripe_event_apply(event_id=event_id, event_type=event_type, data_object=data_object)
    return {"received": True, "outcome": outcome}


router.add_router("", partner_router)
router.add_router("", member_router)
router.add_router("", webhook_router)
