"""The example WSGI app's two jobs, through WSGI calls made in-process, on the 10-router
test network: the verdicts and test results hq-gw's firewall dictates, and nothing left
behind (the jobs clean up by tag)."""

import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import wsgi_app  # noqa: E402
from tsim_client import Client  # noqa: E402


def call(app, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else b""
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "CONTENT_LENGTH": str(len(data)),
               "wsgi.input": io.BytesIO(data)}
    status = []
    out = b"".join(app(environ, lambda s, headers: status.append(s)))
    return status[0], json.loads(out)


def test_quick_and_detailed_jobs(network10):
    h = network10
    with Client(h.socket) as c:
        app = wsgi_app.make_app(c, prefix=h.prefix)
        status, quick = call(app, "POST", "/jobs/quick", {
            "src": "10.1.1.100", "dst": "10.2.1.100", "routers": ["hq-gw"],
            "ports": "22,80,443/tcp,53/udp,161/udp,10000/tcp,33434/udp"})
        assert status == "200 OK", quick
        verdicts = [(s["port"], s["proto"], s["result"]) for s in quick["routers"][0]["services"]]
        assert verdicts == [(22, "tcp", "NO"), (80, "tcp", "NO"), (443, "tcp", "NO"), (53, "udp", "NO"),
                            (161, "udp", "NO"), (10000, "tcp", "YES"), (33434, "udp", "YES")]

        status, detailed = call(app, "POST", "/jobs/detailed", {
            "src": "10.1.1.100", "dst": "10.2.1.100", "routers": ["hq-gw"],
            "services": [{"port": 10000, "proto": "tcp"}, {"port": 22, "proto": "tcp"}]})
        assert status == "200 OK", detailed
        tests = {t["port"]: t for t in detailed["tests"]}
        assert tests[10000]["status"] == "OK" and tests[22]["status"] == "FAIL", tests
        assert any("-j DROP" in rule for rule in tests[22]["rules_matched"]), tests[22]
        assert detailed["traces"][h.ns("hq-gw")] == ["10.1.1.1", "10.2.1.100"]

        # Bad jobs and helper errors come back as HTTP errors.
        status, body = call(app, "POST", "/jobs/quick", {"src": "10.1.1.100"})
        assert status == "400 Bad Request", body
        status, body = call(app, "POST", "/jobs/quick", {"src": "10.1.1.100", "dst": "10.2.1.100",
                                                         "routers": ["no-such-router"], "ports": "22"})
        assert status == "400 Bad Request" and body["code"] == "not_found", body
        assert call(app, "GET", "/nowhere")[0] == "404 Not Found"
        # Nothing of the jobs is left.
        assert c.host_list()["hosts"] == []
        assert c.svc_list()["services"] == []
