"""The Python client against the real helper: every operation family and its errors, the
asyncio client, threads, timeouts, a helper restart, and a wrong protocol version."""

import asyncio
import socket
import threading
import time

import msgpack
import pytest

from tsim_client import (
    AlreadyExists,
    AsyncClient,
    Client,
    ConnectionLost,
    HelperError,
    NotFound,
    ProtocolVersionError,
    Timeout,
)
from tsim_client import _wire


def test_handshake_ping_status(helper):
    with Client(helper.socket) as c:
        assert c.welcome["protocol"] == [1, 5]
        assert c.welcome["peer"]["uid"] == 0
        assert c.ping() == {}
        status = c.status()
        assert status["hidden_ns"] == helper.ns("hidden")
        assert status["requests"] >= 1


def test_namespaces_and_their_errors(helper):
    with Client(helper.socket) as c:
        a = helper.ns("a")
        assert c.ns_create(a, tag="job-1") == {"name": a}
        names = [n["name"] for n in c.ns_list()["namespaces"]]
        assert a in names
        with pytest.raises(AlreadyExists) as e:
            c.ns_create(a)
        assert (e.value.code, e.value.op_index) == ("already_exists", 0)
        assert a in e.value.message
        # An atomic request is undone as a whole; the error names the failing operation.
        b = helper.ns("b")
        with pytest.raises(HelperError) as e:
            c.call([{"op": "ns_create", "name": b}, {"op": "ns_create", "name": a}], atomic=True)
        assert (e.value.code, e.value.op_index) == ("already_exists", 1)
        assert b not in [n["name"] for n in c.ns_list()["namespaces"]]
        # Not atomic: the results before the failure come with the error.
        with pytest.raises(HelperError) as e:
            c.call([{"op": "ns_create", "name": b}, {"op": "ns_create", "name": a}])
        assert e.value.results == [{"op": "ns_create", "name": b}]
        for bad in ("bad/name", "", "x" * 100):
            with pytest.raises(HelperError) as e:
                c.ns_create(bad)
            assert e.value.code in ("invalid_argument", "bad_request"), e.value
        with pytest.raises(NotFound) as e:
            c.ns_delete(helper.ns("nope"))
        assert e.value.code == "not_found"
        assert isinstance(e.value, HelperError)
        with pytest.raises(HelperError) as e:
            c.call([{"op": "no_such_op"}])
        assert e.value.code in ("unsupported", "bad_request")
        c.ns_delete(a)
        c.ns_delete(b)


