//! Every thread of the helper stays in the helper's own network namespace, and nothing the
//! helper runs keeps a deleted namespace alive (finding 6 of the boundary review: the netlink
//! threads were born in the first namespace that opened a socket, and pinned it for ever).
//!
//! A namespace is watched without pinning it: the test puts one end of a veth inside it and
//! keeps the other end in a namespace of its own. When the kernel frees the watched namespace,
//! it destroys the veth, and the far end vanishes.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tsim_protocol::ops::HostAdd;
use tsim_tests::{HelperOptions, TestHelper, example_facts, require_priv, text};

/// The network namespace of every thread of `pid` but the short-lived `ns-*` threads that
/// are made to enter one: thread name -> namespace.
fn threads_outside_home(pid: u32) -> BTreeMap<String, String> {
    let home = std::fs::read_link(format!("/proc/{pid}/ns/net")).expect("the helper's netns");
    let mut outside = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let task = task.unwrap().path();
        let name = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        let name = name.trim().to_owned();
        let Ok(ns) = std::fs::read_link(task.join("ns/net")) else {
            continue; // the thread just exited
        };
        if ns != home && !name.starts_with("ns-") {
            let tid = task.file_name().unwrap().to_string_lossy().into_owned();
            outside.insert(format!("{name} ({tid})"), ns.display().to_string());
        }
    }
    outside
}

fn assert_threads_home(helper: &TestHelper, after: &str) {
    let outside = threads_outside_home(helper.pid());
    assert!(
        outside.is_empty(),
        "after {after}, threads of the helper live in another network namespace: {outside:?}"
    );
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}: {}", text(&out));
}

/// A namespace of the test's own holding the far ends of the veths that watch namespaces.
struct Watcher {
    ns: String,
    watched: Vec<(String, String)>,
}

impl Watcher {
    fn new(helper: &TestHelper) -> Self {
        let ns = helper.ns("watch");
        ip(&["netns", "add", &ns]);
        Self {
            ns,
            watched: Vec::new(),
        }
    }

    /// Puts a veth end inside managed namespace `target`, its peer in the watcher.
    fn watch(&mut self, target: &str) {
        let end = format!("w{}", self.watched.len());
        ip(&[
            "link",
            "add",
            &end,
            "netns",
            &self.ns,
            "type",
            "veth",
            "peer",
            "name",
            "tsimwatch",
            "netns",
            target,
        ]);
        self.watched.push((target.to_owned(), end));
    }

    /// The watched namespaces whose veth end is still there.
    fn alive(&self) -> Vec<String> {
        let out = Command::new("ip")
            .args(["-n", &self.ns, "-o", "link", "show"])
            .output()
            .unwrap();
        let links = text(&out);
        self.watched
            .iter()
            .filter(|(_, end)| links.contains(&format!(": {end}@")))
            .map(|(target, _)| target.clone())
            .collect()
    }

    /// Waits until every watched namespace is freed (the kernel frees them in the
    /// background, about ten a second here).
    fn wait_all_freed(&self, after: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let alive = self.alive();
            if alive.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "after {after}, these namespaces were deleted but the kernel still holds them: {alive:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn host(helper: &TestHelper, name: &str, ip: &str, router: &str) {
    helper
        .client()
        .host_add(HostAdd {
            name: helper.ns(name).parse().unwrap(),
            ip: ip.parse().unwrap(),
            router: helper.ns(router).parse().unwrap(),
            router_if: None,
            secondaries: Vec::new(),
            tag: None,
            share: false,
        })
        .unwrap_or_else(|e| panic!("host add {name}: {e}"));
}

fn ok(helper: &TestHelper, args: &[&str]) {
    let out = helper.tsimctl(args);
    assert!(out.status.success(), "tsimctl {args:?}: {}", text(&out));
}

#[test]
fn threads_stay_home_and_deleted_namespaces_are_freed() {
    require_priv!();
    let mut helper = TestHelper::start_with(HelperOptions {
        args: vec!["--pool-size".into(), "2".into()],
        ..HelperOptions::default()
    });
    let mut watcher = Watcher::new(&helper);

    // The exact reproduction: the first namespace the helper ever makes.
    let x = helper.ns("x");
    ok(&helper, &["ns", "add", &x]);
    assert_threads_home(&helper, "the first ns add");
    watcher.watch(&x);
    ok(&helper, &["ns", "del", &x]);
    watcher.wait_all_freed("ns del");

    // A network, hosts made fresh and from the pool, a restart, more hosts.
    helper.net_setup(&example_facts());
    assert_threads_home(&helper, "net setup");
    host(&helper, "h1", "10.0.3.100/24", "lab");
    host(&helper, "h2", "10.0.1.100/24", "edge");
    assert_threads_home(&helper, "host add");
    helper.terminate();
    helper.restart();
    assert_threads_home(&helper, "a restart");
    host(&helper, "h3", "10.0.3.101/24", "lab");
    assert_threads_home(&helper, "host add after the restart");
    ok(
        &helper,
        &["probe", "ping", "--from", &helper.ns("h3"), "10.0.3.100"],
    );
    assert_threads_home(&helper, "a probe");

    // Everything goes; every namespace it made must be freed by the kernel.
    for name in ["edge", "core", "lab", "h1", "h2", "h3"] {
        watcher.watch(&helper.ns(name));
    }
    for pooled in tsim_tests::ip_netns_list()
        .into_iter()
        .filter(|n| n.starts_with(&helper.ns("pool-")))
    {
        watcher.watch(&pooled);
    }
    ok(&helper, &["host", "clean"]);
    ok(&helper, &["net", "teardown"]);
    assert_threads_home(&helper, "net teardown");
    // The pool's namespaces go when the helper stops.
    helper.terminate();
    for name in tsim_tests::ip_netns_list()
        .into_iter()
        .filter(|n| n.starts_with(&helper.prefix) && *n != watcher.ns)
    {
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
    }
    watcher.wait_all_freed("net teardown and the helper's stop");
    assert!(Path::new(&format!("/run/netns/{}", watcher.ns)).exists());
}
