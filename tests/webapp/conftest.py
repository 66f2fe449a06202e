import pytest
from django.test import Client


@pytest.fixture
def client(alice):
    """A browser logged in as alice (member of Team A)."""
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def tiny_llama(db):
    """A tiny random Llama registered as a base model (SFT and preference jobs)."""
    from django.conf import settings

    from jobs.services import base_model_register
    from tests.tiny_models import make_tiny_llama

    make_tiny_llama(settings.MODEL_ROOT / "tiny-llama")
    return base_model_register(name="tiny random Llama", source="local:tiny-llama")
