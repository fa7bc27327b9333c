-- The W3C trace context (`{"traceparent": …, "tracestate": …}`) of the request that stored an
-- event, so the outbox relay's later publish continues the same trace. NULL: no trace.
ALTER TABLE events ADD COLUMN IF NOT EXISTS trace_context jsonb;
