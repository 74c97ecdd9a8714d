"""Automation: file sensors, retries of transient failures, alerts and freshness."""
