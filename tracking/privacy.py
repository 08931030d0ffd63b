"""Client-sent IP addresses: cut to their network before anything stores them.

The collector keeps no raw address: the request's own address and any address a client put in
an event's ``traits`` or ``context`` (keys named ip, ip_address, ipAddress, any case) are
truncated to their network (IPv4 /24, IPv6 /48); a value that is no address is dropped.
"""

from __future__ import annotations

import ipaddress
import re

import orjson

# Keys of client-sent IP addresses inside traits and context (compared lower-cased), and the
# same keys as orjson writes them: one search of an object's JSON tells whether to walk it.
IP_KEYS = frozenset({"ip", "ip_address", "ipaddress"})
IP_KEY_JSON = re.compile(rb'(?i)"ip(?:_?address)?":')


def scrub_ips(event: dict) -> None:
    """Truncate client-sent IP addresses in ``traits`` and ``context``, in place.

    Any key named ip (ip_address, ipAddress, any case) at any depth of the two: a valid address
    is cut to its network (:func:`anonymise_ip`), anything else is dropped. Nothing else is
    walked, and only objects whose JSON has such a key: most events carry none.
    """
    for name in ("traits", "context"):
        node = event.get(name)
        if node and type(node) in (dict, list) and IP_KEY_JSON.search(orjson.dumps(node)):
            _scrub_node(node)


def _scrub_node(root: dict | list) -> None:
    stack = [root]
    while stack:
        node = stack.pop()
        if type(node) is list:
            stack.extend(child for child in node if type(child) in (dict, list))
            continue
        found = [key for key in node if key.lower() in IP_KEYS]
        stack.extend(child for child in node.values() if type(child) in (dict, list))
        for key in found:
            value = node.pop(key)
            address = anonymise_ip(value) if type(value) is str else None
            if address:
                node[key] = address


def anonymise_ip(address: str | None) -> str | None:
    """Truncate an IP address (IPv4 to /24, IPv6 to /48) so no raw address is stored."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)
