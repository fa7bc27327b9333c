"""PostgreSQL access: the pool, JSON codecs and versioned migrations."""
