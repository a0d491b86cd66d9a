"""Ninja schemas of the loyalty app, one module per area."""
