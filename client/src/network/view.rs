//! Reading routers back from the kernel: links, IPv4 addresses, routes of every table, rules,
//! the ipset and iptables dumps (with counters), one request per router, routers at once.

use futures::future::try_join_all;
use serde::Serialize;
use tsim_protocol::net::Family;
use tsim_protocol::ops::{
    AddrInfo, AddrList, IpsetSave, IptablesSave, LinkInfo, LinkList, RouteInfo, RouteList,
    RuleInfo, RuleList,
};
use tsim_protocol::{NsName, Op, OpResult};

use crate::{Client, ClientError, RequestOptions};

/// What the kernel holds for one router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouterView {
    /// The router (its namespace).
    pub name: NsName,
    /// Its links, `lo` included.
    pub links: Vec<LinkInfo>,
    /// Its IPv4 addresses.
    pub addrs: Vec<AddrInfo>,
    /// Its IPv4 routes, every table.
    pub routes: Vec<RouteInfo>,
    /// Its IPv4 policy rules, the kernel's defaults included.
    pub rules: Vec<RuleInfo>,
    /// `ipset save`.
    pub ipset: String,
    /// `iptables-save -c`.
    pub iptables: String,
}

/// The operations that read one router.
fn ops(ns: &NsName) -> Vec<Op> {
    let inet = Some(Family::Inet);
    vec![
        Op::LinkList(LinkList {
            ns: ns.clone(),
            name: None,
        }),
        Op::AddrList(AddrList {
            ns: ns.clone(),
            dev: None,
            family: inet,
        }),
        Op::RouteList(RouteList {
            ns: ns.clone(),
            table: None,
            family: inet,
        }),
        Op::RuleList(RuleList {
            ns: ns.clone(),
            family: inet,
        }),
        Op::IpsetSave(IpsetSave { ns: ns.clone() }),
        Op::IptablesSave(IptablesSave {
            ns: ns.clone(),
            table: None,
            counters: true,
            ipv6: false,
        }),
    ]
}

/// Reads one router, in one request.
pub async fn read_router(client: &Client, ns: &NsName) -> Result<RouterView, ClientError> {
    let results = client.request(ops(ns), RequestOptions::default()).await?;
    let mut view = RouterView {
        name: ns.clone(),
        links: Vec::new(),
        addrs: Vec::new(),
        routes: Vec::new(),
        rules: Vec::new(),
        ipset: String::new(),
        iptables: String::new(),
    };
    for result in results {
        match result {
            OpResult::LinkList(l) => view.links = l.links,
            OpResult::AddrList(a) => view.addrs = a.addrs,
            OpResult::RouteList(r) => view.routes = r.routes,
            OpResult::RuleList(r) => view.rules = r.rules,
            OpResult::IpsetSave(s) => view.ipset = s.payload,
            OpResult::IptablesSave(s) => view.iptables = s.payload,
            other => {
                return Err(ClientError::Protocol(format!(
                    "unexpected result {} while reading router {ns}",
                    other.name()
                )));
            }
        }
    }
    Ok(view)
}

/// Reads several routers at once (one request each, on the same connection).
pub async fn read_routers(
    client: &Client,
    names: &[NsName],
) -> Result<Vec<RouterView>, ClientError> {
    try_join_all(names.iter().map(|n| read_router(client, n))).await
}
