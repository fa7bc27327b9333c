"""Everything that names or shapes RabbitMQ traffic lives in this package."""
