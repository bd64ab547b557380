//! Command-line options of `tsim-helper`; the parsed struct is the helper's configuration.

use std::path::PathBuf;

use clap::Parser;
use tsim_protocol::NsName;
use tsim_protocol::version::DEFAULT_MAX_FRAME;

use crate::base::logging::LogFormat;

/// The root helper of the traceroute simulator.
///
/// Owns every namespace, netlink, netfilter and in-namespace socket operation, and serves
/// them to unprivileged clients (tsimctl, the Rust and Python client libraries) over one Unix
/// socket, using a versioned MessagePack protocol. Root and members of --group are served;
/// everyone else is refused, whatever the socket file's mode.
///
/// Under systemd socket activation (LISTEN_FDS/LISTEN_PID) it serves the socket it is given
/// and ignores --socket. Once the socket is bound it keeps only CAP_NET_ADMIN, CAP_SYS_ADMIN,
/// CAP_NET_RAW, CAP_NET_BIND_SERVICE, and CAP_SETPCAP and CAP_SYS_CHROOT for the jail its
/// firewall tools run in (a read-only mount namespace, Landlock, CAP_NET_ADMIN and for
/// iptables CAP_NET_RAW only, no_new_privs, resource limits and seccomp).
#[derive(Debug, Clone, Parser)]
#[command(name = "tsim-helper", version, max_term_width = 100)]
pub struct Config {
    /// Unix socket to listen on (ignored under socket activation).
    #[arg(long, value_name = "PATH", default_value = "/run/tsim/helper.sock")]
    pub socket: PathBuf,

    /// Mode of the socket file, in octal.
    #[arg(long, value_name = "MODE", default_value = "0660", value_parser = parse_mode)]
    pub socket_mode: u32,

    /// Group whose members are served, by name or gid (root always is). Also the socket
    /// file's group.
    #[arg(long, value_name = "GROUP", default_value = "tsim-users")]
    pub group: String,

    /// Group whose members may act on objects other users own, by name or gid [default: root
    /// only].
    #[arg(long, value_name = "GROUP")]
    pub admin_group: Option<String>,

    /// Directory for the persistent registry. Must be owned by the helper's user and not
    /// writable by others.
    #[arg(long, value_name = "DIR", default_value = "/run/tsim")]
    pub state_dir: PathBuf,

    /// Name of the hidden namespace that holds the simulated network's bridges.
    #[arg(long, value_name = "NAME", default_value = "tsim-hidden")]
    pub hidden_ns: NsName,

    /// Namespaces to keep pre-created for hosts (lo up, `eth0` with its other end parked in
    /// the hidden namespace), so that adding a host takes one instead of making one. Filled
    /// in the background while a network is applied.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=4096))]
    pub pool_size: u32,

    /// Name prefix of the pooled namespaces (reserved: no namespace or host may take it).
    #[arg(long, value_name = "PREFIX", default_value = "tsim-pool-", value_parser = parse_pool_prefix)]
    pub pool_prefix: String,

    /// Log destination [default: journald when JOURNAL_STREAM is set, text otherwise]. The
    /// level comes from TSIM_LOG (default info).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log: Option<LogFormat>,

    /// Serve one client over stdin/stdout instead of a socket, then exit.
    #[arg(long)]
    pub stdio: bool,

    /// Exit after this many seconds without connections (socket activation starts it again).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_exit: Option<u64>,

    /// Most connections served at once; more are refused with `busy`.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_connections: u32,

    /// Connections one user (other than root and the admin group) may have open at once;
    /// more are refused with `quota_exceeded`.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub quota_connections: u32,

    /// Of `--max-connections`, how many only root and the admin group may take, so that
    /// members together can never lock them out.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(0..=65536))]
    pub reserved_connections: u32,

    /// Longest time one request may run, in seconds: then it is cancelled, undone like any
    /// cancelled request, and answered `timeout`.
    #[arg(long, value_name = "SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub max_request_secs: u64,

    /// Most requests running at once on one connection; further requests wait unread.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_in_flight: u32,

    /// Most operations in one request.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_ops: u32,

    /// Largest frame body accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_FRAME, value_parser = clap::value_parser!(u32).range(65_536..=1_073_741_824))]
    pub max_frame: u32,

    /// Most bytes of request frames one connection may have running at once (each request's
    /// frame counts until its answer is written); further frames wait unread. A frame larger
    /// than this runs alone.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20, value_parser = clap::value_parser!(u32).range(65_536..=1_073_741_824))]
    pub max_conn_bytes: u32,

    /// On SIGTERM, how long running requests may take before they are cancelled.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub shutdown_grace: u64,

