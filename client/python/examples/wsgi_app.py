"""A WSGI app (stdlib ``wsgiref``, no framework) that runs the old web layer's two job kinds
(original-system.md section 9) through tsim-helper, and cleans up by tag.

* ``POST /jobs/quick`` with ``{"src": IP, "dst": IP, "routers": [R...], "ports": SPEC}``:
  a source host with ``src`` on every router, then ``probe_reach``; per router and service,
  YES or NO.
* ``POST /jobs/detailed`` with ``{"src": IP, "dst": IP, "routers": [R...], "services":
  [{"port": P, "proto": "tcp"|"udp"}]}``: a source and a destination host on every router,
  an echo service per service on each destination, a traceroute from each source, and per
  service a probe from each source with the router's iptables counters before and after.

Every host and service a job makes carries the job's tag; the job removes them by tag at
the end, whatever happened.

Run it: ``python3 wsgi_app.py --port 8000`` (serves on 127.0.0.1), or run one job and print
its time: ``python3 wsgi_app.py --once quick --src 10.1.1.100 --dst 10.2.1.100 --routers
hq-gw --ports 22,80,443/tcp,53/udp``.
"""

import argparse
import itertools
import json
import os
import sys
import time
import uuid
from wsgiref.simple_server import make_server

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tsim_client import Client, HelperError  # noqa: E402

_jobs = itertools.count(1)


def _job_tag():
    return f"wsgi-{os.getpid()}-{next(_jobs)}-{uuid.uuid4().hex[:6]}"


def _host_name(tag, role, i):
    # Namespace names: at most 64 characters of [A-Za-z0-9_.-].
    return f"{tag}-{role}{i}"


def quick_job(client, src, dst, routers, ports, prefix=""):
    """Source hosts on the routers, then the quick analysis."""
    tag = _job_tag()
    started = time.monotonic()
    try:
        sources = []
        for i, router in enumerate(routers):
            name = _host_name(prefix + tag, "s", i)
            client.host_add(name, f"{src}/24", prefix + router, tag=tag)
            sources.append(name)
        reach = client.probe_reach(sources, dst, ports)
        return {
            "job": tag,
            "kind": "quick",
            "routers": [
                {
                    "router": r["router"],
                    "services": [
                        {"port": s["port"], "proto": s["proto"], "result": s["verdict"].upper()}
                        for s in r["services"]
                    ],
                }
                for r in reach["routers"]
            ],
            "elapsed_s": round(time.monotonic() - started, 3),
        }
    finally:
        client.host_clean(tag=tag)


def _forward_counts(saved):
    """The FORWARD chain's rule counters of an ``iptables-save -c`` payload."""
    counts = []
    for line in saved.splitlines():
        if line.startswith("[") and "-A FORWARD " in line:
            packets = int(line[1:].split(":", 1)[0])
            counts.append((line.split("] ", 1)[1], packets))
    return counts


