"""The wire format of tsim-helper (protocol/PROTOCOL.md): 4-byte big-endian length, then one
MessagePack map with string keys."""

import struct

import msgpack

PROTOCOL = (1, 5)
HEADER = struct.Struct(">I")
#: The largest frame accepted before the handshake tells the helper's limit.
HANDSHAKE_MAX_FRAME = 64 * 1024

#: Operations that change nothing: after a lost connection they are sent again.
IDEMPOTENT = frozenset(
    {
        "ping", "status", "ns_list", "host_list", "svc_list", "net_show", "link_list",
        "addr_list", "route_list", "route_get", "rule_list", "sysctl_get", "iptables_save",
        "ipset_save", "probe_tcp", "probe_udp", "probe_ping", "probe_trace", "net_log",
    }
)


def encode(message):
    """One frame: the header and the MessagePack body of ``message`` (a dict)."""
    body = msgpack.packb(message, use_bin_type=True)
    return HEADER.pack(len(body)) + body


def decode(body):
    """The message in a frame's body."""
    message = msgpack.unpackb(body, raw=False, strict_map_key=True)
    if not isinstance(message, dict) or "type" not in message:
        raise ValueError("a frame that is not a map with a type")
    return message


def hello(client_name):
    """The first message of a connection."""
    return {"type": "hello", "protocol": list(PROTOCOL), "client": client_name}
