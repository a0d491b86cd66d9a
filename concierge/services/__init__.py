"""Concierge writes, one module per concept: requests (create, transitions, cancel, rate), assignment,
messages (replies and internal notes), sla (breach checks and escalation)."""
