"""Loyalty API: each domain's routers, mounted under /api/v1/."""

from ninja import Router

from loyalty.customers import api as customers
from loyalty.ingestion import api as ingest
from loyalty.programmes.api import member, programmes
from loyalty.retention import api as retention
from loyalty.segmentation.api import scoring, segments

router = Router()
router.add_router("/ingest", ingest.router)
router.add_router("/customers", customers.router)
router.add_router("/scoring", scoring.router)
router.add_router("/segments", segments.router)
router.add_router("/programmes", programmes.router)
router.add_router("/me", member.router)
router.add_router("/retention", retention.router)
router.add_router("/ingest/outcomes", retention.ingest_router)
