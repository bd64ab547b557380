//! The per-uid budget of kernel objects (`--quota-objects`): routes, addresses, links,
//! rules, neighbours, firewall rules and set entries that members make in their namespaces.
//! Kernel memory is not charged to the member who asked, so without it one member could
//! leave the machine short of memory for everyone.
//!
//! Invariants:
//! * Every operation of a member that makes objects is charged before it changes anything,
//!   under the registry's lock, so concurrent requests of one uid cannot pass the quota
//!   together; root and the admin group are not counted.
//! * A namespace's counts are upper bounds: a charge adds what the operation could make; a
//!   deletion does not subtract. They become exact again when measured: the netlink part
//!   from kernel dumps, the firewall parts from the `iptables-save` / `ipset save` that
//!   every firewall change already runs for its undo. Measurement happens only when the
//!   counts say the quota would be passed, so the usual charge costs no system call.
//! * Unknown counts (a namespace not charged since the helper started) count as nothing
//!   until measured, and are measured before a refusal; a refusal is never based on an
//!   upper bound alone.
//! * Measuring all of a uid's namespaces happens at most once per [`REMEASURE_EVERY`] per uid,
//!   so a member at the quota cannot make the helper dump every namespace for every request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often at most a uid's namespaces are all measured again.
pub const REMEASURE_EVERY: Duration = Duration::from_secs(5);

/// What one `create` of a hash or list set counts as: the set and its bucket table
/// (`hashsize` is capped by the payload screen).
pub const SET_WEIGHT: u64 = 64;

/// What one `create` of a bitmap set counts as: the kernel allocates its whole range (up to
/// 65,536 elements with their extensions, a few MiB) when the set is made.
pub const BITMAP_SET_WEIGHT: u64 = 4096;

/// What a link counts as: the link and what the kernel adds with it once it is up (an IPv6
/// link-local address, its routes).
pub const LINK_WEIGHT: u64 = 4;

/// What an address counts as: the address and the local and prefix routes the kernel adds.
pub const ADDRESS_WEIGHT: u64 = 3;

/// Which part of a namespace's objects a charge is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Links, addresses, routes, rules and neighbours, counted by netlink dumps.
    Netlink,
    /// IPv4 firewall rules and chains.
    Iptables,
    /// IPv6 firewall rules and chains.
    Ip6tables,
    /// ipset sets (weighted) and their entries.
    Ipset,
}

/// The objects of one namespace, by part; `None` is not known since the helper started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Links, addresses, routes, rules, neighbours.
    pub netlink: Option<u64>,
    /// IPv4 rules and chains.
    pub iptables: Option<u64>,
    /// IPv6 rules and chains.
    pub ip6tables: Option<u64>,
    /// Sets (weighted) and entries.
    pub ipset: Option<u64>,
}

impl Counts {
    /// The counts of a namespace just made: nothing, known.
    pub fn empty() -> Self {
        Counts {
            netlink: Some(0),
            iptables: Some(0),
            ip6tables: Some(0),
            ipset: Some(0),
        }
    }

    /// The sum of what is known.
    pub fn total(&self) -> u64 {
        [self.netlink, self.iptables, self.ip6tables, self.ipset]
            .into_iter()
            .map(|c| c.unwrap_or(0))
            .fold(0, u64::saturating_add)
    }

    /// The count of `part`.
    pub fn get(&self, part: Part) -> Option<u64> {
        match part {
            Part::Netlink => self.netlink,
            Part::Iptables => self.iptables,
            Part::Ip6tables => self.ip6tables,
            Part::Ipset => self.ipset,
        }
    }

    /// The count of `part`, to change.
    pub fn slot(&mut self, part: Part) -> &mut Option<u64> {
        match part {
            Part::Netlink => &mut self.netlink,
            Part::Iptables => &mut self.iptables,
            Part::Ip6tables => &mut self.ip6tables,
            Part::Ipset => &mut self.ipset,
        }
    }
}

/// When each uid's namespaces were last all measured.
#[derive(Debug, Default)]
pub struct Remeasured(Mutex<HashMap<u32, Instant>>);

impl Remeasured {
    /// Whether `uid`'s namespaces may be measured again now (and, if so, notes that they are).
    pub fn may_remeasure(&self, uid: u32, now: Instant) -> bool {
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match last.get(&uid) {
            Some(t) if now.duration_since(*t) < REMEASURE_EVERY => false,
            _ => {
                last.insert(uid, now);
                true
            }
        }
    }
}

