"""Which IP addresses a fetch on a stranger's behalf may reach: public unicast, nothing else.

An explicit deny list, from the IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890
and its updates), plus multicast and the IPv4 reserved block. Deliberately not `ipaddress`'s
`is_global`: its answer depends on the interpreter (Python 3.11.7 calls 192.0.0.8-192.0.0.169
and the deprecated site-local fec0::/10 public), and a server-side request forgery defence must
not change with a patch release. Whole registry blocks are denied even where a sub-block is
marked globally reachable (192.0.0.9/32, 2001:1::1/128, AS112): no client document lives there.

IPv6 forms that carry an IPv4 address are judged by that IPv4 address: IPv4-mapped
(::ffff:0:0/96), the NAT64 well-known prefix (64:ff9b::/96, RFC 6052: DNS64 answers with it on
IPv6-only hosts) and 6to4 (2002::/16, RFC 3056). Other IPv6 space outside 2000::/3 (the only
block IANA allocates as global unicast) is refused.
"""

from __future__ import annotations

import ipaddress

# IANA IPv4 Special-Purpose Address Registry, every entry, plus multicast (RFC 5771).
DENIED_IPV4: tuple[ipaddress.IPv4Network, ...] = tuple(
    ipaddress.IPv4Network(block)
    for block in (
        "0.0.0.0/8",  # "this network" (RFC 791)
        "10.0.0.0/8",  # private (RFC 1918)
        "100.64.0.0/10",  # shared address space, carrier-grade NAT (RFC 6598)
        "127.0.0.0/8",  # loopback (RFC 1122)
        "169.254.0.0/16",  # link-local, cloud metadata services (RFC 3927)
        "172.16.0.0/12",  # private (RFC 1918)
        "192.0.0.0/24",  # IETF protocol assignments (RFC 6890), DS-Lite, NAT64 discovery, PCP/TURN anycast
        "192.0.2.0/24",  # TEST-NET-1 (RFC 5737)
        "192.31.196.0/24",  # AS112-v4 (RFC 7535)
        "192.52.193.0/24",  # AMT (RFC 7450)
        "192.88.99.0/24",  # deprecated 6to4 relay anycast (RFC 7526)
        "192.168.0.0/16",  # private (RFC 1918)
        "192.175.48.0/24",  # direct delegation AS112 service (RFC 7534)
        "198.18.0.0/15",  # benchmarking (RFC 2544)
        "198.51.100.0/24",  # TEST-NET-2 (RFC 5737)
        "203.0.113.0/24",  # TEST-NET-3 (RFC 5737)
        "224.0.0.0/4",  # multicast (RFC 5771)
        "240.0.0.0/4",  # reserved (RFC 1112), including 255.255.255.255 limited broadcast
    )
)

# IANA IPv6 Special-Purpose Address Registry, every entry not handled as an IPv4 carrier above,
# plus the non-global blocks of the IPv6 Address Space registry that lie inside 2000::/3 or that
# a reader would look for here (ULA, link-local, site-local, multicast).
DENIED_IPV6: tuple[ipaddress.IPv6Network, ...] = tuple(
    ipaddress.IPv6Network(block)
    for block in (
        "::/128",  # unspecified (RFC 4291)
        "::1/128",  # loopback (RFC 4291)
        "::/96",  # IPv4-compatible, deprecated (RFC 4291 §2.5.5.1)
        "::ffff:0:0:0/96",  # IPv4-translated (RFC 2765)
        "64:ff9b:1::/48",  # local-use IPv4/IPv6 translation (RFC 8215)
        "100::/64",  # discard-only (RFC 6666)
        "100:0:0:1::/64",  # dummy prefix (RFC 9780)
        "2001::/23",  # IETF protocol assignments (RFC 2928): Teredo, benchmarking, ORCHID, AMT, AS112...
        "2001:db8::/32",  # documentation (RFC 3849)
        "2620:4f:8000::/48",  # direct delegation AS112 service (RFC 7534)
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # segment routing SIDs (RFC 9602)
        "fc00::/7",  # unique local (RFC 4193)
        "fe80::/10",  # link-local (RFC 4291)
        "fec0::/10",  # site-local, deprecated (RFC 3879)
        "ff00::/8",  # multicast (RFC 4291)
    )
)

GLOBAL_UNICAST_IPV6 = ipaddress.IPv6Network("2000::/3")
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")  # RFC 4291 §2.5.5.2
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 §2.1
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")  # RFC 3056 §2


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, NAT64 or 6to4 address reaches, if it is one."""
    value = int(ip)
    if ip in _MAPPED or ip in _NAT64:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if ip in _SIX_TO_FOUR:
        return ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF)
    return None


def is_public_address(address: str) -> bool:
    """True only for a public unicast address; anything unparsable or scoped is not."""
    if "%" in address:
        return False  # a zone index (fe80::1%eth0) means a link-scoped address
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        carried = embedded_ipv4(ip)
        if carried is not None:
            return _public_ipv4(carried)
        return ip in GLOBAL_UNICAST_IPV6 and not any(ip in block for block in DENIED_IPV6)
    return _public_ipv4(ip)


def _public_ipv4(ip: ipaddress.IPv4Address) -> bool:
    return not any(ip in block for block in DENIED_IPV4)
