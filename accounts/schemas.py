from datetime import datetime

from ninja import Schema
from pydantic import Field

from accounts.models import ApiKey


class ApiKeyIn(Schema):
    name: str = Field(min_length=1, max_length=100, description="Who uses the key, e.g. 'CRM nightly feed'.")
    scopes: list[ApiKey.Scope] = Field(min_length=1, description="What the key may do.")


class ApiKeyOut(Schema):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreatedOut(ApiKeyOut):
    secret: str = Field(description="The full key. Shown once; only its hash is stored.")
