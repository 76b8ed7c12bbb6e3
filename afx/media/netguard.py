"""Which addresses a fetch may connect to (SSRF protection, issue 4 / docs/architecture.md).

Refused unless the host is on the allow-list: loopback, private, link-local (cloud metadata
169.254.169.254 included), CGNAT 100.64/10, unspecified, multicast, reserved and other
non-global ranges, for IPv4 and IPv6 alike, including IPv4 wrapped in IPv6 (mapped,
6to4, NAT64, Teredo). The check is made on the address actually connected to, after DNS,
for every connection (so also after each redirect, and immune to DNS rebinding).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class BlockedURL(ValueError):
    """A URL afx will not fetch at all (file://, no host, credentials)."""


class BlockedAddress(OSError):
    def __init__(self, host: str, address: str, why: str) -> None:
        super().__init__(f"refusing to connect to {host} ({address}): {why} address; "
                         f"add it to fetch.allow_hosts in afx.yaml to allow it")
        self.host, self.address, self.why = host, address, why


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def classify(address: str) -> str:
    """"" for a public address, else why it is refused ("loopback", "private", ...)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "unparseable"
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            why = classify(str(inner))
            return f"{why} (in IPv6)" if why else ""
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local"  # fec0::/10: deprecated, but still routed inside some networks
    for attr, why in (("is_loopback", "loopback"), ("is_link_local", "link-local"),
                      ("is_unspecified", "unspecified"), ("is_multicast", "multicast"),
                      ("is_private", "private"), ("is_reserved", "reserved")):
        if getattr(ip, attr):
            return why
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "carrier-grade NAT"
    if not ip.is_global:
        return "non-global"
    return ""


@dataclass(frozen=True)
class Policy:
    allow_hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_config(cls, config: dict) -> Policy:
        hosts = (config.get("fetch") or {}).get("allow_hosts") or []
        return cls(frozenset(h.strip().strip("[]").lower() for h in hosts))

    def allowed_host(self, host: str) -> bool:
        return host.strip("[]").lower() in self.allow_hosts

    def check(self, host: str, address: str) -> None:
        if self.allowed_host(host):
            return
        why = classify(address)
        if why:
            raise BlockedAddress(host, address, why)

    def check_url(self, url: str) -> None:
        """The URL's own form: http(s) only, a host, no credentials. (Addresses: at connect.)"""
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError as exc:
            raise BlockedURL(f"not a valid URL ({exc})") from None
        if parts.scheme.lower() not in ("http", "https"):
            raise BlockedURL(f"only http:// and https:// URLs are fetched, not {parts.scheme or 'a bare path'}")
        if not host:
            raise BlockedURL("the URL has no host")
        if parts.username or parts.password:
            raise BlockedURL("credentials in URLs are refused")
