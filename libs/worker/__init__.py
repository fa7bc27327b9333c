"""The runtime of the queue-consuming services: connect, consume, settle, drain, serve
health and metrics."""
