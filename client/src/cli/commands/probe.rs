//! `tsimctl probe tcp|udp`: probes sent from inside managed namespaces by the helper.

use std::time::Duration;

use tsim_protocol::NsName;
use tsim_protocol::net::Ip;
use tsim_protocol::ops::{
    Explanation, PingResult, ProbeEcho, ProbeEchoResult, ProbePing, ProbeReach, ProbeStatus,
    ProbeTrace, ReachResult, TraceMode, TraceResult, Transport,
};

use super::{CliError, Ctx, print_json};

/// Probe the simulated network from inside a namespace.
///
/// Exit status 0 when the probe succeeded, 1 when it ran but did not succeed (refused,
/// timeout, unreachable, a wrong echo) or could not run.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

/// An echo test.
#[derive(Debug, clap::Args)]
struct Echo {
    /// The namespace to send from (a host or a router).
    #[arg(long)]
    from: NsName,
    /// The local address to send from [default: the kernel's choice].
    #[arg(long)]
    src: Option<Ip>,
    /// The destination, ADDRESS:PORT.
    #[arg(value_name = "DST:PORT", value_parser = parse_dst)]
    dst: (Ip, u16),
    /// What to send.
    #[arg(long, short, default_value = "tsim")]
    message: String,
    /// How long to wait, in seconds.
    #[arg(long = "wait", value_name = "SECS", default_value_t = 1.0)]
    wait: f64,
    /// Say what every router's firewall did with the probe's packets: per router on the
    /// path, each chain and rule they met (as iptables-save prints it) and the verdict, and
    /// the rule or policy that dropped them (IPv4; the routers of the applied network).
    #[arg(long)]
    explain: bool,
}

