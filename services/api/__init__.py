"""The HTTP API: every front door, the event ingest and the outbox relay."""
