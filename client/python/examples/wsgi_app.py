"""A WSGI app (stdlib ``wsgiref``, no framework) that runs the old web layer's two job kinds
(original-system.md section 9) through tsim-helper, and cleans up by tag.

* ``POST /jobs/quick`` with ``{"src": IP, "dst": IP, "routers": [R...], "ports": SPEC}``:
  a source host with ``src`` on every router, then ``probe_reach``; per router and service,
  YES or NO.
* ``POST /jobs/detailed`` with ``{"src": IP, "dst": IP, "routers": [R...], "services":
  [{"port": P, "proto": "tcp"|"udp"}]}``: a source and a destination host on every router,
  an echo service per service on each destination, a traceroute from each source, and per
  service a probe from each source with the router's iptables counters before and after.

The quick job's source hosts are shared (``share=True``): concurrent jobs from the same
source behind the same router lease one host instead of colliding. Every host and service a
job makes or leases carries the job's tag; the job removes them (or gives up its leases) by
tag at the end, whatever happened, and a clean-up the helper could not take (it was down)
is retried before the process's next job.

HTTP answers: 200 with the job's result; 400 for a bad job document (or one the helper
refuses as such: ``invalid_argument``, ``not_found``); 409 when another job holds what this
one needs (the same echo service on the same destination, an address taken otherwise); 503
when the helper is down or restarted during the job, or is busy; 504 when it did not answer
in time; 502 for any other helper error. Every error is a JSON body with ``error`` (and ``code`` from the helper).

Run it: ``python3 wsgi_app.py --port 8000`` (serves on 127.0.0.1, with ``wsgiref``), or
under a WSGI server as ``wsgi_app:application`` (configured by the environment:
``TSIM_SOCKET``, ``TSIM_PREFIX``, ``TSIM_TIMEOUT``; ``scripts/apache-wsgi.sh`` runs it under
Apache with mod_wsgi), or run one job and print its time: ``python3 wsgi_app.py --once quick
--src 10.1.1.100 --dst 10.2.1.100 --routers hq-gw --ports 22,80,443/tcp,53/udp``.
"""

import argparse
import itertools
import json
import os
import sys
import threading
import time
import traceback
import uuid
from wsgiref.simple_server import make_server

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tsim_client import Busy, Client, ConnectionLost, HelperError, QuotaExceeded, Timeout  # noqa: E402

_jobs = itertools.count(1)


def _job_tag():
    return f"wsgi-{os.getpid()}-{next(_jobs)}-{uuid.uuid4().hex[:6]}"


def _host_name(tag, role, i):
    # Namespace names: at most 64 characters of [A-Za-z0-9_.-].
    return f"{tag}-{role}{i}"


class BadJob(ValueError):
    """A job document the app cannot run."""


def _check_job(job, kind):
    """Checks a job document's shape; raises BadJob naming the first bad field."""
    if not isinstance(job, dict):
        raise BadJob("a job is a JSON object")
    for key in ("src", "dst"):
        if not isinstance(job.get(key), str) or not job[key]:
            raise BadJob(f"{key} must be an IPv4 address (a string)")
    routers = job.get("routers")
    if not isinstance(routers, list) or not 1 <= len(routers) <= 16 or not all(
            isinstance(r, str) and r for r in routers):
        raise BadJob("routers must be a list of 1 to 16 router names")
    if kind == "quick":
        if not isinstance(job.get("ports"), str) or not job["ports"]:
            raise BadJob("ports must be a string such as 22,80,443/tcp,53/udp")
    else:
        services = job.get("services")
        if not isinstance(services, list) or not 1 <= len(services) <= 32:
            raise BadJob("services must be a list of 1 to 32 {port, proto} objects")
        for s in services:
            if (not isinstance(s, dict) or not isinstance(s.get("port"), int)
                    or not 1 <= s["port"] <= 65535 or s.get("proto", "tcp") not in ("tcp", "udp")):
                raise BadJob(f"bad service {s!r}: port 1-65535, proto tcp or udp")


def _waiting_turn(call, patience=10.0):
    """Runs ``call``; while the helper says too many jobs run (each job holds one of 32 DSCP
    values, and a uid at most ``--quota-reach-jobs``), waits for a turn, up to ``patience``
    seconds."""
    deadline = time.monotonic() + patience
    pause = 0.005
    while True:
        try:
            return call()
        except (QuotaExceeded, Busy):
            if time.monotonic() >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)


def quick_job(client, src, dst, routers, ports, prefix=""):
    """Shared source hosts on the routers, then the quick analysis."""
    tag = _job_tag()
    started = time.monotonic()
    try:
        sources = []
        for i, router in enumerate(routers):
            name = _host_name(prefix + tag, "s", i)
            added = client.host_add(name, f"{src}/24", prefix + router, tag=tag, share=True)
            # Another job's host, if one had this source on this router already.
            sources.append(added["host"]["name"])
        reach = _waiting_turn(lambda: client.probe_reach(sources, dst, ports))
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
            s = client.host_add(s, f"{src}/24", prefix + router, tag=tag, share=True)["host"]["name"]
            d = client.host_add(d, f"{dst}/24", prefix + router, tag=tag, share=True)["host"]["name"]
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


