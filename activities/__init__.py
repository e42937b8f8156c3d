"""Temporal activities: every side effect of a campaign (database, channels, clock)."""
