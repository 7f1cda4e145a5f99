"""The webhook address policy: global unicast only, and every refusal names its range."""

from __future__ import annotations

import ipaddress

import pytest

from schemas.addresses import Refusal, host_refusal, is_allowed, parse_address, refusal

REFUSED = [
    # (address, the range it must be refused as)
    ("0.0.0.0", "0.0.0.0/8"),
    ("0.1.2.3", "0.0.0.0/8"),
    ("10.1.2.3", "10.0.0.0/8"),
    ("100.64.0.1", "100.64.0.0/10"),
    ("100.127.255.254", "100.64.0.0/10"),
    ("127.0.0.1", "127.0.0.0/8"),
    ("169.254.169.254", "169.254.0.0/16"),
    ("172.16.0.1", "172.16.0.0/12"),
    ("172.31.255.255", "172.16.0.0/12"),
    ("192.0.0.9", "192.0.0.0/24"),
    ("192.0.2.1", "192.0.2.0/24"),
    ("192.88.99.1", "192.88.99.0/24"),
    ("192.168.0.1", "192.168.0.0/16"),
    ("198.18.0.1", "198.18.0.0/15"),
    ("198.19.255.255", "198.18.0.0/15"),
    ("198.51.100.7", "198.51.100.0/24"),
    ("203.0.113.7", "203.0.113.0/24"),
    ("224.0.0.1", "224.0.0.0/4"),
    ("239.255.255.250", "224.0.0.0/4"),
    ("240.0.0.1", "240.0.0.0/4"),
    ("255.255.255.255", "255.255.255.255/32"),
    ("::", "::/128"),
    ("::1", "::1/128"),
    ("64:ff9b:1::a00:1", "64:ff9b:1::/48"),
    ("100::1", "100::/64"),
    ("2001::1", "2001::/32"),  # Teredo
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001::/32"),
    ("2001:10::1", "2001::/23"),
    ("2001:db8::1", "2001:db8::/32"),
    ("2002::1", "2002::/16"),
    ("2002:c0a8:101::1", "2002::/16"),  # 6to4 of 192.168.1.1
    ("2002:808:808::1", "2002::/16"),  # 6to4 of a public address: still refused
    ("3fff::1", "3fff::/20"),
    ("5f00::1", "5f00::/16"),
    ("fc00::1", "fc00::/7"),
    ("fd12:3456::1", "fc00::/7"),
    ("fe80::1", "fe80::/10"),
    ("fe80::1%eth0", "fe80::/10"),
    ("fec0::1", "fec0::/10"),
    ("ff02::1", "ff00::/8"),
    ("ff0e::1", "ff00::/8"),
    ("4000::1", "outside 2000::/3"),
    ("::2:0:0:1", "outside 2000::/3"),
]

EMBEDDED = [
    # (IPv6 address, the IPv4 it embeds, the IPv4 range it must be refused as)
    ("::ffff:127.0.0.1", "127.0.0.1", "127.0.0.0/8"),
    ("::ffff:10.0.0.1", "10.0.0.1", "10.0.0.0/8"),
    ("::ffff:100.64.0.1", "100.64.0.1", "100.64.0.0/10"),
    ("::ffff:169.254.169.254", "169.254.169.254", "169.254.0.0/16"),
    ("::127.0.0.1", "127.0.0.1", "127.0.0.0/8"),  # IPv4-compatible (deprecated)
    ("::192.168.1.1", "192.168.1.1", "192.168.0.0/16"),
    ("64:ff9b::127.0.0.1", "127.0.0.1", "127.0.0.0/8"),  # NAT64 well-known prefix
    ("64:ff9b::10.0.0.1", "10.0.0.1", "10.0.0.0/8"),
    ("64:ff9b::100.64.0.1", "100.64.0.1", "100.64.0.0/10"),
    ("64:ff9b::224.0.0.1", "224.0.0.1", "224.0.0.0/4"),
]

ALLOWED = [
    "8.8.8.8",
    "93.184.215.14",
    "1.1.1.1",
    "100.63.255.255",  # just below shared address space
    "100.128.0.0",  # just above it
    "198.17.255.255",
    "198.20.0.0",
    "223.255.255.255",
    "2001:4860:4860::8888",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "2001:200::1",  # just past 2001::/23
    "::ffff:8.8.8.8",  # judged by the public IPv4 it embeds
    "64:ff9b::8.8.8.8",
]


@pytest.mark.parametrize(("address", "network"), REFUSED)
def test_each_special_range_is_refused_and_named(address: str, network: str) -> None:
    found = refusal(address)
    assert found is not None, address
    assert found.network == network
    assert found.embedded is None
    assert network in str(found) and found.name in str(found)


@pytest.mark.parametrize(("address", "v4", "network"), EMBEDDED)
def test_an_embedded_ipv4_address_is_judged_by_itself(address: str, v4: str, network: str) -> None:
    found = refusal(address)
    assert found is not None, address
    assert (found.embedded, found.network) == (v4, network)
    assert f"embeds {v4}" in str(found)


@pytest.mark.parametrize("address", ALLOWED)
def test_global_unicast_addresses_are_allowed(address: str) -> None:
    assert refusal(address) is None
    assert is_allowed(address)


def test_address_objects_are_judged_like_their_text() -> None:
    assert refusal(ipaddress.ip_address("100.64.0.1")) == refusal("100.64.0.1")
    assert refusal(ipaddress.IPv6Address("fe80::1%eth0")) is not None
    assert is_allowed(ipaddress.ip_address("8.8.8.8"))


def test_the_message_reads_as_a_sentence() -> None:
    shared = "100.64.0.1 is in 100.64.0.0/10 (shared address space (carrier-grade NAT))"
    assert str(refusal("100.64.0.1")) == shared
    assert refusal("127.0.0.1") == Refusal("127.0.0.1", "127.0.0.0/8", "loopback")


def test_a_scope_id_is_dropped_and_garbage_is_a_value_error() -> None:
    assert parse_address("fe80::1%eth0") == ipaddress.IPv6Address("fe80::1")
    with pytest.raises(ValueError):
        parse_address("example.com")
    with pytest.raises(ValueError):
        refusal("999.1.1.1")


def test_every_ipv4_address_python_calls_not_global_is_refused() -> None:
    # Sample each /8 at a few offsets: the table must agree with is_global wherever is_global refuses.
    for first in range(256):
        for rest in (0x000001, 0x40_0001, 0x80_0001, 0xFF_FFFE):
            address = ipaddress.IPv4Address((first << 24) | rest)
            if not address.is_global:
                assert refusal(address) is not None, address


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "LOCALHOST.",
        "api.localhost",
        "printer.local",
        "router.home.arpa",
        "metadata.google.internal",
        "host.invalid",
        "foo.test",
        "www.example",
        "metadata",  # a single label resolves through the search list
        "kafka",
    ],
)
def test_special_use_names_are_refused(host: str) -> None:
    reason = host_refusal(host)
    assert reason is not None and host in reason


@pytest.mark.parametrize(
    "host", ["example.com", "hooks.slack.com", "localhost.example.com", "127.0.0.1", "::1"]
)
def test_ordinary_names_and_ip_literals_pass_the_name_check(host: str) -> None:
    assert host_refusal(host) is None
