//! Per-operation counters and latency histograms, reported by `status`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use tsim_protocol::ops::OpStats;

/// Latencies are recorded in microseconds, from 1 µs to 10 minutes, 2 significant digits.
const MAX_US: u64 = 600_000_000;

#[derive(Debug)]
struct OpMetric {
    count: u64,
    errors: u64,
    latency: Histogram<u64>,
}

/// Counters and histograms for every operation kind that has run.
///
/// Each kind has a lock of its own, and the map's lock is held only to find it: a `status`
/// copies one histogram at a time, so an operation recording itself waits at most for one
/// copy of its own kind (a few microseconds), even when the copier is the low-priority
/// heavy thread running a member's 10,000 `status`.
#[derive(Debug, Default)]
pub struct Metrics {
    ops: Mutex<BTreeMap<&'static str, Arc<Mutex<OpMetric>>>>,
}

impl Metrics {
    /// Records one run of `op` that took `elapsed` and succeeded or not.
    pub fn record(&self, op: &'static str, elapsed: Duration, ok: bool) {
        let us = u64::try_from(elapsed.as_micros())
            .unwrap_or(MAX_US)
            .clamp(1, MAX_US);
        let metric = {
            let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(ops.entry(op).or_insert_with(|| {
                Arc::new(Mutex::new(OpMetric {
                    count: 0,
                    errors: 0,
                    latency: Histogram::new_with_bounds(1, MAX_US, 2)
                        .expect("valid histogram bounds"),
                }))
            }))
        };
        let mut metric = metric.lock().unwrap_or_else(|p| p.into_inner());
        metric.count += 1;
        if !ok {
            metric.errors += 1;
        }
        metric.latency.saturating_record(us);
    }

    /// The statistics of every operation kind that has run, by name.
    ///
    /// Each histogram is copied under its own lock and read outside it: every operation
    /// takes its kind's lock to record itself, so a caller asking for `status` in a loop
    /// must not hold it while the quantiles are computed.
    pub fn snapshot(&self) -> Vec<OpStats> {
        let kinds: Vec<(&'static str, Arc<Mutex<OpMetric>>)> = {
            let ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
            ops.iter().map(|(op, m)| (*op, Arc::clone(m))).collect()
        };
        let ops: Vec<(&'static str, u64, u64, Histogram<u64>)> = kinds
            .into_iter()
            .map(|(op, m)| {
                let m = m.lock().unwrap_or_else(|p| p.into_inner());
                (op, m.count, m.errors, m.latency.clone())
            })
            .collect();
        ops.into_iter()
            .map(|(op, count, errors, latency)| OpStats {
                op: op.to_owned(),
                count,
                errors,
                p50_us: latency.value_at_quantile(0.50),
                p90_us: latency.value_at_quantile(0.90),
                p99_us: latency.value_at_quantile(0.99),
                max_us: latency.max(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let m = Metrics::default();
        for i in 1..=100 {
            m.record("ping", Duration::from_micros(i), i != 7);
        }
        m.record("ns_create", Duration::from_millis(2), true);
        let s = m.snapshot();
        assert_eq!(s.len(), 2);
        let ping = s.iter().find(|o| o.op == "ping").unwrap();
        assert_eq!((ping.count, ping.errors), (100, 1));
        assert!((49..=51).contains(&ping.p50_us), "{ping:?}");
        assert!((98..=100).contains(&ping.p99_us), "{ping:?}");
        assert_eq!(ping.max_us, 100);
    }
}