def test_hosts_services_probes_and_the_network(network):
    h = network
    with Client(h.socket) as c:
        web, far = h.ns("web"), h.ns("far")
        added = c.host_add(web, "10.0.3.100/24", h.ns("lab"), tag="job-7")
        assert added["host"]["gateway"] == "10.0.3.1"
        c.host_add(far, "192.0.2.50/24", h.ns("edge"), tag="job-7")
        assert c.host_add(web, "10.0.3.100/24", h.ns("lab"))["reused"] is True
        with pytest.raises(HelperError) as e:
            c.host_add(h.ns("x"), "10.0.3.100/24", h.ns("nope"))
        assert e.value.code == "not_found"
        with pytest.raises(HelperError) as e:
            c.host_add(h.ns("x"), "999.1.1.1/24", h.ns("lab"))
        assert e.value.code == "invalid_argument"
        assert sorted(x["name"] for x in c.host_list()["hosts"]) == [far, web]
        spare = h.ns("spare")
        c.host_add(spare, "10.0.3.101/24", h.ns("lab"))
        assert c.host_delete(spare) == {}
        with pytest.raises(HelperError) as e:
            c.host_delete(spare)
        assert (e.value.code, e.value.op_index) == ("not_found", 0)

        info = c.svc_start(web, "10.0.3.100", 80, tag="job-7")
        assert (info["port"], info["proto"]) == (80, "tcp")
        with pytest.raises(HelperError) as e:
            c.svc_start(web, "10.0.3.100", 80)
        assert e.value.code == "already_exists"
        r = c.probe_tcp(far, "10.0.3.100", 80, message="hello")
        assert (r["status"], r["reply"]) == ("ok", "hello")
        assert r["local"].startswith("192.0.2.50:")
        assert "explain" not in r
        # Explained: the routers the request passed, in path order, each with its verdicts.
        x = c.probe_tcp(far, "10.0.3.100", 80, message="why", explain=True)
        assert (x["status"], x["reply"]) == ("ok", "why")
        assert 49 <= x["explain"]["dscp"] <= 63
        routers = x["explain"]["routers"]
        assert [r["router"] for r in routers] == [h.ns("edge"), h.ns("core"), h.ns("lab")]
        for r in routers:
            assert r["packets"] and "dropped_by" not in r, r
            assert all(p["verdict"] != "drop" for p in r["packets"]), r
        assert any(s["kind"] == "rule" and s["rule"].startswith("-A FORWARD")
                   for p in routers[2]["packets"] for s in p["steps"]), routers[2]
        with pytest.raises(HelperError) as e:
            c.probe_tcp(far, "2001:db8::1", 80, explain=True)
        assert e.value.code == "invalid_argument"
        assert c.probe_udp(far, "10.0.3.100", 53, timeout_ms=200)["status"] == "timeout"
        with pytest.raises(HelperError) as e:
            c.probe_tcp(far, "10.0.3.100", 80, src="10.9.9.9")
        assert e.value.code == "invalid_argument"
        ping = c.probe_ping(far, "10.0.3.100", count=2, interval_ms=20)
        assert ping["received"] == 2
        trace = c.probe_trace(far, "10.0.3.100")
        assert [hop["from"] for hop in trace["hops"]] == ["192.0.2.1", "10.0.1.2", "10.0.2.2", "10.0.3.100"]
        # Explained: every router the probes passed, the errors' way back included.
        trace = c.probe_trace(far, "10.0.3.100", explain=True)
        assert trace["reached"] is True
        assert [r["router"] for r in trace["explain"]["routers"]] == [h.ns("edge"), h.ns("core"), h.ns("lab")]
        assert any("time-exceeded" in p["packet"] for r in trace["explain"]["routers"] for p in r["packets"])
        reach = c.probe_reach([far], "10.0.3.100", "80,22/tcp", timeout_ms=300)
        assert [s["verdict"] for s in reach["routers"][0]["services"]] == ["yes", "yes"]
        assert len(c.svc_list()["services"]) == 1
        c.svc_stop(web, "10.0.3.100", 80)
        with pytest.raises(HelperError) as e:
            c.svc_stop(web, "10.0.3.100", 80)
        assert e.value.code == "not_found"
        saved = c.iptables_save(h.ns("lab"), table="filter", counters=True)
        assert ":FORWARD DROP" in saved["payload"]
        assert sorted(c.host_clean(tag="job-7")["removed"]) == [far, web]
        assert c.net_show()["topology"]["routers"]
        assert c.net_teardown()["namespaces"] >= 4


def test_eight_threads_share_one_client(helper):
    errors = []
    with Client(helper.socket) as c:
        def worker(i):
            try:
                for k in range(1000):
                    assert c.call([{"op": "ping"}]) == [{"op": "ping"}]
            except Exception as e:  # noqa: BLE001 - collected for the assertion
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert c.status()["requests"] >= 8000


