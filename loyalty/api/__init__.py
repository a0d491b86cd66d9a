"""Loyalty API: one router per audience, each in its own module."""

from ninja import Router

from loyalty.api import customers, ingest, member, programmes, retention, scoring, segments

router = Router()
router.add_router("/ingest", ingest.router)
router.add_router("/customers", customers.router)
router.add_router("/scoring", scoring.router)
router.add_router("/segments", segments.router)
router.add_router("/programmes", programmes.router)
router.add_router("/me", member.router)
router.add_router("/retention", retention.router)
router.add_router("/ingest/outcomes", retention.ingest_router)
