"""Where webhooks may point: the check of a URL, and the API that refuses what it refuses.

The check's unit tests resolve literal addresses with the real ``socket.getaddrinfo`` (it
reads odd spellings such as ``2130706433`` as the kernel would) and names through a fake
``getaddrinfo``; the API tests fake the module's resolver instead.
"""

from __future__ import annotations

import dataclasses
import socket

import pytest
from sqlalchemy import func, select

from server.alerts import targets
from server.alerts.targets import TargetRefused, UnresolvedHost, check_target
from server.extensions import db
from server.models import AuditEntry, Webhook
from tests.factories import Api
from tests.support.alerts import allow_webhook_hosts, fake_dns
from tests.support.api import assert_problem, in_app

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"

# Literal addresses, as staff might type them or an attacker might spell them.
REFUSED_LITERALS = [
    "http://169.254.169.254/latest/meta-data/",  # the cloud's metadata service
    "http://127.0.0.1:8400/hooks",
    "http://[::1]:22/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",  # carrier-grade NAT
    "http://198.18.0.1/",  # benchmarking
    "http://192.0.2.1/",  # documentation
    "http://0.0.0.0/",
    "http://0/",
    "http://[::]/",
    "http://224.0.0.1/",  # multicast
    "http://[ff02::1]/",
    "http://240.0.0.1/",  # reserved
    "http://255.255.255.255/",
    "http://2130706433/",  # 127.0.0.1 as one decimal number
    "http://0x7f.1/",
    "http://127.1/",
    "http://017700000001/",  # octal
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped IPv6
    "http://[::ffff:169.254.169.254]/",
    "http://[::127.0.0.1]/",  # IPv4-compatible (deprecated)
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[fd12:3456::1]/",
    "http://[fec0::1]/",  # site-local
    "https://127.0.0.1/",
]

# Names and what a fake DNS answers for them.
NAMES = {
    "public.example": [PUBLIC_V4],
    "dual.example": [PUBLIC_V4, PUBLIC_V6],
    "intranet.example": ["10.1.2.3"],
    "metadata.example": ["169.254.169.254"],
    "mixed.example": [PUBLIC_V4, "127.0.0.1"],  # one bad answer is enough
    "mapped.example": ["::ffff:10.0.0.1"],
    "scoped.example": ["fe80::1%eth0"],
    "records.police.internal": ["10.20.30.40"],
}


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """``getaddrinfo`` answers NAMES; literal addresses still go to the real one."""
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: int, *args: object, **kwargs: object) -> list:
        if host not in NAMES:
            return real(host, port, *args, **kwargs)
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in NAMES[host]
        ]

    monkeypatch.setattr(targets.socket, "getaddrinfo", getaddrinfo)


# The check ------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", REFUSED_LITERALS)
def test_a_literal_address_that_is_not_public_is_refused(url: str) -> None:
    with pytest.raises(TargetRefused, match="not a public address") as refused:
        check_target(url)
    assert not isinstance(refused.value, UnresolvedHost)


@pytest.mark.parametrize(
    "name", ["intranet.example", "metadata.example", "mixed.example", "mapped.example"]
)
def test_a_name_resolving_to_any_address_that_is_not_public_is_refused(dns, name: str) -> None:
    with pytest.raises(TargetRefused, match=f"{name} resolves to .* not a public address"):
        check_target(f"https://{name}/hook")


def test_a_scoped_link_local_answer_is_refused(dns) -> None:
    with pytest.raises(TargetRefused, match="fe80::1"):
        check_target("https://scoped.example/")


def test_a_public_name_passes_with_the_address_to_connect_to(dns) -> None:
    target = check_target("https://Public.Example./alerts/in?token=1#frag")
    assert target == targets.Target("https", "public.example", 443, "/alerts/in?token=1", PUBLIC_V4)
    assert check_target("http://dual.example:8080").address == PUBLIC_V4
    assert check_target("http://dual.example:8080").path == "/"


@pytest.mark.parametrize(
    ("url", "address"),
    [(f"http://{PUBLIC_V4}/", PUBLIC_V4), (f"https://[{PUBLIC_V6}]:8443/x", PUBLIC_V6)],
)
def test_a_public_literal_address_passes(url: str, address: str) -> None:
    assert check_target(url).address == address


