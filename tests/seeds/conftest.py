"""The seed pages' examples against the whole platform as real subprocesses (the e2e stack)."""

from tests.e2e.conftest import api_client, stack, stack_env  # noqa: F401
