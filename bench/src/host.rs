//! The host benchmark: `host_add` and `host_delete` on the bundled example network,
//! sequentially through `tsimctl` processes (as a user would), through the Rust client, from
//! the pool of pre-created namespaces, and 100 hosts from 4 concurrent clients.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use tsim_client::{Client, RequestOptions};
use tsim_protocol::ops::HostAdd;
use tsim_protocol::{NsName, Op, OpResult};

/// What the host benchmark measured.
pub struct HostResult {
    /// `tsimctl host add`, one process each.
    pub ctl_add: Vec<Duration>,
    /// `tsimctl host del`, one process each.
    pub ctl_del: Vec<Duration>,
    /// `host_add` through the Rust client, without the pool.
    pub lib_add: Vec<Duration>,
    /// 100 hosts from 4 clients at once, 25 each, one at a time per client.
    pub concurrent: Duration,
}

fn tsimctl(bin: &Path, socket: &Path, args: &[&str]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let status = Command::new(bin)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let took = started.elapsed();
    ensure!(status.success(), "tsimctl {args:?} failed");
    Ok(took)
}

fn host(prefix: &str, name: &str, ip: &str, router: &str) -> anyhow::Result<HostAdd> {
    Ok(HostAdd {
        name: format!("{prefix}{name}").parse()?,
        ip: ip.parse()?,
        router: format!("{prefix}{router}").parse()?,
        router_if: None,
        secondaries: Vec::new(),
        tag: None,
        share: false,
    })
}

/// The sequential and concurrent measures, against a helper at `socket` without a pool
/// that has the example network applied under `prefix`; `n` hosts per sequential measure.
pub fn measure(
    tsimctl_bin: &Path,
    socket: &Path,
    prefix: &str,
    n: usize,
    settle: &dyn Fn(),
) -> anyhow::Result<HostResult> {
    // Through tsimctl, one process per add, then per delete.
    let lab = format!("{prefix}lab");
    let mut ctl_add = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("{prefix}t{i}");
        let ip = format!("10.0.3.{}/24", 10 + i);
        ctl_add.push(tsimctl(
            tsimctl_bin,
            socket,
            &["host", "add", &name, "--ip", &ip, "--router", &lab],
        )?);
    }
    let mut ctl_del = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("{prefix}t{i}");
        ctl_del.push(tsimctl(tsimctl_bin, socket, &["host", "del", &name])?);
    }
    settle();

    // One thread drives every client, so that the bench takes as little of the machine's
    // two cores from the helper as it can.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (lib_add, concurrent) = rt.block_on(async {
        let client = Client::connect(socket, "tsim-bench").await?;
        let mut lib_add = Vec::with_capacity(n);
        for i in 0..n {
            let args = host(
                prefix,
                &format!("l{i}"),
                &format!("10.0.3.{}/24", 10 + i),
                "lab",
            )?;
            let t = Instant::now();
            client.host_add(args).await?;
            lib_add.push(t.elapsed());
        }
        for i in 0..n {
            client.host_delete(format!("{prefix}l{i}").parse()?).await?;
        }
        // 100 hosts from 4 clients at once, 25 each, one request at a time per client.
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(Client::connect(socket, "tsim-bench").await?);
        }
        let started = Instant::now();
        let jobs = clients.iter().enumerate().map(|(c, client)| async move {
            for i in 0..25 {
                let k = c * 25 + i;
                let args = host(
                    prefix,
                    &format!("c{k}"),
                    &format!("10.0.3.{}/24", 10 + k),
                    "lab",
                )?;
                client.host_add(args).await?;
            }
            anyhow::Ok(())
        });
        for r in futures::future::join_all(jobs).await {
            r?;
        }
        let concurrent = started.elapsed();
        let names: Vec<NsName> = (0..100)
            .map(|k| format!("{prefix}c{k}").parse())
            .collect::<Result<_, _>>()?;
        let ops = names
            .into_iter()
            .map(|name| Op::HostDelete(tsim_protocol::ops::HostDelete { name, tag: None }))
            .collect();
        client.request(ops, RequestOptions::default()).await?;
        anyhow::Ok((lib_add, concurrent))
    })?;
    settle();

    Ok(HostResult {
        ctl_add,
        ctl_del,
        lib_add,
        concurrent,
    })
}

