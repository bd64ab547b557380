//! `tsimctl ping`: round trips to the helper, with min, median and p99.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{CliError, Ctx, print_json};

/// Measure no-op round trips to the helper.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of round trips.
    #[arg(long, short = 'c', value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub count: u32,
}

#[derive(Debug, Serialize)]
struct Report {
    helper_version: String,
    protocol: [u16; 2],
    count: u32,
    min_us: f64,
    median_us: f64,
    p99_us: f64,
    max_us: f64,
}

/// Runs the command.
pub async fn run(ctx: &Ctx, args: &Args) -> Result<(), CliError> {
    let mut rtts: Vec<Duration> = Vec::with_capacity(args.count as usize);
    for _ in 0..args.count {
        let started = Instant::now();
        ctx.client.ping().await?;
        rtts.push(started.elapsed());
    }
    rtts.sort();
    let us = |d: Duration| (d.as_secs_f64() * 1e7).round() / 10.0;
    let at = |q: f64| us(rtts[((rtts.len() - 1) as f64 * q).round() as usize]);
    let welcome = ctx.client.welcome();
    let report = Report {
        helper_version: welcome.helper_version.clone(),
        protocol: [welcome.protocol.major, welcome.protocol.minor],
        count: args.count,
        min_us: us(rtts[0]),
        median_us: at(0.5),
        p99_us: at(0.99),
        max_us: us(rtts[rtts.len() - 1]),
    };
    if ctx.json {
        print_json(&report);
    } else {
        out!(
            "pong from tsim-helper {} (protocol {}) on {}: {} round trip{}, min {} µs, median {} µs, p99 {} µs",
            report.helper_version,
            welcome.protocol,
            ctx.socket.display(),
            report.count,
            if report.count == 1 { "" } else { "s" },
            report.min_us,
            report.median_us,
            report.p99_us
        );
    }
    Ok(())
}
