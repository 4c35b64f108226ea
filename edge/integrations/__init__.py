"""Outbound integrations, kept per environment: webhooks (and their outbox)."""
