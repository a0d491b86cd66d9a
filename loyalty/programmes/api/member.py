"""The member's own view."""

from ninja import Router

from core.auth import request_user, user_auth
from core.schemas import responses
from loyalty.programmes.schemas import MyMembershipOut
from loyalty.programmes.selectors.programmes import member_view

router = Router(tags=["member"], auth=user_auth)


@router.get(
    "/membership",
    response=responses({200: MyMembershipOut}),
    summary="My membership",
    description="Role member, linked to an enrolled customer. Programme, tier and benefits, concierge allowance "
    "left this month, progress towards the next tier, next evaluation and any pending downgrade warning. "
    "Anyone without an active membership gets 404 `no_membership`.",
)
def my_membership(request):
    return member_view(request_user(request))