    /// Echo services: TCP connections open at once per service (more are closed at once).
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub svc_max_connections: u64,

    /// Echo services: bytes echoed per TCP connection (then it is closed) and per UDP
    /// datagram.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(1..=(1 << 30)))]
    pub svc_max_bytes: u64,

    /// Seconds a connection may stay idle (no request running, nothing received) before the
    /// helper closes it; 0 for never.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub idle_timeout: u64,

    /// Per-uid quota of managed namespaces (hosts included); root is exempt.
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub quota_namespaces: u32,

    /// Per-uid quota of hosts; root is exempt.
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub quota_hosts: u32,

    /// Per-uid quota of echo services; root is exempt.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub quota_services: u32,

    /// Per-uid quota of kernel objects made in the uid's namespaces: links, addresses,
    /// routes, rules, neighbours, firewall rules and chains, set entries (a hash or list set
    /// counts 64, a bitmap set 4096). Kernel memory is not charged to whoever asked, so this
    /// is what keeps one member from leaving the machine short of it. Root and the admin
    /// group are not counted.
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub quota_objects: u64,

    /// Shortest IPv4 prefix a host may have unless root or the admin group adds it (a wide
    /// subnet's gateway would change routing on the router for everyone); IPv6 hosts of
    /// members need /64 or longer.
    #[arg(long, value_name = "LEN", default_value_t = 16, value_parser = clap::value_parser!(u8).range(1..=32))]
    pub min_host_prefix: u8,

    /// Per-uid quota of reachability jobs (`probe_reach`) running at once, of the 32 DSCP
    /// values there are; root is exempt.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub quota_reach_jobs: u32,

    /// Per-uid quota of requests running at once, over all of the uid's connections; root is
    /// exempt.
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub quota_in_flight: u32,

    /// Echo services: seconds a TCP connection may idle before it is closed.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub svc_idle_secs: u64,

    /// Run firewall payloads even where the kernel lacks Landlock, so that the tools' jail
    /// has no Landlock layer (the other layers stay). Without it such payloads are refused
    /// with `unsupported`.
    #[arg(long)]
    pub allow_unjailed_tools: bool,

    /// Never trace packets: no `TRACE` rule goes into any router, so explained probes run
    /// untraced (their explanation says why) and `probe reach`'s NO verdicts name no rule.
    #[arg(long)]
    pub no_trace: bool,

    /// Test only (debug builds): skip the payload screen, to show that the jail holds.
    #[cfg(debug_assertions)]
    #[arg(long, hide = true)]
    pub test_unscreened_payloads: bool,

    /// Test only (debug builds): run the tools without the jail, to show the attacks are
    /// real.
    #[cfg(debug_assertions)]
    #[arg(long, hide = true)]
    pub test_no_jail: bool,

    /// Test only (debug builds): run PROGRAM ARGS in a jail built for PROGRAM (or, with
    /// --test-no-jail, plainly), exit with its status, and serve nothing.
    #[cfg(debug_assertions)]
    #[arg(long, hide = true, num_args = 1.., allow_hyphen_values = true, value_name = "PROGRAM")]
    pub test_jail_run: Option<Vec<String>>,
}

fn parse_pool_prefix(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("the pool prefix cannot be empty (it reserves every name it starts)".into());
    }
    // With 6 digits after it, the prefix must still make a valid namespace name.
    let probe = format!("{s}000000");
    probe
        .parse::<NsName>()
        .map(|_| s.to_owned())
        .map_err(|e| format!("{s:?} cannot start namespace names: {e}"))
}

fn parse_mode(s: &str) -> Result<u32, String> {
    let mode = u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| format!("{s:?} is not an octal mode such as 0660"))?;
    if mode > 0o777 {
        return Err(format!("{s:?} has bits beyond 0777"));
    }
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_modes() {
        let c = Config::try_parse_from(["tsim-helper"]).unwrap();
        assert_eq!(c.socket_mode, 0o660);
        assert_eq!(c.hidden_ns.as_str(), "tsim-hidden");
        assert_eq!(c.max_frame, DEFAULT_MAX_FRAME);
        let c = Config::try_parse_from(["tsim-helper", "--socket-mode", "0666"]).unwrap();
        assert_eq!(c.socket_mode, 0o666);
        assert!(Config::try_parse_from(["tsim-helper", "--socket-mode", "999"]).is_err());
        assert!(Config::try_parse_from(["tsim-helper", "--hidden-ns", "../x"]).is_err());
        assert!(Config::try_parse_from(["tsim-helper", "--max-connections", "0"]).is_err());
    }
}
