"""Fixtures: a real tsim-helper started for the test, on its own socket, state directory,
hidden namespace and name prefix; stopped, and its namespaces removed, afterwards."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[3]
BIN = Path(os.environ.get("TSIM_BIN_DIR", REPO / "target" / "debug"))
_counter = [0]


def _require_root():
    if os.geteuid() != 0:
        if os.environ.get("TSIM_REQUIRE_PRIV_TESTS") == "1":
            pytest.fail("the Python client tests need root (TSIM_REQUIRE_PRIV_TESTS=1)")
        pytest.skip("needs root: the helper creates network namespaces")


class Helper:
    """A running helper."""

    def __init__(self, extra=(), group="0"):
        _counter[0] += 1
        self.prefix = f"tp{os.getpid():x}x{_counter[0]}-"
        self.dir = tempfile.mkdtemp(prefix="tsim-py-")
        os.chmod(self.dir, 0o755)
        self.socket = os.path.join(self.dir, "helper.sock")
        self.extra = list(extra)
        self.group = str(group)
        self.proc = None
        self.start()

    def ns(self, name):
        return self.prefix + name

    def start(self):
        log = open(os.path.join(self.dir, "helper.log"), "ab")
        self.proc = subprocess.Popen(
            [str(BIN / "tsim-helper"), "--socket", self.socket, "--state-dir",
             os.path.join(self.dir, "state"), "--group", self.group, "--hidden-ns", self.ns("hidden"),
             "--pool-prefix", self.ns("pool-"), "--log", "text", *self.extra],
            stdout=subprocess.DEVNULL, stderr=log,
        )
        deadline = time.monotonic() + 20
        while not os.path.exists(self.socket):
            assert self.proc.poll() is None, "tsim-helper exited early"
            assert time.monotonic() < deadline, "tsim-helper did not start"
            time.sleep(0.01)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def tsimctl(self, *args):
        return subprocess.run([str(BIN / "tsimctl"), "--socket", self.socket, *args],
                              capture_output=True, text=True)

    def cleanup(self):
        self.stop()
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            name = line.split()[0] if line.split() else ""
            if name.startswith(self.prefix):
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def helper():
    _require_root()
    h = Helper()
    try:
        yield h
    finally:
        h.cleanup()


@pytest.fixture
def network(helper):
    """The helper with the bundled example network (edge, core, lab) applied."""
    plan = helper.tsimctl("net", "plan", "--facts", str(REPO / "examples" / "facts"),
                          "--prefix", helper.prefix)
    assert plan.returncode == 0, plan.stderr
    import json

    from tsim_client import Client

    with Client(helper.socket) as c:
        c.net_apply(json.loads(plan.stdout))
    return helper


@pytest.fixture
def network10(helper):
    """The helper with the 10-router test network (tests/data/facts10) applied."""
    plan = helper.tsimctl("net", "plan", "--facts", str(REPO / "tests" / "data" / "facts10" / "raw"),
                          "--prefix", helper.prefix)
    assert plan.returncode == 0, plan.stderr
    import json

    from tsim_client import Client

    with Client(helper.socket) as c:
        c.net_apply(json.loads(plan.stdout))
    return helper
