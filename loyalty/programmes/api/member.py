"""The member's own view."""

from ninja import Router

from core.auth import user_auth
from core.schemas import describe, responses
from loyalty.programmes.schemas import MyMembershipOut
from loyalty.programmes.selectors.members import member_context
from loyalty.programmes.selectors.programmes import member_view

router = Router(tags=["member"], auth=user_auth)


@router.get(
    "/membership",
    response=responses({200: MyMembershipOut}),
    summary="My membership",
    description=describe(
        "members: users with the member role linked to an enrolled customer; anyone else gets the 404.",
        "Programme, tier and benefits, concierge allowance left this month, progress towards the next tier, next "
        "evaluation and any pending downgrade warning.",
        errors={404: "`no_membership`: not an active member (no member role, no linked customer, or control group)."},
    ),
)
def my_membership(request):
    member = member_context(request)
    return member_view(member.user, member=member)
