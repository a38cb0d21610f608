"""Fake providers for tests: local servers speaking the real providers' wire formats
(tests/fakes/providers.py). Engine tests may reuse the fixtures by importing them into
their conftest: `from tests.fakes.providers import whatsapp_server, _whatsapp_fake`."""
