"""The operations of tsim-helper as methods, shared by the blocking and the asyncio client.

Each method builds one operation and hands it to ``self._one``, which the blocking client
runs at once and the asyncio client turns into a coroutine; the result is the operation's
result map without its ``op`` key (on :class:`~tsim_client.AsyncClient`, a coroutine of
it). ``None`` arguments are left out (the helper's default). Every method raises the
:class:`~tsim_client.HelperError` subclass of the helper's error code; the ones each
method names are those its callers usually handle.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional, Sequence


def _op(op_name: str, **fields: Any) -> dict:
    op = {"op": op_name}
    op.update({k: v for k, v in fields.items() if v is not None})
    return op


class Operations:
    """One method per operation family: namespaces, hosts, services, probes, network,
    status. ``call`` sends any list of operations."""

    def _one(self, op: dict) -> Any:  # pragma: no cover - provided by the clients
        raise NotImplementedError

    # Status.
    def ping(self, delay_ms: Optional[int] = None) -> Any:
        """``ping``: a no-op round trip, after ``delay_ms`` if given."""
        return self._one(_op("ping", delay_ms=delay_ms))

    def status(self) -> Any:
        """``status``: the helper's version, uptime, limits, objects and per-operation
        statistics."""
        return self._one(_op("status"))

    # Namespaces.
    def ns_create(self, name: str, tag: Optional[str] = None, ipv6: Optional[bool] = None) -> Any:
        """``ns_create``: a managed namespace. Raises ``AlreadyExists``, ``InvalidArgument``
        (a bad name), ``QuotaExceeded``."""
        return self._one(_op("ns_create", name=name, tag=tag, ipv6=ipv6))

    def ns_delete(self, name: str) -> Any:
        """``ns_delete``: deletes a managed namespace. Raises ``NotFound``, ``NotManaged``,
        ``PermissionDenied``."""
        return self._one(_op("ns_delete", name=name))

    def ns_list(self) -> Any:
        """``ns_list``: the managed namespaces."""
        return self._one(_op("ns_list"))

    # Hosts.
    def host_add(
        self,
        name: str,
        ip: str,
        router: str,
        router_if: Optional[str] = None,
        secondaries: Optional[Iterable[str]] = None,
        tag: Optional[str] = None,
        share: bool = False,
    ) -> Any:
        """``host_add``: a test host with address ``ip`` (``a.b.c.d/len``) behind ``router``.
        The same host asked again is ``reused``. With ``share`` (which needs ``tag``), a
        host of yours with the same address, router and secondaries, itself added with
        ``share``, is leased instead of refused: the answer's ``host.name`` is that host's,
        and ``shared`` is true; the host goes with its last lease (``host_delete(name,
        tag=...)`` or ``host_clean(tag=...)``). Raises ``Conflict`` (the name or the
        address taken otherwise), ``NotFound`` (the router), ``InvalidArgument``,
        ``QuotaExceeded``."""
        return self._one(
            _op("host_add", name=name, ip=ip, router=router, router_if=router_if,
                secondaries=list(secondaries) if secondaries else None, tag=tag,
                share=share or None)
        )

    def host_delete(self, name: str, tag: Optional[str] = None) -> Any:
        """``host_delete``: deletes a host; on a shared host, releases the lease ``tag``
        (the host goes with its last lease). Raises ``NotFound``, ``PermissionDenied``,
        ``Conflict`` (a shared host with several leases and no ``tag``)."""
        return self._one(_op("host_delete", name=name, tag=tag))

    def host_list(self) -> Any:
        """``host_list``: the hosts."""
        return self._one(_op("host_list"))

    def host_clean(self, tag: Optional[str] = None, owner: Optional[int] = None) -> Any:
        """``host_clean``: deletes the hosts with ``tag`` (or of ``owner``); a job's
        clean-up. Shared hosts lose the lease ``tag`` and go with their last lease; the
        answer's ``removed`` lists the hosts deleted, ``released`` the shared hosts kept."""
        return self._one(_op("host_clean", tag=tag, owner=owner))

    # Services.
    def svc_start(
        self, ns: str, ip: str, port: int, proto: str = "tcp", tag: Optional[str] = None
    ) -> Any:
        """``svc_start``: an echo service on ``ip``:``port`` inside ``ns``. Raises
        ``AlreadyExists`` (the port is taken), ``NotFound``, ``QuotaExceeded``."""
        return self._one(_op("svc_start", ns=ns, ip=ip, port=port, proto=proto, tag=tag))

    def svc_stop(self, ns: str, ip: str, port: int, proto: str = "tcp") -> Any:
        """``svc_stop``: stops an echo service. Raises ``NotFound``."""
        return self._one(_op("svc_stop", ns=ns, ip=ip, port=port, proto=proto))

    def svc_list(self) -> Any:
        """``svc_list``: the running echo services."""
        return self._one(_op("svc_list"))

    # Probes.
    def probe_tcp(
        self,
        ns: str,
        dst: str,
        port: int,
        src: Optional[str] = None,
        message: Optional[str] = None,
        timeout_ms: Optional[int] = None,
        explain: bool = False,
    ) -> Any:
        """``probe_tcp``: connects from ``ns`` to ``dst``:``port``, sends ``message`` and
        reads the echo; the result's ``status`` says how it went (a refused or timed-out
        probe is a result, not an error). With ``explain`` (since 1.5, IPv4 only), the
        result's ``explain`` lists, per router in path order, the firewall rules the probe's
        packets passed and their verdicts (its ``unsupported`` says why, when nothing could be
        traced). Raises ``NotFound``, ``InvalidArgument`` (``explain`` to an IPv6 address),
        ``Busy`` (every explain value taken)."""
        return self._one(_op("probe_tcp", ns=ns, dst=dst, port=port, src=src,
                             message=message, timeout_ms=timeout_ms,
                             explain=True if explain else None))

    def probe_udp(
        self,
        ns: str,
        dst: str,
        port: int,
        src: Optional[str] = None,
        message: Optional[str] = None,
        timeout_ms: Optional[int] = None,
        explain: bool = False,
    ) -> Any:
        """``probe_udp``: as :meth:`probe_tcp`, over UDP."""
        return self._one(_op("probe_udp", ns=ns, dst=dst, port=port, src=src,
                             message=message, timeout_ms=timeout_ms,
                             explain=True if explain else None))

    def probe_ping(
        self,
        ns: str,
        dst: str,
        src: Optional[str] = None,
        count: Optional[int] = None,
        interval_ms: Optional[int] = None,
        timeout_ms: Optional[int] = None,
        explain: bool = False,
    ) -> Any:
        """``probe_ping``: ICMP echo from ``ns``, with every reply and ICMP error. With
        ``explain``, as :meth:`probe_tcp`. Raises ``NotFound``, ``InvalidArgument`` (a
        count, interval or source out of range)."""
        return self._one(_op("probe_ping", ns=ns, dst=dst, src=src, count=count,
                             interval_ms=interval_ms, timeout_ms=timeout_ms,
                             explain=True if explain else None))

    def probe_trace(
        self,
        ns: str,
        dst: str,
        src: Optional[str] = None,
        mode: Optional[str] = None,
        max_hops: Optional[int] = None,
        timeout_ms: Optional[int] = None,
        port: Optional[int] = None,
        queries: Optional[int] = None,
        explain: bool = False,
    ) -> Any:
        """``probe_trace``: a traceroute from ``ns`` (``mode`` ``icmp`` or ``udp``), one hop
        per TTL; with ``queries`` (1-100), that many probes per hop, each hop then with
        ``sent`` and every answer in ``replies``; with ``explain``, as :meth:`probe_tcp`
        (the probes and the ICMP errors about them). Raises ``NotFound``,
        ``InvalidArgument``."""
        return self._one(_op("probe_trace", ns=ns, dst=dst, src=src, mode=mode, queries=queries,
                             max_hops=max_hops, timeout_ms=timeout_ms, port=port,
                             explain=True if explain else None))

    def probe_reach(
        self,
        sources: Sequence[str],
        dst: str,
        ports: str,
        timeout_ms: Optional[int] = None,
    ) -> Any:
        """``probe_reach``: the quick analysis: from each source host, whether each of
        ``ports`` (``22,80,443/tcp,53/udp``) of ``dst`` is reachable, with the verdict of the
        routers' firewalls. Raises ``NotFound``, ``InvalidArgument``, ``QuotaExceeded`` (too
        many jobs of this user at once)."""
        return self._one(_op("probe_reach", **{"from": list(sources)}, dst=dst, ports=ports,
                             timeout_ms=timeout_ms))

    # The simulated network.
    def net_apply(self, topology: Mapping[str, Any], policy_tables: Optional[bool] = None) -> Any:
        """``net_apply``: builds the network a topology document describes, or changes the
        one in place into it. Root or the admin group only (``PermissionDenied``); raises
        ``InvalidArgument`` for a document that does not check."""
        return self._one(_op("net_apply", topology=topology, policy_tables=policy_tables))

    def net_show(self) -> Any:
        """``net_show``: the applied network's document, warnings and time."""
        return self._one(_op("net_show"))

    def net_log(self, router: Optional[str] = None, after: Optional[int] = None,
                since_ms: Optional[int] = None, limit: Optional[int] = None) -> Any:
        """``net_log`` (protocol 1.4): what the routers' firewall LOG rules logged, oldest
        first, each entry's ``line`` as the kernel's LOG prints it; pass the answer's
        ``last`` as ``after`` to get only what came since. Raises ``NotFound`` for a router
        not in the applied network."""
        return self._one(_op("net_log", router=router, after=after, since_ms=since_ms,
                             limit=limit))

    def net_teardown(self) -> Any:
        """``net_teardown``: removes the network and everything on it. Root or the admin
        group only (``PermissionDenied``)."""
        return self._one(_op("net_teardown"))

    # Firewall reads (counters before and after a test).
    def iptables_save(
        self, ns: str, table: Optional[str] = None, counters: Optional[bool] = None
    ) -> Any:
        """``iptables_save``: the rules of ``ns`` as ``iptables-save`` prints them. Raises
        ``NotFound``, ``Unsupported`` (iptables is not installed on the helper's machine)."""
        return self._one(_op("iptables_save", ns=ns, table=table, counters=counters))
