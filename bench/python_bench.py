"""The Python client's benchmark: the no-op round trip, ``host add`` through the client
against the old way (a fresh Python process, then one ``ip`` process per step as in
host_baseline.sh), and the two web jobs of client/python/examples/wsgi_app.py on the
10-router test network. Prints Markdown table rows; run by bench/run.sh (as root).
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "client", "python"))
sys.path.insert(0, os.path.join(REPO, "client", "python", "examples"))

from tsim_client import Client  # noqa: E402
import wsgi_app  # noqa: E402

BIN = os.path.join(REPO, "target", "release")


def ms(seconds):
    return f"{seconds * 1e3:.2f} ms"


def quantile(values, q):
    values = sorted(values)
    return values[round((len(values) - 1) * q)]


def python_echo_floor(work, count):
    """The floor of a Python client's round trip: the bytes of a ping request sent to a C
    server that echoes them (`bench/echo.c`, built here with cc), and read back."""
    import socket
    import struct

    import msgpack
    exe = os.path.join(work, "echo")
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(REPO, "bench", "echo.c")], check=True)
    path = os.path.join(work, "echo.sock")
    server = subprocess.Popen([exe, path])
    try:
        while not os.path.exists(path):
            time.sleep(0.01)
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        body = msgpack.packb({"type": "request", "id": 1, "ops": [{"op": "ping"}], "atomic": False,
                              "progress": False})
        frame = struct.pack(">I", len(body)) + body
        times = []
        for i in range(count + count // 10):
            t = time.perf_counter()
            s.sendall(frame)
            got = 0
            while got < len(frame):
                got += len(s.recv(4096))
            if i >= count // 10:
                times.append(time.perf_counter() - t)
        s.close()
        return quantile(times, 0.5)
    finally:
        server.kill()
        server.wait()


def main():
    prefix = f"bp{os.getpid():x}-"
    work = tempfile.mkdtemp(prefix="tsim-pybench-", dir="/dev/shm")
    sock = os.path.join(work, "helper.sock")
    helper = subprocess.Popen(
        [os.path.join(BIN, "tsim-helper"), "--socket", sock, "--state-dir", os.path.join(work, "state"),
         "--group", "0", "--hidden-ns", prefix + "hidden", "--pool-prefix", prefix + "pool-", "--log", "text"],
        stderr=subprocess.DEVNULL,
    )
    try:
        while not os.path.exists(sock):
            time.sleep(0.01)
        ctl = lambda *args: subprocess.run([os.path.join(BIN, "tsimctl"), "--socket", sock, *args],  # noqa: E731
                                           check=True, capture_output=True)
        client = Client(sock)
        # No-op round trips.
        for _ in range(1000):
            client.ping()
        rtt = []
        for _ in range(20000):
            t = time.perf_counter()
            client.ping()
            rtt.append(time.perf_counter() - t)
        floor = python_echo_floor(work, 20000)
        p50 = quantile(rtt, 0.5)
        print(f"| no-op round trip, Python client (`tsim_client.Client`): p50 / p99 (target p50 ≤ 2.5× the floor) | "
              f"{p50 * 1e6:.1f} µs / {quantile(rtt, 0.99) * 1e6:.1f} µs | "
              f"Python sending the same bytes to a C echo server (`bench/echo.c`), p50: {floor * 1e6:.1f} µs | "
              f"{p50 / floor:.2f}× the floor |")

        # host add through the client, on the example network.
        ctl("net", "setup", "--facts", os.path.join(REPO, "examples", "facts"), "--prefix", prefix, "--quiet")
        adds = []
        for i in range(50):
            t = time.perf_counter()
            client.host_add(f"{prefix}h{i}", f"10.0.3.{10 + i}/24", prefix + "lab", tag="bench")
            adds.append(time.perf_counter() - t)
        client.host_clean(tag="bench")
        ctl("net", "teardown")
        starts = []
        for _ in range(10):
            t = time.perf_counter()
            subprocess.run(["python3", "-c", "import subprocess, json"], check=True)
            starts.append(time.perf_counter() - t)
        out = subprocess.run(["unshare", "-n", "bash", os.path.join(REPO, "bench", "host_baseline.sh"), "20"],
                             check=True, capture_output=True, text=True).stdout
        ip_us = int(re.search(r"ip_processes=(\d+)us", out).group(1))
        old = statistics.median(starts) + ip_us / 1e6
        add = statistics.median(adds)
        print(f"| host add through the Python client, sequential: p50 / p99 | {ms(add)} / {ms(quantile(adds, 0.99))} | "
              f"a Python start ({ms(statistics.median(starts))}) and one `ip` process per step ({ms(ip_us / 1e6)}): "
              f"{ms(old)} | {old / add:.0f}× |")

        # The two web jobs on the 10-router network.
        ctl("net", "setup", "--facts", os.path.join(REPO, "tests", "data", "facts10", "raw"), "--prefix", prefix,
            "--quiet")
        quick, detailed = [], []
        for _ in range(3):
            t = time.perf_counter()
            q = wsgi_app.quick_job(client, "10.1.1.100", "10.2.1.100", ["hq-gw", "hq-lab"],
                                   "22,80,443/tcp,53/udp,161/udp,10000/tcp,33434/udp", prefix)
            quick.append(time.perf_counter() - t)
            t = time.perf_counter()
            d = wsgi_app.detailed_job(client, "10.1.1.100", "10.2.1.100", ["hq-gw"],
                                      [{"port": 10000, "proto": "tcp"}], prefix)
            detailed.append(time.perf_counter() - t)
        yes = sum(s["result"] == "YES" for r in q["routers"] for s in r["services"])
        print(f"| web quick job (example WSGI app): source hosts on hq-gw and hq-lab, reach for 7 services, "
              f"cleanup by tag; median of 3 ({yes} of 14 YES) | {ms(statistics.median(quick))} | "
              f"old quick job: 30–60 s | {30 / statistics.median(quick):.0f}–{60 / statistics.median(quick):.0f}× |")
        print(f"| web detailed job: source and destination hosts on hq-gw, 1 echo service, traceroute, probe with "
              f"iptables counters before and after, cleanup; median of 3 ({d['tests'][0]['status']}) | "
              f"{ms(statistics.median(detailed))} | old detailed job with 1 service: ~20 s | "
              f"{20 / statistics.median(detailed):.0f}× |")
        ctl("net", "teardown")
        client.close()
    finally:
        helper.kill()
        helper.wait()
        for line in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.splitlines():
            name = (line.split() or [""])[0]
            if name.startswith(prefix):
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