fn parse_dst(s: &str) -> Result<(Ip, u16), String> {
    let (ip, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not ADDRESS:PORT"))?;
    let ip: Ip = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|e| format!("{ip:?}: {e}"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{port:?} is not a port (1-65535)"))?;
    Ok((ip, port))
}

/// A ping.
#[derive(Debug, clap::Args)]
struct Ping {
    /// The namespace to send from (a host or a router).
    #[arg(long)]
    from: NsName,
    /// The local address to send from [default: the kernel's choice].
    #[arg(long)]
    src: Option<Ip>,
    /// The destination address.
    dst: Ip,
    /// Echo requests to send (1-100).
    #[arg(long, short, default_value_t = 3)]
    count: u32,
    /// Seconds between requests.
    #[arg(long, short, default_value_t = 0.2)]
    interval: f64,
    /// Seconds to wait for a reply after the last request.
    #[arg(long = "wait", short = 'W', value_name = "SECS", default_value_t = 1.0)]
    wait: f64,
    /// Say what every router's firewall did with the probe's packets: per router on the
    /// path, each chain and rule they met (as iptables-save prints it) and the verdict, and
    /// the rule or policy that dropped them (IPv4; the routers of the applied network).
    #[arg(long)]
    explain: bool,
}

/// A traceroute.
#[derive(Debug, clap::Args)]
struct Trace {
    /// The namespace to send from (a host or a router).
    #[arg(long)]
    from: NsName,
    /// The local address to send from [default: the kernel's choice].
    #[arg(long)]
    src: Option<Ip>,
    /// The destination address.
    dst: Ip,
    /// Probe with UDP datagrams to high ports instead of ICMP echo requests.
    #[arg(long)]
    udp: bool,
    /// The highest TTL to try (1-64).
    #[arg(long, short = 'm', default_value_t = 30)]
    max_hops: u8,
    /// Seconds to wait for each hop.
    #[arg(long = "wait", short = 'w', value_name = "SECS", default_value_t = 1.0)]
    wait: f64,
    /// Probes per hop (1-100), sent together; each hop then shows who answered, the loss
    /// and min/avg/max round-trip times, like `mtr -r` (--json keeps every reply).
    #[arg(long, short = 'q', value_name = "N", value_parser = clap::value_parser!(u8).range(1..=100))]
    queries: Option<u8>,
    /// Say what every router's firewall did with the probes and the ICMP errors about them:
    /// per router on the path, each chain and rule they met (as iptables-save prints it)
    /// and the verdict (IPv4; the routers of the applied network).
    #[arg(long)]
    explain: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Connect over TCP, send a message and read the echo.
    Tcp(Echo),
    /// Send a UDP datagram and read the echo.
    Udp(Echo),
    /// Send ICMP echo requests.
    Ping(Ping),
    /// Trace the route, one probe per hop (or --queries N).
    Trace(Trace),
    /// Quick analysis: which routers forward which services towards DST.
    ///
    /// Each source host (give one per router to test) sends DSCP-marked probes for every
    /// service; the counters of its router say whether the router forwarded them (YES),
    /// dropped them (NO, with the rule or policy that dropped them where netfilter traces)
    /// or never saw them (UNKNOWN). Exit status 0 when the analysis ran, whatever the
    /// verdicts.
    Reach(Reach),
}

/// A reachability analysis.
#[derive(Debug, clap::Args)]
struct Reach {
    /// A source host (repeatable: one per router to test).
    #[arg(long, required = true)]
    from: Vec<NsName>,
    /// The destination address.
    dst: Ip,
    /// The services: ports and ranges, each with an optional /tcp or /udp (default tcp), e.g.
    /// 22,80,443/tcp,53/udp,1000-1010/udp.
    #[arg(long, short)]
    ports: String,
    /// Seconds a TCP probe waits for its connection.
    #[arg(long = "wait", short = 'w', value_name = "SECS", default_value_t = 1.0)]
    wait: f64,
}

fn millis(secs: f64, what: &str, max: f64) -> Result<u32, CliError> {
    if !(secs > 0.0 && secs <= max) {
        return Err(CliError::Usage(format!(
            "{what} must be more than 0 and at most {max} seconds, not {secs}"
        )));
    }
    Ok(u32::try_from(Duration::from_secs_f64(secs).as_millis().max(1)).unwrap_or(u32::MAX))
}

/// Runs the command.
pub async fn run(ctx: &Ctx, args: &Args) -> Result<(), CliError> {
    let (proto, echo) = match &args.command {
        Command::Tcp(e) => (Transport::Tcp, e),
        Command::Udp(e) => (Transport::Udp, e),
        Command::Ping(p) => return ping(ctx, p).await,
        Command::Trace(t) => return trace(ctx, t).await,
        Command::Reach(r) => return reach(ctx, r).await,
    };
    if !(echo.wait > 0.0 && echo.wait <= 60.0) {
        return Err(CliError::Usage(format!(
            "--wait must be more than 0 and at most 60 seconds, not {}",
            echo.wait
        )));
    }
    let timeout_ms = Duration::from_secs_f64(echo.wait).as_millis().max(1);
    let result = ctx
        .client
        .probe_echo(
            proto,
            ProbeEcho {
                ns: echo.from.clone(),
                dst: echo.dst.0,
                port: echo.dst.1,
                src: echo.src,
                message: Some(echo.message.clone()),
                timeout_ms: Some(u32::try_from(timeout_ms).unwrap_or(u32::MAX)),
                explain: echo.explain,
            },
        )
        .await?;
    if ctx.json {
        print_json(&result);
    } else {
        print_echo(proto, echo, &result);
        if let Some(e) = &result.explain {
            print_explanation(e);
        }
    }
    match result.status {
        ProbeStatus::Ok => Ok(()),
        other => Err(CliError::Other(format!(
            "{proto} probe to {}:{}: {}",
            echo.dst.0,
            echo.dst.1,
            serde_json::to_value(other)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ))),
    }
}

fn print_echo(proto: Transport, echo: &Echo, r: &ProbeEchoResult) {
    let status = serde_json::to_value(r.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    out!(
        "{proto} {} -> {}:{}: {status} in {:.3} ms{}{}",
        r.local.as_deref().unwrap_or("?"),
        echo.dst.0,
        echo.dst.1,
        r.elapsed_us as f64 / 1000.0,
        r.reply
            .as_ref()
            .map(|s| format!(", reply {s:?}"))
            .unwrap_or_default(),
        r.detail
            .as_ref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default()
    );
}

async fn ping(ctx: &Ctx, p: &Ping) -> Result<(), CliError> {
    let result = ctx
        .client
        .probe_ping(ProbePing {
            ns: p.from.clone(),
            dst: p.dst,
            src: p.src,
            count: Some(p.count),
            interval_ms: Some(millis(p.interval, "--interval", 10.0)?),
            timeout_ms: Some(millis(p.wait, "--wait", 60.0)?),
            explain: p.explain,
        })
        .await?;
    if ctx.json {
        print_json(&result);
    } else {
        print_ping(p, &result);
        if let Some(e) = &result.explain {
            print_explanation(e);
        }
    }
    if result.received == 0 {
        return Err(CliError::Other(format!("no reply from {}", p.dst)));
    }
    Ok(())
}

fn print_ping(p: &Ping, r: &PingResult) {
    for reply in &r.replies {
        out!(
            "reply from {}: seq={} ttl={} time={:.3} ms",
            reply.from,
            reply.seq,
            reply.ttl,
            reply.rtt_us as f64 / 1000.0
        );
    }
    for e in &r.errors {
        out!("{} from {}: seq={} code={}", e.kind, e.from, e.seq, e.code);
    }
    let lost = r.sent - r.received;
    out!(
        "{}: {} sent, {} received, {} lost",
        p.dst,
        r.sent,
        r.received,
        lost
    );
}

async fn trace(ctx: &Ctx, t: &Trace) -> Result<(), CliError> {
    let result = ctx
        .client
        .probe_trace(ProbeTrace {
            ns: t.from.clone(),
            dst: t.dst,
            src: t.src,
            mode: Some(if t.udp {
                TraceMode::Udp
            } else {
                TraceMode::Icmp
            }),
            max_hops: Some(t.max_hops),
            timeout_ms: Some(millis(t.wait, "--wait", 10.0)?),
            port: None,
            queries: t.queries,
            explain: t.explain,
        })
        .await?;
    if ctx.json {
        print_json(&result);
    } else {
        if t.queries.is_some() {
            print_report(t, &result);
        } else {
            print_trace(t, &result);
        }
        if let Some(e) = &result.explain {
            print_explanation(e);
        }
    }
    if !result.reached {
        return Err(CliError::Other(format!("{} not reached", t.dst)));
    }
    Ok(())
}

/// A trace with several probes per hop, as `mtr -r` shows one: per hop, who answered, the
/// loss, and the round-trip times.
fn print_report(t: &Trace, r: &TraceResult) {
    out!(
        "trace to {} ({}), {} probes per hop, {} hops max",
        t.dst,
        if t.udp { "udp" } else { "icmp" },
        t.queries.unwrap_or(1),
        t.max_hops
    );
    out!(
        "{:>3}  {:<32}  {:>5}  {:>4}  {:>8}  {:>8}  {:>8}",
        "HOP",
        "ADDRESS",
        "LOSS%",
        "SENT",
        "MIN ms",
        "AVG ms",
        "MAX ms"
    );
    for hop in &r.hops {
        let mut from: Vec<String> = Vec::new();
        for reply in &hop.replies {
            let mut a = reply.from.to_string();
            if reply.kind == "unreachable" {
                a.push_str(&format!(" !{}", reply.code.unwrap_or(0)));
            }
            if !from.contains(&a) {
                from.push(a);
            }
        }
        let sent = hop.sent.unwrap_or(1);
        let loss = 100.0 * f64::from(hop.lost()) / f64::from(sent.max(1));
        let ms = |us: u64| format!("{:.3}", us as f64 / 1000.0);
        let (min, avg, max) = match hop.rtt_stats() {
            Some((a, b, c)) => (ms(a), ms(b), ms(c)),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let who = if from.is_empty() {
            "*".to_owned()
        } else {
            from.join(", ")
        };
        out!(
            "{:>3}  {:<32}  {:>5.1}  {:>4}  {:>8}  {:>8}  {:>8}",
            hop.ttl,
            who,
            loss,
            sent,
            min,
            avg,
            max
        );
    }
}

fn print_trace(t: &Trace, r: &TraceResult) {
    out!(
        "trace to {} ({}), {} hops max",
        t.dst,
        if t.udp { "udp" } else { "icmp" },
        t.max_hops
    );
    for hop in &r.hops {
        match (&hop.from, hop.rtt_us) {
            (Some(from), Some(rtt)) => {
                let note = match hop.kind.as_deref() {
                    Some("unreachable") => format!(" !{}", hop.code.unwrap_or(0)),
                    _ => String::new(),
                };
                out!(
                    "{:>2}  {}  {:.3} ms{note}",
                    hop.ttl,
                    from,
                    rtt as f64 / 1000.0
                )
            }
            _ => out!("{:>2}  *", hop.ttl),
        }
    }
}

async fn reach(ctx: &Ctx, r: &Reach) -> Result<(), CliError> {
    let result = ctx
        .client
        .probe_reach(ProbeReach {
            from: r.from.clone(),
            dst: r.dst,
            ports: r.ports.clone(),
            timeout_ms: Some(millis(r.wait, "--wait", 10.0)?),
        })
        .await?;
    if ctx.json {
        print_json(&result);
    } else {
        print_reach(r, &result);
    }
    Ok(())
}

fn print_reach(r: &Reach, result: &ReachResult) {
    for router in &result.routers {
        out!(
            "{} (from {}, towards {} via {}):",
            router.router,
            router.from,
            r.dst,
            router.egress.as_deref().unwrap_or("no route")
        );
        for s in &router.services {
            let verdict = serde_json::to_value(s.verdict)
                .ok()
                .and_then(|v| v.as_str().map(str::to_uppercase))
                .unwrap_or_default();
            let why = s
                .dropped_by
                .as_deref()
                .map(|w| format!("  dropped by {w}"))
                .unwrap_or_default();
            out!(
                "  {:>5}/{:<3}  {:<7}  (seen {}, forwarded {}){why}",
                s.port,
                s.proto,
                verdict,
                s.seen,
                s.forwarded
            );
        }
    }
}

/// What the routers' firewalls did with an explained probe's packets, router by router in
/// path order.
fn print_explanation(e: &Explanation) {
    if let Some(why) = &e.unsupported {
        out!("explain: unsupported: {why}");
        return;
    }
    if e.routers.is_empty() {
        out!(
            "explain: no router saw the probe's packets (DSCP {})",
            e.dscp
        );
        return;
    }
    for r in &e.routers {
        out!("");
        out!(
            "router {}{}",
            r.router,
            if r.incomplete {
                " (some events were lost)"
            } else {
                ""
            }
        );
        for p in &r.packets {
            out!("  {} -> {}", p.packet, p.verdict);
            for s in &p.steps {
                let what = match (&s.rule, s.position) {
                    (Some(rule), Some(pos)) => format!("#{pos} {rule}"),
                    (None, Some(pos)) => format!("#{pos}"),
                    _ => s.kind.clone(),
                };
                out!("    {:<6} {:<12} {what} => {}", s.table, s.chain, s.verdict);
            }
        }
        if let Some(d) = &r.dropped_by {
            out!("  dropped by {d}");
        }
    }
}
