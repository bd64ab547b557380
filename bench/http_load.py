"""Many web jobs at once, over real HTTP, against the example WSGI app (for instance under
Apache with mod_wsgi, scripts/apache-wsgi.sh).

First every distinct job is run alone, one after another (its verdicts are the reference,
and its time the single-job figure); then N jobs are sent at once, and each concurrent
job's verdicts must equal the reference of the same job run alone. Prints one JSON object:
the wall time, per-job p50/p99, jobs/s, the errors, and the mismatches; exits 1 if any job
failed or answered otherwise than alone.

    python3 bench/http_load.py --url http://127.0.0.1:8080 --jobs 32 --sources same
    python3 bench/http_load.py --url ... --kind detailed --jobs 8

Traffic goes to the URL given (use loopback) and, from there, only inside the simulated
network's namespaces.
"""

import argparse
import json
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request

# Quick jobs: source hosts on 3 routers, 10 services (the 10-router test network).
ROUTERS = ["hq-gw", "br-core", "dc-core"]
PORTS = "22,80,443,3306,8080,10000/tcp,53,161,514,33434/udp"
SOURCES = ["10.1.1.100", "10.1.1.101", "10.1.1.102", "10.1.1.103"]
DST = "10.2.1.100"
DETAILED_SERVICES = [{"port": 10000, "proto": "tcp"}, {"port": 22, "proto": "tcp"}]


def post(url, path, job, timeout):
    """POSTs a job; returns (HTTP status, body as JSON, seconds)."""
    data = json.dumps(job).encode()
    request = urllib.request.Request(url + path, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    elapsed = time.perf_counter() - started
    try:
        return status, json.loads(body), elapsed
    except ValueError:
        return status, {"error": body[:200].decode(errors="replace")}, elapsed


def verdicts(kind, body):
    """What must not depend on other jobs: per router and service, the verdict."""
    if kind == "quick":
        return sorted((r["router"], s["port"], s["proto"], s["result"])
                      for r in body["routers"] for s in r["services"])
    return sorted((t["router"], t["port"], t["proto"], t["status"]) for t in body["tests"])


def job_for(kind, i, sources):
    src = SOURCES[0] if sources == "same" else SOURCES[i % len(SOURCES)]
    if kind == "quick":
        return {"src": src, "dst": DST, "routers": ROUTERS, "ports": PORTS}
    # Each detailed job its own destination: echo services have no leases, so two jobs
    # cannot run the same service on the same destination at once (the second gets a 409).
    return {"src": src, "dst": f"10.2.1.{100 + i}", "routers": ROUTERS[:1],
            "services": DETAILED_SERVICES}


def quantile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run(url, kind, jobs, sources, timeout):
    path = "/jobs/" + kind
    docs = [job_for(kind, i, sources) for i in range(jobs)]
    distinct = {json.dumps(d, sort_keys=True): d for d in docs}
    alone, alone_times, errors = {}, [], []
    for key, doc in distinct.items():
        status, body, elapsed = post(url, path, doc, timeout)
        if status != 200:
            errors.append({"alone": True, "status": status, "body": body})
            continue
        alone[key] = verdicts(kind, body)
        alone_times.append(elapsed)
    results = [None] * jobs
    barrier = threading.Barrier(jobs)

    def one(i):
        barrier.wait()
        results[i] = post(url, path, docs[i], timeout)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(jobs)]
    for t in threads:
        t.start()
    started = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    mismatches = 0
    for doc, (status, body, _) in zip(docs, results):
        if status != 200:
            errors.append({"status": status, "body": body})
            continue
        key = json.dumps(doc, sort_keys=True)
        if key in alone and verdicts(kind, body) != alone[key]:
            mismatches += 1
    times = [r[2] for r in results]
    return {
        "kind": kind,
        "jobs": jobs,
        "sources": sources,
        "alone_p50_ms": round(statistics.median(alone_times) * 1000, 1) if alone_times else None,
        "wall_ms": round(wall * 1000, 1),
        "p50_ms": round(quantile(times, 0.5) * 1000, 1),
        "p99_ms": round(quantile(times, 0.99) * 1000, 1),
        "jobs_per_s": round(jobs / wall, 1),
        "errors": len(errors),
        "mismatches": mismatches,
        "first_error": errors[0] if errors else None,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="the app, e.g. http://127.0.0.1:8080")
    p.add_argument("--kind", choices=["quick", "detailed"], default="quick")
    p.add_argument("--jobs", type=int, default=32, help="jobs at once (default 32)")
    p.add_argument("--sources", choices=["same", "mix"], default="same",
                   help="one source address for every job, or a mix of four")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per HTTP request")
    args = p.parse_args(argv)
    report = run(args.url.rstrip("/"), args.kind, args.jobs, args.sources, args.timeout)
    print(json.dumps(report))
    return 1 if report["errors"] or report["mismatches"] else 0


if __name__ == "__main__":
    sys.exit(main())
