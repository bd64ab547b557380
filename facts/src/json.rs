//! JSON facts (`<router>.json`): routers with their connected subnets (from which the
//! interfaces and addresses are rebuilt), main-table routes and policy rules. They carry no
//! firewall payloads in the test data; when they do (`firewall.iptables.raw_config`), they
//! are used.

use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;
use tsim_protocol::Cidr;

use super::ipaddr::{AddrFacts, IfaceFacts};
use super::{FactsError, RouterFacts};

#[derive(Deserialize)]
struct JsonFacts {
    #[serde(default)]
    network: Network,
    #[serde(default)]
    routing: Routing,
    #[serde(default)]
    firewall: Firewall,
}

#[derive(Deserialize, Default)]
struct Network {
    #[serde(default)]
    interfaces: Vec<Connected>,
}

#[derive(Deserialize)]
struct Connected {
    dev: String,
    dst: String,
    #[serde(default)]
    prefsrc: Option<String>,
}

#[derive(Deserialize, Default)]
struct Routing {
    #[serde(default)]
    tables: Vec<JsonRoute>,
    #[serde(default)]
    rules: Vec<JsonRule>,
}

#[derive(Deserialize)]
struct JsonRoute {
    dst: String,
    #[serde(default)]
    dev: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default)]
    metric: Option<u32>,
    #[serde(default)]
    prefsrc: Option<String>,
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize)]
struct JsonRule {
    priority: u32,
    #[serde(default)]
    src: Option<String>,
    #[serde(default)]
    dst: Option<String>,
    #[serde(default)]
    table: Option<String>,
}

#[derive(Deserialize, Default)]
struct Firewall {
    #[serde(default)]
    iptables: Option<JsonIptables>,
}

#[derive(Deserialize)]
struct JsonIptables {
    #[serde(default)]
    available: bool,
    #[serde(default)]
    raw_config: Option<String>,
}

/// Reads one JSON facts file into the same shape as raw facts (its routes and rules become
/// `ip route` / `ip rule` lines, so one compiler serves both).
pub fn load(path: &Path, name: &str) -> Result<RouterFacts, FactsError> {
    let text = super::raw::read_text(path)?;
    let facts: JsonFacts =
        serde_json::from_str(&text).map_err(|e| FactsError::new(path, e.line(), e.to_string()))?;
    let mut router = RouterFacts::empty(name, path);
    for c in &facts.network.interfaces {
        let Some(src) = &c.prefsrc else { continue };
        let (Ok(net), Ok(ip)) = (c.dst.parse::<Cidr>(), src.parse::<IpAddr>()) else {
            continue;
        };
        let Ok(cidr) = Cidr::new(ip, net.prefix()) else {
            continue;
        };
        let addr = AddrFacts {
            cidr,
            broadcast: None,
            scope: None,
            secondary: false,
        };
        match router.interfaces.iter_mut().find(|i| i.name == c.dev) {
            Some(iface) => iface.addrs.push(addr),
            None => router.interfaces.push(IfaceFacts {
                name: c.dev.clone(),
                up: true,
                addrs: vec![addr],
                line: 0,
            }),
        }
    }
    for r in &facts.routing.tables {
        let mut line = r.dst.clone();
        for (key, value) in [
            ("via", &r.gateway),
            ("dev", &r.dev),
            ("src", &r.prefsrc),
            ("proto", &r.protocol),
            ("scope", &r.scope),
        ] {
            if let Some(v) = value {
                line.push_str(&format!(" {key} {v}"));
            }
        }
        if let Some(m) = r.metric {
            line.push_str(&format!(" metric {m}"));
        }
        router.main_routes.push((0, line));
    }
    for rule in &facts.routing.rules {
        let mut line = format!(
            "{}:\tfrom {}",
            rule.priority,
            rule.src.as_deref().unwrap_or("all")
        );
        if let Some(dst) = &rule.dst {
            line.push_str(&format!(" to {dst}"));
        }
        line.push_str(&format!(
            " lookup {}",
            rule.table.as_deref().unwrap_or("main")
        ));
        router.rules.push((0, line));
    }
    if let Some(ipt) = facts.firewall.iptables.filter(|i| i.available) {
        router.iptables = ipt.raw_config;
    }
    Ok(router)
}
