from ninja import Query, Router
from ninja.pagination import paginate

from accounts.models import Role
from core.auth import require_role, user_auth
from core.pagination import Page
from core.schemas import describe, responses
from loyalty.customers.schemas import CustomerDetailOut, CustomerFilters, CustomerOut, InteractionOut
from loyalty.customers.selectors import customer_detail, customer_list

router = Router(tags=["customers"], auth=user_auth)

READERS = (Role.PROGRAMME_MANAGER, Role.CONCIERGE_AGENT)
READERS_WHO = "programme managers and concierge agents (role `programme_manager` or `concierge_agent`)."


@router.get(
    "",
    response=responses({200: list[CustomerOut]}),
    summary="List customers",
    description=describe(
        READERS_WHO,
        "Filter by status, region and joining date; search by external id, email, name or phone. Paginated "
        "(limit/offset).",
    ),
)
@paginate(Page)
def list_customers(request, filters: Query[CustomerFilters]):
    require_role(request, *READERS)
    return customer_list(**filters.dict())


@router.get(
    "/{customer_id}",
    response=responses({200: CustomerDetailOut}),
    summary="Customer detail",
    description=describe(
        READERS_WHO,
        "The customer with revenue per month (last 12 months; money as plain decimals with 2 places and the "
        "currency beside them), channel mix over the last year and the 10 latest "
        "interactions.",
        errors={404: "`customer_not_found`: no customer with this id."},
    ),
)
def get_customer(request, customer_id: int):
    require_role(request, *READERS)
    detail = customer_detail(customer_id=customer_id)
    c = detail.customer
    return CustomerDetailOut(
        id=c.id,
        external_id=c.external_id,
        name=c.name,
        email=c.email,
        phone=c.phone,
        region=c.region,
        status=c.status,
        birth_year=c.birth_year,
        attributes=c.attributes,
        joined_at=c.joined_at,
        churned_at=c.churned_at,
        created_at=c.created_at,
        updated_at=c.updated_at,
        revenue_by_month=detail.revenue_by_month,
        revenue_total=detail.revenue_total,
        revenue_currency=detail.revenue_currency,
        channel_mix=detail.channel_mix,
        last_interactions=[InteractionOut.from_orm(i) for i in detail.last_interactions],
    )
