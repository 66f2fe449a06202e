import pytest
from django.test import Client


@pytest.fixture
def client(alice):
    """A browser logged in as alice (member of Team A)."""
    client = Client()
    client.force_login(alice)
    return client