def test_large_requests_and_small_ones_share_a_connection(helper):
    errors = []
    with Client(helper.socket) as c:
        def big():
            try:
                for _ in range(20):
                    results = c.call([{"op": "ping"}] * 5000)
                    assert len(results) == 5000
            except Exception as e:  # noqa: BLE001 - collected for the assertion
                errors.append(e)

        def small():
            try:
                for _ in range(2000):
                    assert c.ping() == {}
            except Exception as e:  # noqa: BLE001 - collected for the assertion
                errors.append(e)

        threads = [threading.Thread(target=f) for f in (big, big, big, small, small, small)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []


def test_timeouts_cancel_and_the_connection_goes_on(helper):
    with Client(helper.socket) as c:
        started = time.monotonic()
        with pytest.raises(Timeout):
            c.call([{"op": "ping", "delay_ms": 5000}], timeout=0.2)
        assert time.monotonic() - started < 2
        assert c.ping() == {}


def test_a_restarted_helper_is_reconnected_to(helper):
    with Client(helper.socket, timeout=20) as c:
        errors, done = [], threading.Event()

        def pinger():
            try:
                while not done.is_set():
                    c.ping()
            except Exception as e:  # noqa: BLE001 - collected for the assertion
                errors.append(e)

        t = threading.Thread(target=pinger)
        t.start()
        time.sleep(0.2)
        helper.kill9()
        time.sleep(0.2)
        helper.start()
        time.sleep(0.3)
        done.set()
        t.join()
        assert errors == []
        # A call that changes something is not sent twice: it fails if its connection died.
        helper.kill9()
        with pytest.raises(ConnectionLost):
            c.ns_create(helper.ns("a"))
        helper.start()
        assert c.ping() == {}
        c.ns_create(helper.ns("a"))


def test_a_connection_the_helper_closed_when_idle_is_replaced_before_use():
    from conftest import Helper, _require_root

    _require_root()
    h = Helper(extra=["--idle-timeout", "1"])
    try:
        with Client(h.socket) as c:
            assert c.ping() == {}
            time.sleep(1.6)
            # Even a call that changes something goes through: it was never sent on the dead
            # connection.
            assert c.ns_create(h.ns("a")) == {"name": h.ns("a")}

        async def main():
            a = await AsyncClient.connect(h.socket)
            await asyncio.sleep(1.6)
            assert await a.ns_create(h.ns("b")) == {"name": h.ns("b")}
            await a.close()

        asyncio.run(main())
    finally:
        h.cleanup()


def test_a_wrong_protocol_version_is_refused(helper, monkeypatch):
    # On the wire: an error frame with the code, then the connection closes.
    s = socket.socket(socket.AF_UNIX)
    s.connect(helper.socket)
    s.sendall(_wire.encode({"type": "hello", "protocol": [2, 0], "client": "future"}))
    header = s.recv(4)
    body = s.recv(int.from_bytes(header, "big"))
    msg = msgpack.unpackb(body, raw=False)
    assert (msg["type"], msg["code"]) == ("error", "unsupported_version")
    assert s.recv(1) == b""
    # Through the client.
    monkeypatch.setattr(_wire, "PROTOCOL", (2, 0))
    with pytest.raises(ProtocolVersionError):
        Client(helper.socket)


def test_the_asyncio_client(helper):
    async def main():
        c = await AsyncClient.connect(helper.socket)
        assert c.welcome["protocol"] == [1, 5]
        results = await asyncio.gather(*[c.ping() for _ in range(200)])
        assert results == [{}] * 200
        a = helper.ns("a")
        await c.ns_create(a)
        with pytest.raises(HelperError) as e:
            await c.ns_create(a)
        assert (e.value.code, e.value.op_index) == ("already_exists", 0)
        with pytest.raises(Timeout):
            await c.call([{"op": "ping", "delay_ms": 5000}], timeout=0.2)
        assert await c.ping() == {}
        helper.kill9()
        helper.start()
        assert await c.ping() == {}
        async with await AsyncClient.connect(helper.socket) as scoped:
            assert await scoped.ping() == {}
        assert scoped._writer.is_closing()
        await c.close()

    asyncio.run(main())


def test_every_code_has_its_exception():
    from tsim_client import errors

    for code, cls in errors.BY_CODE.items():
        e = errors.from_wire({"code": code, "message": "m", "op_index": 2})
        assert type(e) is cls and isinstance(e, HelperError)
        assert (e.code, e.message, e.op_index) == (code, "m", 2)
    # A code this client does not know yet is still a HelperError.
    e = errors.from_wire({"code": "from_the_future", "message": "m"})
    assert type(e) is HelperError and e.code == "from_the_future"