/// What the pooled measures found.
pub struct PoolResult {
    /// `host_add` through the Rust client, of the adds the pool served.
    pub lib: Vec<Duration>,
    /// How many of the `pool` library adds the pool served.
    pub lib_hits: usize,
    /// `tsimctl host add`, back to back, one process each.
    pub ctl: Vec<Duration>,
    /// How many of those the pool served.
    pub ctl_hits: usize,
}

/// Against a helper at `socket` whose pool holds `pool` namespaces: adds `pool` hosts one at
/// a time through the library, each after the filler has had time to replace the last one
/// taken; then `n` hosts back to back through `tsimctl`, as a user would, with whatever the
/// filler keeps up with.
pub fn measure_pool(
    tsimctl_bin: &Path,
    socket: &Path,
    prefix: &str,
    pool: usize,
    n: usize,
) -> anyhow::Result<PoolResult> {
    let (lib, lib_hits) = measure_pool_lib(socket, prefix, pool)?;
    wait_for_pool(socket, prefix, pool)?;
    let lab = format!("{prefix}lab");
    let mut ctl = Vec::with_capacity(n);
    let mut ctl_hits = 0;
    for i in 0..n {
        let name = format!("{prefix}q{i}");
        let ip = format!("10.0.3.{}/24", 10 + i);
        let started = Instant::now();
        let out = Command::new(tsimctl_bin)
            .arg("--socket")
            .arg(socket)
            .args(["host", "add", &name, "--ip", &ip, "--router", &lab])
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("cannot run {}", tsimctl_bin.display()))?;
        ctl.push(started.elapsed());
        ensure!(out.status.success(), "tsimctl host add {name} failed");
        if String::from_utf8_lossy(&out.stdout).contains("from the pool") {
            ctl_hits += 1;
        }
    }
    for i in 0..n {
        tsimctl(
            tsimctl_bin,
            socket,
            &["host", "del", &format!("{prefix}q{i}")],
        )?;
    }
    Ok(PoolResult {
        lib,
        lib_hits,
        ctl,
        ctl_hits,
    })
}

/// Waits until the pool of the helper at `socket` holds `pool` namespaces.
fn wait_for_pool(socket: &Path, prefix: &str, pool: usize) -> anyhow::Result<()> {
    let client = tsim_client::BlockingClient::connect(socket, "tsim-bench")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pooled = client
            .ns_list()?
            .iter()
            .filter(|n| n.name.as_str().starts_with(&format!("{prefix}pool-")))
            .count();
        if pooled >= pool {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "the pool did not fill");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn measure_pool_lib(
    socket: &Path,
    prefix: &str,
    pool: usize,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // From the pool: wait until it is full, then add as many hosts as it holds, one at a
    // time, each after the filler has had time to replace the last one taken.
    wait_for_pool(socket, prefix, pool)?;
    rt.block_on(async {
        let client = Client::connect(socket, "tsim-bench").await?;
        let mut samples = Vec::with_capacity(pool);
        let mut hits = 0;
        for i in 0..pool {
            let args = host(
                prefix,
                &format!("p{i}"),
                &format!("10.0.3.{}/24", 10 + i),
                "lab",
            )?;
            let t = Instant::now();
            let added = client.host_add(args).await?;
            let took = t.elapsed();
            if added.pooled {
                hits += 1;
                samples.push(took);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let names: Vec<Op> = (0..pool)
            .map(|i| -> anyhow::Result<Op> {
                Ok(Op::HostDelete(tsim_protocol::ops::HostDelete {
                    name: format!("{prefix}p{i}").parse()?,
                    tag: None,
                }))
            })
            .collect::<anyhow::Result<_>>()?;
        let results = client.request(names, RequestOptions::default()).await?;
        ensure!(results.iter().all(|r| matches!(r, OpResult::HostDelete(_))));
        anyhow::Ok((samples, hits))
    })
}
