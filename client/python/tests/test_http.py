"""The example WSGI app over real HTTP, under Apache with mod_wsgi in daemon mode (four
processes of eight threads, as a web user in the helper's group, never root), on the
10-router test network: jobs, bad job documents, concurrent jobs with shared source hosts
(the load script), a helper restarted in the middle of a job, and a helper that is down.

Set up by scripts/apache-wsgi.sh on a private port on loopback; torn down afterwards."""

import json
import os
import pwd
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import REPO, Helper, _require_root

WEB_GROUP = "tsim-http-test"
SCRIPT = REPO / "scripts" / "apache-wsgi.sh"
QUICK = {"src": "10.1.1.100", "dst": "10.2.1.100", "routers": ["hq-gw"],
         "ports": "22,80,443/tcp,53/udp,161/udp,10000/tcp,33434/udp"}
QUICK_VERDICTS = [(22, "tcp", "NO"), (80, "tcp", "NO"), (443, "tcp", "NO"), (53, "udp", "NO"),
                  (161, "udp", "NO"), (10000, "tcp", "YES"), (33434, "udp", "YES")]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    return dict(os.environ, TSIM_WEB_GROUP=WEB_GROUP, TSIM_WSGI_TIMEOUT="3")


class Web:
    """The helper (with the 10-router network) and Apache in front of the app."""

    def __init__(self):
        subprocess.run(["bash", str(SCRIPT), "install"], check=True, env=_env())
        if subprocess.run(["getent", "group", WEB_GROUP], capture_output=True).returncode:
            subprocess.run(["groupadd", "--system", WEB_GROUP], check=True)
        gid = subprocess.run(["getent", "group", WEB_GROUP], capture_output=True, text=True,
                             check=True).stdout.split(":")[2]
        self.helper = Helper(group=gid, extra=["--quota-reach-jobs", "32"])
        plan = self.helper.tsimctl("net", "plan", "--facts", str(REPO / "tests" / "data" / "facts10" / "raw"),
                                   "--prefix", self.helper.prefix)
        assert plan.returncode == 0, plan.stderr
        from tsim_client import Client
        with Client(self.helper.socket) as c:
            c.net_apply(json.loads(plan.stdout))
        self.dir = os.path.join(self.helper.dir, "web")
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        subprocess.run(["bash", str(SCRIPT), "up", self.dir, str(self.port), self.helper.socket,
                        self.helper.prefix], check=True, env=_env())

    def post(self, path, body, raw=None, timeout=30):
        data = raw if raw is not None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            text = e.read()
            try:
                return e.code, json.loads(text)
            except ValueError:
                pytest.fail(f"HTTP {e.code} without a JSON body: {text[:300]!r}")

    def hosts(self):
        from tsim_client import Client
        with Client(self.helper.socket) as c:
            return c.host_list()["hosts"]

    def restart_helper(self):
        self.helper.kill9()
        os.unlink(self.helper.socket)
        self.helper.start()

    def close(self):
        subprocess.run(["bash", str(SCRIPT), "down", self.dir], env=_env())
        self.helper.cleanup()


@pytest.fixture(scope="module")
def web():
    _require_root()
    w = Web()
    try:
        yield w
    finally:
        w.close()


def test_quick_and_detailed_jobs_over_http(web):
    status, quick = web.post("/jobs/quick", QUICK)
    assert status == 200, quick
    verdicts = [(s["port"], s["proto"], s["result"]) for s in quick["routers"][0]["services"]]
    assert verdicts == QUICK_VERDICTS
    status, detailed = web.post("/jobs/detailed", {
        "src": "10.1.1.100", "dst": "10.2.1.100", "routers": ["hq-gw"],
        "services": [{"port": 10000, "proto": "tcp"}, {"port": 22, "proto": "tcp"}]})
    assert status == 200, detailed
    tests = {t["port"]: t["status"] for t in detailed["tests"]}
    assert tests == {10000: "OK", 22: "FAIL"}, detailed
    assert web.hosts() == []


