"""The operations of tsim-helper as methods, shared by the blocking and the asyncio client.

Each method builds one operation and hands it to ``self._one``, which the blocking client
runs at once and the asyncio client turns into a coroutine; the result is the operation's
result map without its ``op`` key. ``None`` arguments are left out (the helper's default).
"""


def _op(op_name, **fields):
    op = {"op": op_name}
    op.update({k: v for k, v in fields.items() if v is not None})
    return op


class Operations:
    """One method per operation family: namespaces, hosts, services, probes, network,
    status. ``call`` sends any list of operations."""

    # Status.
    def ping(self, delay_ms=None):
        return self._one(_op("ping", delay_ms=delay_ms))

    def status(self):
        return self._one(_op("status"))

    # Namespaces.
    def ns_create(self, name, tag=None, ipv6=None):
        return self._one(_op("ns_create", name=name, tag=tag, ipv6=ipv6))

    def ns_delete(self, name):
        return self._one(_op("ns_delete", name=name))

    def ns_list(self):
        return self._one(_op("ns_list"))

    # Hosts.
    def host_add(self, name, ip, router, router_if=None, secondaries=None, tag=None):
        return self._one(
            _op("host_add", name=name, ip=ip, router=router, router_if=router_if,
                secondaries=list(secondaries) if secondaries else None, tag=tag)
        )

    def host_delete(self, name):
        return self._one(_op("host_delete", name=name))

    def host_list(self):
        return self._one(_op("host_list"))

    def host_clean(self, tag=None, owner=None):
        return self._one(_op("host_clean", tag=tag, owner=owner))

    # Services.
    def svc_start(self, ns, ip, port, proto="tcp", tag=None):
        return self._one(_op("svc_start", ns=ns, ip=ip, port=port, proto=proto, tag=tag))

    def svc_stop(self, ns, ip, port, proto="tcp"):
        return self._one(_op("svc_stop", ns=ns, ip=ip, port=port, proto=proto))

    def svc_list(self):
        return self._one(_op("svc_list"))

    # Probes.
    def probe_tcp(self, ns, dst, port, src=None, message=None, timeout_ms=None):
        return self._one(_op("probe_tcp", ns=ns, dst=dst, port=port, src=src,
                             message=message, timeout_ms=timeout_ms))

    def probe_udp(self, ns, dst, port, src=None, message=None, timeout_ms=None):
        return self._one(_op("probe_udp", ns=ns, dst=dst, port=port, src=src,
                             message=message, timeout_ms=timeout_ms))

    def probe_ping(self, ns, dst, src=None, count=None, interval_ms=None, timeout_ms=None):
        return self._one(_op("probe_ping", ns=ns, dst=dst, src=src, count=count,
                             interval_ms=interval_ms, timeout_ms=timeout_ms))

    def probe_trace(self, ns, dst, src=None, mode=None, max_hops=None, timeout_ms=None,
                    port=None):
        return self._one(_op("probe_trace", ns=ns, dst=dst, src=src, mode=mode,
                             max_hops=max_hops, timeout_ms=timeout_ms, port=port))

    def probe_reach(self, sources, dst, ports, timeout_ms=None):
        return self._one(_op("probe_reach", **{"from": list(sources)}, dst=dst, ports=ports,
                             timeout_ms=timeout_ms))

    # The simulated network.
    def net_apply(self, topology, policy_tables=None):
        return self._one(_op("net_apply", topology=topology, policy_tables=policy_tables))

    def net_show(self):
        return self._one(_op("net_show"))

    def net_teardown(self):
        return self._one(_op("net_teardown"))

    # Firewall reads (counters before and after a test).
    def iptables_save(self, ns, table=None, counters=None):
        return self._one(_op("iptables_save", ns=ns, table=table, counters=counters))
