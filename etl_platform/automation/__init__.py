"""Automation: file sensors, retries of transient failures, and alerts (freshness is a table policy)."""
