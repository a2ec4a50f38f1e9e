"""What the tests share: loopback servers (PLC, PDS, Jetstream, Redis), firehose events and their
expected tables, indexed feed rows, test identities, and the stores. The root conftest registers the
fixtures of these modules once (`pytest_plugins`); tests import only helpers from here."""