def test_the_app_runs_as_a_member_of_the_helpers_group_not_root(web):
    uid = pwd.getpwnam("tsim-web").pw_uid
    # mod_wsgi names its daemon processes (argv[0]) by the display name.
    daemons = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv0 = f.read().split(b"\0")[0].split(b" ")[0]
            owner = os.stat(f"/proc/{pid}").st_uid
        except OSError:
            continue
        if argv0 == f"tsim-wsgi-{web.port}".encode():
            daemons.append(owner)
    assert len(daemons) == 4, daemons
    assert set(daemons) == {uid}, daemons
    # The helper sees the web user as the caller: a job's hosts are the web user's.
    seen = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            seen.extend(h["owner_uid"] for h in web.hosts())
            time.sleep(0.005)

    t = threading.Thread(target=watch)
    t.start()
    try:
        for _ in range(5):
            assert web.post("/jobs/quick", QUICK)[0] == 200
    finally:
        done.set()
        t.join()
    assert seen and set(seen) == {uid}, seen


@pytest.mark.parametrize("raw, why", [
    (b"{not json", "bad job"),
    (b"[1, 2]", "a job is a JSON object"),
    (json.dumps({"src": "10.1.1.100"}).encode(), "dst"),
    (json.dumps(dict(QUICK, routers="hq-gw")).encode(), "routers"),
    (json.dumps(dict(QUICK, routers=[])).encode(), "routers"),
    (json.dumps(dict(QUICK, ports=22)).encode(), "ports"),
])
def test_bad_job_documents_get_a_clear_400(web, raw, why):
    status, body = web.post("/jobs/quick", None, raw=raw)
    assert status == 400, body
    assert why in body["error"], body


def test_what_the_helper_refuses_as_a_bad_job_is_a_400_with_its_code(web):
    status, body = web.post("/jobs/quick", dict(QUICK, routers=["no-such-router"]))
    assert (status, body["code"]) == (400, "not_found"), body
    status, body = web.post("/jobs/quick", dict(QUICK, src="10.1.1.0"))
    assert (status, body["code"]) == (400, "invalid_argument"), body
    status, body = web.post("/jobs/detailed", {"src": "10.1.1.100", "dst": "10.2.1.100", "routers": ["hq-gw"],
                                              "services": [{"port": 0}]})
    assert status == 400, body
    assert web.hosts() == []


def test_concurrent_quick_jobs_share_their_sources_and_answer_as_alone(web):
    for sources in ("same", "mix"):
        out = subprocess.run([sys.executable, str(REPO / "bench" / "http_load.py"), "--url", web.url,
                              "--jobs", "8", "--sources", sources], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
        report = json.loads(out.stdout)
        assert report["errors"] == 0 and report["mismatches"] == 0, report
    assert web.hosts() == []


def test_a_helper_restarted_in_the_middle_of_a_job(web):
    # A detailed job whose dropped service makes it wait a second for the probe.
    job = {"src": "10.1.1.100", "dst": "10.2.1.100", "routers": ["hq-gw"],
           "services": [{"port": 22, "proto": "tcp"}, {"port": 23, "proto": "tcp"},
                        {"port": 10000, "proto": "tcp"}]}
    result = {}

    def run():
        result["answer"] = web.post("/jobs/detailed", job)

    t = threading.Thread(target=run)
    t.start()
    # Wait until the job has made its hosts, then kill the helper under it.
    deadline = time.monotonic() + 10
    while not web.hosts():
        assert time.monotonic() < deadline, "the job made no host"
        time.sleep(0.01)
    web.restart_helper()
    t.join()
    status, body = result["answer"]
    # The job in flight fails clearly (the helper went away under it) ...
    assert status == 503, body
    assert "helper" in body["error"], body
    # ... and the app reconnects: the next jobs work, and the failed job left nothing.
    deadline = time.monotonic() + 10
    while True:
        status, quick = web.post("/jobs/quick", QUICK)
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status == 200, quick
    assert web.hosts() == []


def test_a_helper_that_is_down_gets_a_503_with_a_message(web):
    web.helper.kill9()
    try:
        status, body = web.post("/jobs/quick", QUICK)
        assert status == 503, body
        assert "unavailable" in body["error"] and "Traceback" not in body["error"], body
    finally:
        os.unlink(web.helper.socket)
        web.helper.start()
    deadline = time.monotonic() + 10
    while True:
        status, body = web.post("/jobs/quick", QUICK)
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status == 200, body
    assert web.hosts() == []
