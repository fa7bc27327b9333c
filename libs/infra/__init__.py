"""Infrastructure every process uses: settings, secrets at rest, PostgreSQL, RabbitMQ,
traces, logs, URL safety. Builds on libs.domain only."""
