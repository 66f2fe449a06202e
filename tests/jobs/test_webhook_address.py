"""Where a webhook goes (issue 18, row 10): the host is resolved once and the POST connects to the address that
was checked, so a name that resolves to a public address for the check and to the studio's own network a
moment later (DNS rebinding) reaches nothing inside; a host that resolves to nothing is refused when sending;
IPv6 forms that carry an internal IPv4 address (NAT64, 6to4, mapped, Teredo) are internal."""

import socket

import pytest

from jobs import notifications
from jobs.models import WebhookDelivery
from jobs.webhook_address import is_internal
from tests.jobs.test_notifications import admin, ended, receiver  # noqa: F401  (fixtures)

PUBLIC = "93.184.216.34"  # a public address; nothing answers it from this machine


@pytest.mark.parametrize(
    "address, internal",
    [
        ("64:ff9b::7f00:1", True),  # NAT64 form of 127.0.0.1
        ("64:ff9b::a00:5", True),  # NAT64 form of 10.0.0.5
        ("2002:7f00:1::", True),  # 6to4 form of 127.0.0.1
        ("2002:a9fe:a9fe::1", True),  # 6to4 form of 169.254.169.254 (cloud metadata)
        ("::ffff:10.0.0.1", True),  # IPv4-mapped
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", True),  # Teredo whose client is 10.0.0.1
        ("64:ff9b::808:808", False),  # NAT64 form of 8.8.8.8
        ("2002:808:808::", False),
        (PUBLIC, False),
        ("2606:4700::1111", False),
    ],
)
def test_ipv6_forms_of_internal_addresses_are_internal(address, internal):
    assert is_internal(address) is internal


def test_a_nat64_literal_is_refused_at_creation(admin, settings):  # noqa: F811
    settings.WEBHOOK_ALLOW_INTERNAL = False
    with pytest.raises(notifications.WebhookRefused, match="internal address"):
        notifications.webhook_create(actor=admin, url="http://[64:ff9b::a9fe:a9fe]/latest", events=["succeeded"])


def _resolver(monkeypatch, host: str, answers: list[str]) -> list[str]:
    """Make `host` resolve to answers[0], then answers[1], ... (the last one from then on); other names as usual.
    Returns the log of answers given."""
    real, given = socket.getaddrinfo, []

    def fake(name, *args, **kwargs):
        if name != host:
            return real(name, *args, **kwargs)
        address = answers[min(len(given), len(answers) - 1)]
        given.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, 0))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return given


def test_a_name_that_rebinds_to_an_internal_address_after_the_check_reaches_nothing_inside(
    admin,  # noqa: F811
    ended,  # noqa: F811
    receiver,  # noqa: F811
    settings,
    monkeypatch,
):
    port = receiver.server.server_address[1]
    url = f"http://rebind.example.test:{port}/hook"
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    given = _resolver(monkeypatch, "rebind.example.test", [PUBLIC, "127.0.0.1"])
    notifications.webhook_create(actor=admin, url=url, events=["succeeded"])  # public when checked
    given.clear()
    ended("succeeded")
    notifications.notifications_sweep()
    assert given == [PUBLIC]  # resolved once for the post, and that address used: no second lookup
    assert receiver.requests == []  # a second lookup would have reached the receiver on 127.0.0.1
    assert WebhookDelivery.objects.get().attempts == 1


def test_the_post_goes_to_the_checked_address_with_the_hosts_name(admin, ended, receiver, settings, monkeypatch):  # noqa: F811
    port = receiver.server.server_address[1]
    _resolver(monkeypatch, "hooks.example.test", ["127.0.0.1"])
    notifications.webhook_create(actor=admin, url=f"http://hooks.example.test:{port}/hook", events=["succeeded"])
    ended("succeeded")
    assert notifications.notifications_sweep()["delivered"] == 1
    [request] = receiver.requests
    assert request["headers"]["Host"] == f"hooks.example.test:{port}"


def test_a_host_that_does_not_resolve_is_refused_when_sending(admin, ended, receiver, settings, monkeypatch):  # noqa: F811
    settings.WEBHOOK_ALLOW_INTERNAL = False
    notifications.webhook_create(actor=admin, url="https://gone.invalid/hook", events=["succeeded"])
    ended("succeeded")
    assert notifications.notifications_sweep()["retrying"] == 1
    assert "does not resolve" in WebhookDelivery.objects.get().last_error


def test_every_checked_address_is_tried_in_turn(admin, ended, receiver, monkeypatch):  # noqa: F811
    port = receiver.server.server_address[1]
    real = socket.getaddrinfo

    def two(name, *args, **kwargs):  # the first address answers nothing (the receiver listens on 127.0.0.1 only)
        if name != "two.example.test":
            return real(name, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0)) for a in ("127.0.0.2", "127.0.0.1")]

    monkeypatch.setattr(socket, "getaddrinfo", two)
    notifications.webhook_create(actor=admin, url=f"http://two.example.test:{port}/hook", events=["succeeded"])
    ended("succeeded")
    assert notifications.notifications_sweep()["delivered"] == 1 and len(receiver.requests) == 1