/// The rules and chains of an `iptables-save` text or a restore payload, by table: every
/// line of a table but its `COMMIT`, blanks and comments (for a payload an upper bound: a
/// `-D` line counts as one more, not one less).
pub fn iptables_by_table(text: &str) -> Vec<(&str, u64)> {
    let mut tables: Vec<(&str, u64)> = Vec::new();
    for line in text.split('\n') {
        if let Some(name) = line.strip_prefix('*') {
            tables.push((name.trim(), 0));
            continue;
        }
        let line = line.trim();
        let counts = !(line.is_empty() || line.starts_with('#') || line == "COMMIT");
        match tables.last_mut() {
            Some((_, n)) => *n += u64::from(counts),
            // Outside a table the tool refuses the line; count it all the same.
            None if counts => tables.push(("", 1)),
            None => {}
        }
    }
    tables
}

/// The objects of an `iptables-save` text `before`, and at most those once `payload` is
/// restored on it (`noflush`: added to its rules; otherwise the payload's tables replace
/// the text's).
pub fn iptables_after(before: &str, payload: &str, noflush: bool) -> (u64, u64) {
    let old = iptables_by_table(before);
    let new = iptables_by_table(payload);
    let before_total = old.iter().map(|(_, n)| n).sum::<u64>();
    let added = new.iter().map(|(_, n)| n).sum::<u64>();
    let kept = if noflush {
        before_total
    } else {
        old.iter()
            .filter(|(t, _)| !new.iter().any(|(u, _)| u == t))
            .map(|(_, n)| n)
            .sum()
    };
    (before_total, kept.saturating_add(added))
}

/// The objects of an `ipset save` text, or the most a restore payload adds: each `create`
/// weighted by its type, every other command line one. Lines are split as the payload
/// screen splits them (as the tool does); a payload the screen would refuse counts every
/// line as a bitmap set.
pub fn ipset_objects(text: &str) -> u64 {
    let Ok(lines) = crate::pure::payload::ipset_lines(text) else {
        return (text.split('\n').count() as u64).saturating_mul(BITMAP_SET_WEIGHT);
    };
    lines
        .iter()
        .filter_map(|line| line.words.as_ref())
        .map(|words| match words.first().map(String::as_str) {
            Some("create") => {
                let bitmap = words.get(2).is_some_and(|t| t.starts_with("bitmap:"));
                if bitmap {
                    BITMAP_SET_WEIGHT
                } else {
                    SET_WEIGHT
                }
            }
            Some(_) => 1,
            None => 0,
        })
        .fold(0, u64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iptables_counts_rules_and_chains_by_table() {
        let saved = "# Generated\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n-A FORWARD -j ACCEPT\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n";
        assert_eq!(iptables_by_table(saved), vec![("filter", 3), ("nat", 1)]);
        // Replacing filter keeps nat's one chain; --noflush adds to everything.
        let payload = "*filter\n:INPUT ACCEPT\n[5:60] -A INPUT -j DROP\n  -D INPUT 1\nCOMMIT\n";
        assert_eq!(iptables_after(saved, payload, false), (4, 1 + 3));
        assert_eq!(iptables_after(saved, payload, true), (4, 4 + 3));
        // Lines before any table count too.
        assert_eq!(iptables_after("", "-A X\n*nat\nCOMMIT\n", true), (0, 1));
    }

    #[test]
    fn ipset_weighs_sets_by_type() {
        let text = "create a hash:ip family inet hashsize 1024 maxelem 65536\nadd a 10.0.0.1\n\"add\" a 10.0.0.2\ncreate b \"bitmap:port\" range 0-1024\n# comment\nflush a\n";
        assert_eq!(ipset_objects(text), SET_WEIGHT + 2 + BITMAP_SET_WEIGHT + 1);
        // Unsplittable: every line as a bitmap.
        assert_eq!(ipset_objects("add a \"b\n"), 2 * BITMAP_SET_WEIGHT);
    }

    #[test]
    fn remeasuring_is_rate_limited_per_uid() {
        let r = Remeasured::default();
        let now = Instant::now();
        assert!(r.may_remeasure(1000, now));
        assert!(!r.may_remeasure(1000, now + Duration::from_secs(1)));
        assert!(r.may_remeasure(1001, now));
        assert!(r.may_remeasure(1000, now + REMEASURE_EVERY));
    }

    #[test]
    fn unknown_counts_count_nothing() {
        let mut c = Counts::default();
        assert_eq!(c.total(), 0);
        *c.slot(Part::Ipset) = Some(5);
        c.netlink = Some(u64::MAX);
        assert_eq!(c.total(), u64::MAX);
        assert_eq!(c.get(Part::Ipset), Some(5));
    }
}