def test_an_allowed_host_passes_despite_its_address_and_allows_no_other(dns) -> None:
    allowed = {"records.police.internal"}
    target = check_target("https://records.police.internal/alerts", allowed)
    assert (target.host, target.address) == ("records.police.internal", "10.20.30.40")
    with pytest.raises(TargetRefused):
        check_target("https://intranet.example/", allowed)
    with pytest.raises(TargetRefused):
        check_target("http://10.20.30.40/", allowed)  # the address itself is not allowed


def test_a_name_that_does_not_resolve_is_refused_as_unresolved(dns) -> None:
    with pytest.raises(UnresolvedHost, match="does not resolve"):
        check_target("https://nowhere.invalid/")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://public.example/", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("http:///path-only", "no host"),
        ("http://public.example:99999/", "malformed"),
    ],
)
def test_only_http_urls_with_a_host_are_targets(dns, url: str, why: str) -> None:
    with pytest.raises(TargetRefused, match=why):
        check_target(url)


# The API --------------------------------------------------------------------------------------


def webhooks_stored(app) -> tuple[int, int]:
    """How many webhooks and ``webhook.create`` audit entries exist."""
    with in_app(app):
        hooks = db.session.scalar(select(func.count()).select_from(Webhook))
        audited = db.session.scalar(
            select(func.count()).where(AuditEntry.action == "webhook.create")
        )
        return hooks, audited


def refused_url(app, world, url: str) -> dict:
    """The 422 answered for ``url``; its ``errors`` member."""
    answer = Api(app.test_client(), "staff_a").post(
        f"/communities/{world.a}/webhooks", json={"url": url}
    )
    body = assert_problem(answer, 422)
    assert list(body["errors"]) == ["url"], body
    return body


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:8400/hooks",
        "http://[::1]:22/",
        "http://10.0.0.1/",
        "http://2130706433/",
        "http://017700000001/",
        "http://0/",
        "https://localhost/",
    ],
)
def test_creating_a_webhook_to_a_private_target_is_refused(app, world, url: str) -> None:
    body = refused_url(app, world, url)
    assert "not a public address" in body["errors"]["url"][0]
    assert "not a public address" in body["detail"]
    assert webhooks_stored(app) == (0, 0)


@pytest.mark.parametrize("url", ["http://0x7f.1/", "http://[::ffff:127.0.0.1]/", "http://127.1/"])
def test_odd_spellings_of_loopback_are_refused(app, world, url: str) -> None:
    refused_url(app, world, url)  # by the schema or by the check: never stored
    assert webhooks_stored(app) == (0, 0)


def test_a_name_resolving_to_a_private_address_is_refused(app, world, monkeypatch) -> None:
    fake_dns(monkeypatch, {"hooks.rebind.example": ["10.0.0.7"]})
    body = refused_url(app, world, "https://hooks.rebind.example/alerts")
    assert body["errors"]["url"] == [
        "hooks.rebind.example resolves to 10.0.0.7, which is not a public address (loopback, "
        "private, link-local or reserved); webhooks may only point to the internet."
    ]
    body = refused_url(app, world, "https://nowhere.example/alerts")
    assert "does not resolve" in body["errors"]["url"][0]
    assert webhooks_stored(app) == (0, 0)


def test_an_allowed_host_may_be_private(app, world, monkeypatch) -> None:
    fake_dns(
        monkeypatch, {"records.police.internal": ["10.20.30.40"], "other.internal": ["10.9.9.9"]}
    )
    allow_webhook_hosts(app, monkeypatch, ["records.police.internal"])
    staff = Api(app.test_client(), "staff_a")
    made = staff.post(
        f"/communities/{world.a}/webhooks", json={"url": "https://records.police.internal/in"}
    )
    assert made.status_code == 201, made.json
    refused_url(app, world, "https://other.internal/in")
    assert webhooks_stored(app) == (1, 1)


def test_production_still_requires_https(app, world, monkeypatch) -> None:
    fake_dns(monkeypatch, {"hooks.example": [PUBLIC_V4]})
    settings = dataclasses.replace(app.config["SETTINGS"], env="production")
    monkeypatch.setitem(app.config, "SETTINGS", settings)
    body = refused_url(app, world, "http://hooks.example/in")
    assert body["errors"]["url"] == ["The URL must be https:// in production."]
    assert webhooks_stored(app) == (0, 0)