class _Pending:
    """Tags whose clean-up failed (the helper was down): retried before the next job."""

    def __init__(self):
        self.lock = threading.Lock()
        self.tags = set()

    def add(self, tag):
        with self.lock:
            self.tags.add(tag)

    def retry(self, client):
        with self.lock:
            tags, self.tags = self.tags, set()
        for tag in tags:
            try:
                client.host_clean(tag=tag)
            except (ConnectionLost, Timeout):
                self.add(tag)


def _status_of(e):
    """The HTTP status for a helper error."""
    if e.code in ("invalid_argument", "not_found"):
        return "400 Bad Request"
    if e.code in ("busy", "quota_exceeded"):
        return "503 Service Unavailable"
    if e.code in ("already_exists", "conflict"):
        # E.g. another job runs the same echo service on the same destination just now.
        return "409 Conflict"
    return "502 Bad Gateway"


def make_app(client, prefix=""):
    """The WSGI application, over one shared (thread-safe) client: a ``Client``, or a
    function that returns one (called again after it fails, so that a process started while
    the helper was down connects once it is up)."""
    get_client = client if callable(client) and not isinstance(client, Client) else (lambda: client)
    pending = _Pending()

    def run(path, job):
        c = get_client()
        pending.retry(c)
        tags = []
        try:
            if path == "/jobs/quick":
                return quick_job(_Tagged(c, tags), job["src"], job["dst"], job["routers"],
                                 job["ports"], prefix)
            return detailed_job(_Tagged(c, tags), job["src"], job["dst"], job["routers"],
                                job["services"], prefix)
        except (ConnectionLost, Timeout):
            for tag in tags:
                pending.add(tag)
            raise

    def app(environ, start_response):
        def answer(status, body):
            data = json.dumps(body).encode()
            start_response(status, [("Content-Type", "application/json"),
                                    ("Content-Length", str(len(data)))])
            return [data]

        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        try:
            if method == "GET" and path == "/health":
                return answer("200 OK", {"ok": True, "pid": os.getpid()})
            if method == "GET" and path == "/status":
                return answer("200 OK", get_client().status())
            if method != "POST" or path not in ("/jobs/quick", "/jobs/detailed"):
                return answer("404 Not Found", {"error": f"no {method} {path}"})
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                if not 0 <= length <= 65536:
                    raise BadJob(f"a job document of {length} bytes (at most 65536)")
                job = json.loads(environ["wsgi.input"].read(length) or b"{}")
                _check_job(job, "quick" if path == "/jobs/quick" else "detailed")
            except (BadJob, ValueError, TypeError) as e:
                return answer("400 Bad Request", {"error": f"bad job: {e}"})
            return answer("200 OK", run(path, job))
        except HelperError as e:
            return answer(_status_of(e), {"error": e.message, "code": e.code, "op_index": e.op_index})
        except Timeout as e:
            return answer("504 Gateway Timeout", {"error": f"the helper did not answer in time: {e}"})
        except ConnectionLost as e:
            return answer("503 Service Unavailable",
                          {"error": f"the helper is unavailable (down or restarting): {e}"})
        except Exception as e:  # a bug: say so, without a traceback in the answer
            traceback.print_exc(file=environ.get("wsgi.errors", sys.stderr))
            return answer("500 Internal Server Error", {"error": f"internal error: {type(e).__name__}"})

    return app


class _Tagged:
    """A client that notes the tags of the jobs run through it (for a clean-up retry)."""

    def __init__(self, client, tags):
        self._client = client
        self._tags = tags

    def __getattr__(self, name):
        method = getattr(self._client, name)
        if name not in ("host_add", "svc_start"):
            return method

        def call(*args, **kwargs):
            if kwargs.get("tag") and kwargs["tag"] not in self._tags:
                self._tags.append(kwargs["tag"])
            return method(*args, **kwargs)

        return call


class _ProcessClient:
    """The process's one client, made on first use and again after the helper went away."""

    def __init__(self, socket, timeout):
        self.socket, self.timeout = socket, timeout
        self.lock = threading.Lock()
        self.client = None

    def __call__(self):
        with self.lock:
            if self.client is None:
                # Raises ConnectionLost while the helper is down: the request gets a 503.
                self.client = Client(self.socket, name="wsgi_app/0.1.0", timeout=self.timeout)
            return self.client


def _application_from_env():
    timeout = float(os.environ.get("TSIM_TIMEOUT", "10"))
    get = _ProcessClient(os.environ.get("TSIM_SOCKET"), timeout)
    return make_app(get, os.environ.get("TSIM_PREFIX", ""))


_app = None
_app_lock = threading.Lock()


def application(environ, start_response):
    """The app for a WSGI server (mod_wsgi, gunicorn ...): one client per process."""
    global _app
    with _app_lock:
        if _app is None:
            _app = _application_from_env()
    return _app(environ, start_response)


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