def detailed_job(client, src, dst, routers, services, prefix=""):
    """A source and a destination host per router, echo services, a traceroute, and per
    service a probe with the router's counters before and after."""
    tag = _job_tag()
    started = time.monotonic()
    started_services = []
    try:
        pairs = []
        for i, router in enumerate(routers):
            s = _host_name(prefix + tag, "s", i)
            d = _host_name(prefix + tag, "d", i)
            client.host_add(s, f"{src}/24", prefix + router, tag=tag)
            client.host_add(d, f"{dst}/24", prefix + router, tag=tag)
            pairs.append((prefix + router, s, d))
        for _, _, d in pairs:
            for svc in services:
                client.svc_start(d, dst, svc["port"], svc.get("proto", "tcp"), tag=tag)
                started_services.append((d, svc))
        traces = {
            router: [hop.get("from") for hop in client.probe_trace(s, dst, max_hops=2, timeout_ms=1000)["hops"]]
            for router, s, _ in pairs
        }
        results = []
        for svc in services:
            proto = svc.get("proto", "tcp")
            for router, s, _ in pairs:
                before = _forward_counts(client.iptables_save(router, table="filter", counters=True)["payload"])
                probe = (client.probe_tcp if proto == "tcp" else client.probe_udp)(
                    s, dst, svc["port"], message="Test\n", timeout_ms=1000
                )
                after = _forward_counts(client.iptables_save(router, table="filter", counters=True)["payload"])
                matched = [rule for (rule, b), (_, a) in zip(before, after) if a > b]
                results.append({
                    "router": router,
                    "port": svc["port"],
                    "proto": proto,
                    "status": "OK" if probe["status"] == "ok" else "FAIL",
                    "probe": probe["status"],
                    "local": probe.get("local"),
                    "rules_matched": matched,
                })
        return {
            "job": tag,
            "kind": "detailed",
            "traces": traces,
            "tests": results,
            "elapsed_s": round(time.monotonic() - started, 3),
        }
    finally:
        for d, svc in started_services:
            try:
                client.svc_stop(d, dst, svc["port"], svc.get("proto", "tcp"))
            except HelperError:
                pass  # the host's deletion stops it anyway
        client.host_clean(tag=tag)


def make_app(client, prefix=""):
    """The WSGI application, over one shared (thread-safe) client."""

    def app(environ, start_response):
        def answer(status, body):
            data = json.dumps(body).encode()
            start_response(status, [("Content-Type", "application/json"),
                                    ("Content-Length", str(len(data)))])
            return [data]

        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if method == "GET" and path == "/status":
            return answer("200 OK", client.status())
        if method != "POST" or path not in ("/jobs/quick", "/jobs/detailed"):
            return answer("404 Not Found", {"error": f"no {method} {path}"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            job = json.loads(environ["wsgi.input"].read(length) or b"{}")
            if path == "/jobs/quick":
                body = quick_job(client, job["src"], job["dst"], job["routers"], job["ports"], prefix)
            else:
                body = detailed_job(client, job["src"], job["dst"], job["routers"], job["services"], prefix)
            return answer("200 OK", body)
        except (KeyError, ValueError, TypeError) as e:
            return answer("400 Bad Request", {"error": f"bad job: {e}"})
        except HelperError as e:
            return answer("502 Bad Gateway", {"error": e.message, "code": e.code, "op_index": e.op_index})

    return app


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--socket", help="the helper's socket (default: $TSIM_SOCKET, else /run/tsim/helper.sock)")
    p.add_argument("--port", type=int, default=8000, help="serve on 127.0.0.1:PORT")
    p.add_argument("--prefix", default="", help="prefix of the network's namespace names")
    p.add_argument("--once", choices=["quick", "detailed"], help="run one job, print it, exit")
    p.add_argument("--src", default="10.1.1.100")
    p.add_argument("--dst", default="10.2.1.100")
    p.add_argument("--routers", default="hq-gw", help="comma-separated routers")
    p.add_argument("--ports", default="22,80,443/tcp,53/udp", help="quick: the services")
    p.add_argument("--services", default="80/tcp", help="detailed: PORT/PROTO,...")
    args = p.parse_args(argv)
    client = Client(args.socket)
    routers = args.routers.split(",")
    if args.once == "quick":
        print(json.dumps(quick_job(client, args.src, args.dst, routers, args.ports, args.prefix), indent=2))
    elif args.once == "detailed":
        services = [{"port": int(s.split("/")[0]), "proto": (s.split("/") + ["tcp"])[1]}
                    for s in args.services.split(",")]
        print(json.dumps(detailed_job(client, args.src, args.dst, routers, services, args.prefix), indent=2))
    else:
        with make_server("127.0.0.1", args.port, make_app(client, args.prefix)) as server:
            print(f"serving on http://127.0.0.1:{args.port}", file=sys.stderr)
            server.serve_forever()


if __name__ == "__main__":
    main()
