import os, sys, json, time, cProfile, pstats

sys.path.insert(0, "/work/wt-ingest")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("API_THROTTLE_AUTH", "1000000/min")
import django

django.setup()
from django.test import Client
from accounts.services import api_key_create
from loyalty.models import Customer
from tests.factories import CustomerFactory

if Customer.objects.count() < 1000:
    Customer.objects.bulk_create(
        [Customer(external_id=f"C{n}", name="x", joined_at="2020-01-01T00:00:00Z") for n in range(1000)]
    )
_, key = api_key_create(name=f"p{time.time()}", scopes=["ingest"])
c = Client(headers={"X-API-Key": key})
run = str(int(time.time()))
CH = ["phone", "online", "store", "email", "social", "app"]
bodies = [
    json.dumps(
        {
            "rows": [
                {
                    "external_id": f"P{run}-{b}-{n}",
                    "customer_external_id": f"C{n % 1000}",
                    "channel": CH[n % 6],
                    "occurred_at": f"2025-{1 + n % 12:02d}-{1 + n % 28:02d}T{n % 24:02d}:{n % 60:02d}:00Z",
                    "kind": "bench",
                }
                for n in range(10000)
            ]
        }
    )
    for b in range(6)
]
r = c.post("/api/v1/ingest/interactions", bodies[0], content_type="application/json")
assert r.status_code == 200, r.content[:300]
pr = cProfile.Profile()
t = time.monotonic()
pr.enable()
for body in bodies[1:]:
    r = c.post("/api/v1/ingest/interactions", body, content_type="application/json")
    assert r.status_code == 200
pr.disable()
print("per batch", (time.monotonic() - t) / 5)
pstats.Stats(pr).sort_stats("cumulative").print_stats(45)
