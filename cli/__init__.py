"""The `hookpost` command: above the services, the one place that starts each of them."""
