//! An in-memory kernel for unit tests (compiled only for `cargo test`): routing netlink for a
//! few namespaces, behind the same [`Transport`] seam as the real sockets, recording every
//! request and able to fail the k-th change with an errno.
//!
//! It models what the helper's operations and their undo rely on, with the kernel's own
//! answers: links (create with `NLM_F_EXCL`, `EEXIST` on a taken name, echo, set with flags
//! and a change mask, rename, controller; going down takes the link's IPv4 routes and its
//! neighbours, a new MAC its neighbours; a deleted bridge frees its ports; `ENODEV` for an
//! unknown index or name), addresses (`EEXIST`, `EADDRNOTAVAIL`; deleting an IPv4 primary
//! takes the secondaries of its subnet, and the last IPv4 address of a link takes the
//! link's IPv4 routes and neighbours), routes (identity: family, table, destination, TOS,
//! metric; `NLM_F_EXCL`, `NLM_F_REPLACE`, `ENETDOWN` through a link that is down, delete by
//! the attributes given, the lowest metric first when none is given, `ESRCH`), policy
//! rules (the default rules, kept in order of preference; the kernel's default preference;
//! `EEXIST` for an identical rule, the preference compared only when given; a delete
//! matches the first rule with every field it gives), and neighbours (replace,
//! `ENOENT`), veth pairs across namespaces (the peer born in the namespace of
//! `IFLA_NET_NS_FD`; deleting one end, or freeing its namespace, takes the other).
//!
//! [`ns`] adds what the kernel does outside routing netlink: named namespaces (create,
//! open, detach with a handle that keeps one alive, reattach, rename), sysctls, and the
//! firewall tools of [`tools`]. It does not model what the helper does not ask of it (kernel
//! routes made for an address, gateway reachability, sockets). The real-kernel tests in
//! `tests/` stay the proof; this is for what they cannot show: a failure at any step.

mod ns;
mod tools;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::num::NonZeroI32;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use rtnetlink::packet_core::{
    DoneMessage, ErrorMessage, NLM_F_CREATE, NLM_F_DUMP, NLM_F_ECHO, NLM_F_EXCL, NLM_F_MULTIPART,
    NLM_F_REPLACE, NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::neighbour::{NeighbourAttribute, NeighbourMessage};
use rtnetlink::packet_route::route::{RouteAttribute, RouteMessage};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use tsim_protocol::NsName;

use crate::kernel::netlink::{Netlink, Replies, Transport};

/// The kernel's tables inside one namespace.
#[derive(Debug, Clone, Default)]
struct NsState {
    links: BTreeMap<u32, LinkMessage>,
    next_index: u32,
    addrs: Vec<AddressMessage>,
    routes: Vec<RouteMessage>,
    rules: Vec<RuleMessage>,
    neighs: Vec<NeighbourMessage>,
    /// Sysctls written or read so far (see [`ns`] for the defaults).
    sysctls: BTreeMap<String, String>,
    /// The firewall's tables and sets.
    firewall: tools::Firewall,
    /// Veth ends here: index, and the peer's namespace (inode) and index.
    peers: BTreeMap<u32, (u64, u32)>,
}

impl NsState {
    /// A new namespace's tables: only `lo`, and the default rules.
    fn fresh() -> Self {
        let mut ns = NsState {
            next_index: 2,
            ..NsState::default()
        };
        let mut lo = LinkMessage::default();
        lo.header.index = 1;
        lo.header.flags = LinkFlags::Up | LinkFlags::Loopback;
        lo.attributes = vec![
            LinkAttribute::IfName("lo".into()),
            LinkAttribute::Mtu(65536),
        ];
        ns.links.insert(1, lo);
        for (family, pref, table) in [
            (AddressFamily::Inet, 0, 255),
            (AddressFamily::Inet, 32766, 254),
            (AddressFamily::Inet, 32767, 253),
            (AddressFamily::Inet6, 0, 255),
            (AddressFamily::Inet6, 32766, 254),
        ] {
            let mut rule = RuleMessage::default();
            rule.header.family = family;
            rule.header.table = table;
            rule.header.action = RuleAction::ToTable;
            rule.attributes = vec![
                RuleAttribute::Priority(pref),
                RuleAttribute::Table(u32::from(table)),
            ];
            ns.rules.push(rule);
        }
        ns.rules.sort_by_key(rule_pref);
        ns
    }
}

#[derive(Debug, Default)]
struct State {
    /// Every namespace alive, by inode.
    namespaces: BTreeMap<u64, NsState>,
    /// `/run/netns`: name to inode.
    mounted: BTreeMap<String, u64>,
    /// Namespaces kept alive by a handle from `detach`: the read end of a pipe whose write
    /// end is the handle, so the fake sees the handle closed.
    held: Vec<(std::os::fd::OwnedFd, u64)>,
    /// The descriptors handed out by `open` and `detach`, to the namespace they stand for.
    fds: BTreeMap<std::os::fd::RawFd, u64>,
    /// The inode the next namespace gets.
    next_ino: u64,
    /// Every change so far, in a word or two.
    log: Vec<String>,
    /// Changing requests received so far.
    changes: usize,
    /// Fail the change with this number (1-based) with this errno.
    fail_at: Option<(usize, i32)>,
}

/// The fake kernel, shared by the namespaces in it.
#[derive(Debug, Clone, Default)]
pub(crate) struct FakeKernel {
    state: Arc<Mutex<State>>,
}

/// One namespace of a [`FakeKernel`], as a [`Transport`].
#[derive(Debug)]
struct FakeSocket {
    kernel: FakeKernel,
    ino: u64,
}

impl FakeKernel {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.reap();
        state
    }

    /// Adds a fresh namespace under `name` (only `lo`, the default rules and sysctls) and
    /// returns its inode and a socket inside it.
    pub(crate) fn add_ns(&self, name: &NsName) -> (u64, Netlink) {
        let ino = self.lock().make_ns(name.as_str(), true);
        (ino, self.socket(name, ino))
    }

    /// A netlink socket inside the namespace with inode `ino`.
    fn socket(&self, name: &NsName, ino: u64) -> Netlink {
        Netlink::over(
            name.clone(),
            Arc::new(FakeSocket {
                kernel: self.clone(),
                ino,
            }),
        )
    }

    /// Fails the `k`-th change from now on (1-based) with `errno`, once.
    pub(crate) fn fail_change(&self, k: usize, errno: i32) {
        let mut state = self.lock();
        state.fail_at = Some((state.changes + k, errno));
    }

    /// The changing requests received so far.
    pub(crate) fn changes(&self) -> usize {
        self.lock().changes
    }

    /// What change number `k` (1-based, counted since the start) was.
    pub(crate) fn change(&self, k: usize) -> Option<String> {
        self.lock().log.get(k.checked_sub(1)?).cloned()
    }

    /// Every mounted namespace with everything in it, in a canonical text (attributes
    /// sorted), for comparing states; namespaces are told apart by name, so an inode that
    /// changed (a namespace made again) shows too.
    pub(crate) fn snapshot(&self) -> String {
        let state = self.lock();
        let mut out = String::new();
        for (name, ino) in &state.mounted {
            out += &format!("namespace {name} ({ino})\n");
            if let Some(s) = state.namespaces.get(ino) {
                out += &ns_text(s);
            }
            out += "\n";
        }
        let unmounted = state.namespaces.len() - state.mounted.len();
        out + &format!("{unmounted} namespaces alive without a name\n")
    }
}

/// Everything in one namespace, in a canonical text.
fn ns_text(s: &NsState) -> String {
    fn sorted<T: std::fmt::Debug>(items: &[T]) -> Vec<String> {
        let mut v: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
        v.sort();
        v
    }
    let mut out = String::new();
    for (index, link) in &s.links {
        out += &format!(
            "link {index} {:?} {:?} peer {:?}\n",
            link.header.flags,
            sorted(&link.attributes),
            s.peers.get(index)
        );
    }
    let mut objects: Vec<String> = Vec::new();
    objects.extend(
        s.addrs
            .iter()
            .map(|a| format!("addr {:?} {:?}", a.header, sorted(&a.attributes))),
    );
    objects.extend(
        s.routes
            .iter()
            .map(|r| format!("route {:?} {:?}", r.header, sorted(&r.attributes))),
    );
    objects.extend(
        s.rules
            .iter()
            .map(|r| format!("rule {:?} {:?}", r.header, sorted(&r.attributes))),
    );
    objects.extend(
        s.neighs
            .iter()
            .map(|n| format!("neigh {:?} {:?}", n.header, sorted(&n.attributes))),
    );
    objects.extend(
        s.sysctls
            .iter()
            .filter(|(k, v)| s.sysctl_differs(k, v))
            .map(|(k, v)| format!("sysctl {k} = {v}")),
    );
    objects.sort();
    out += &objects.join("\n");
    out + "\n" + &s.firewall.canonical()
}

impl Transport for FakeSocket {
    fn send(&self, request: NetlinkMessage<RouteNetlinkMessage>) -> Option<Replies> {
        let flags = request.header.flags;
        let NetlinkPayload::InnerMessage(message) = request.payload else {
            return Some(replies(vec![error(libc::EINVAL)]));
        };
        let mut state = self.kernel.lock();
        let changing = is_change(&message);
        if changing {
            let what = format!("{} in {}", change_kind(&message), self.ino);
            if let Err(errno) = state.count_change(what) {
                return Some(replies(vec![error(errno)]));
            }
        }
        if changing {
            if let Some(answer) = state.veth_change(self.ino, &message, flags) {
                return Some(replies(match answer {
                    Ok(echo) if flags & NLM_F_ECHO != 0 => {
                        echo.into_iter().map(inner).chain([ack()]).collect()
                    }
                    Ok(_) => vec![ack()],
                    Err(errno) => vec![error(errno)],
                }));
            }
        }
        let ns = state.namespaces.get_mut(&self.ino)?;
        let answer = if flags & NLM_F_DUMP == NLM_F_DUMP {
            dump(ns, &message).map(|items| {
                let mut out: Vec<_> = items.into_iter().map(inner).collect();
                let mut done = NetlinkMessage::new(
                    Default::default(),
                    NetlinkPayload::Done(DoneMessage::default()),
                );
                done.header.flags = NLM_F_MULTIPART;
                out.push(done);
                out
            })
        } else if changing {
            change(ns, message, flags).map(|echo| {
                let mut out: Vec<_> = if flags & NLM_F_ECHO != 0 {
                    echo.into_iter().map(inner).collect()
                } else {
                    Vec::new()
                };
                out.push(ack());
                out
            })
        } else {
            get(ns, &message).map(|m| vec![inner(m)])
        };
        Some(replies(answer.unwrap_or_else(|errno| vec![error(errno)])))
    }
}

fn replies(messages: Vec<NetlinkMessage<RouteNetlinkMessage>>) -> Replies {
    futures::stream::iter(messages).boxed()
}

fn inner(m: RouteNetlinkMessage) -> NetlinkMessage<RouteNetlinkMessage> {
    NetlinkMessage::new(Default::default(), NetlinkPayload::InnerMessage(m))
}

fn ack() -> NetlinkMessage<RouteNetlinkMessage> {
    NetlinkMessage::new(
        Default::default(),
        NetlinkPayload::Error(ErrorMessage::default()),
    )
}

fn error(errno: i32) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut e = ErrorMessage::default();
    e.code = NonZeroI32::new(-errno);
    NetlinkMessage::new(Default::default(), NetlinkPayload::Error(e))
}

/// The name of a changing request, for the change log.
fn change_kind(m: &RouteNetlinkMessage) -> &'static str {
    use RouteNetlinkMessage as M;
    match m {
        M::NewLink(_) => "NewLink",
        M::SetLink(_) => "SetLink",
        M::DelLink(_) => "DelLink",
        M::NewAddress(_) => "NewAddress",
        M::DelAddress(_) => "DelAddress",
        M::NewRoute(_) => "NewRoute",
        M::DelRoute(_) => "DelRoute",
        M::NewRule(_) => "NewRule",
        M::DelRule(_) => "DelRule",
        M::NewNeighbour(_) => "NewNeighbour",
        M::DelNeighbour(_) => "DelNeighbour",
        _ => "another request",
    }
}

fn is_change(m: &RouteNetlinkMessage) -> bool {
    use RouteNetlinkMessage as M;
    matches!(
        m,
        M::NewLink(_)
            | M::SetLink(_)
            | M::DelLink(_)
            | M::NewAddress(_)
            | M::DelAddress(_)
            | M::NewRoute(_)
            | M::DelRoute(_)
            | M::NewRule(_)
            | M::DelRule(_)
            | M::NewNeighbour(_)
            | M::DelNeighbour(_)
    )
}

type Answer<T> = Result<T, i32>;

fn link_name(l: &LinkMessage) -> Option<&str> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

/// The link a request names by index, or else by `IFLA_IFNAME`.
fn find_link(ns: &NsState, m: &LinkMessage) -> Answer<u32> {
    if m.header.index != 0 {
        return ns
            .links
            .contains_key(&m.header.index)
            .then_some(m.header.index)
            .ok_or(libc::ENODEV);
    }
    let name = link_name(m).ok_or(libc::EINVAL)?;
    ns.links
        .iter()
        .find(|(_, l)| link_name(l) == Some(name))
        .map(|(i, _)| *i)
        .ok_or(libc::ENODEV)
}

fn get(ns: &NsState, m: &RouteNetlinkMessage) -> Answer<RouteNetlinkMessage> {
    match m {
        RouteNetlinkMessage::GetLink(l) => {
            let index = find_link(ns, l)?;
            Ok(RouteNetlinkMessage::NewLink(ns.links[&index].clone()))
        }
        _ => Err(libc::EOPNOTSUPP),
    }
}

fn dump(ns: &NsState, m: &RouteNetlinkMessage) -> Answer<Vec<RouteNetlinkMessage>> {
    use RouteNetlinkMessage as M;
    let family_ok =
        |want: AddressFamily, have: AddressFamily| want == AddressFamily::Unspec || want == have;
    Ok(match m {
        M::GetLink(_) => ns.links.values().cloned().map(M::NewLink).collect(),
        M::GetAddress(q) => ns
            .addrs
            .iter()
            .filter(|a| family_ok(q.header.family, a.header.family))
            .filter(|a| q.header.index == 0 || q.header.index == a.header.index)
            .cloned()
            .map(M::NewAddress)
            .collect(),
        M::GetRoute(q) => {
            let table = route_table(q);
            ns.routes
                .iter()
                .filter(|r| family_ok(q.header.address_family, r.header.address_family))
                .filter(|r| table == 0 || route_table(r) == table)
                .cloned()
                .map(M::NewRoute)
                .collect()
        }
        M::GetRule(q) => ns
            .rules
            .iter()
            .filter(|r| family_ok(q.header.family, r.header.family))
            .cloned()
            .map(M::NewRule)
            .collect(),
        M::GetNeighbour(q) => {
            let index = q.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::IfIndex(i) => Some(*i),
                _ => None,
            });
            ns.neighs
                .iter()
                .filter(|n| family_ok(q.header.family, n.header.family))
                .filter(|n| index.is_none_or(|i| n.header.ifindex == i))
                .cloned()
                .map(M::NewNeighbour)
                .collect()
        }
        _ => return Err(libc::EOPNOTSUPP),
    })
}

/// Replaces or adds each attribute of `new` in `into`, by kind.
fn merge<T: std::fmt::Debug>(into: &mut Vec<T>, new: Vec<T>) {
    let kind = |a: &T| {
        let text = format!("{a:?}");
        text.split('(').next().unwrap_or_default().to_owned()
    };
    for attr in new {
        let k = kind(&attr);
        into.retain(|a| kind(a) != k);
        into.push(attr);
    }
}

fn change(
    ns: &mut NsState,
    m: RouteNetlinkMessage,
    flags: u16,
) -> Answer<Vec<RouteNetlinkMessage>> {
    use RouteNetlinkMessage as M;
    match m {
        M::NewLink(l) if flags & NLM_F_CREATE != 0 && l.header.index == 0 => new_link(ns, l, flags),
        M::NewLink(l) | M::SetLink(l) => set_link(ns, l).map(|()| Vec::new()),
        M::DelLink(l) => {
            let index = find_link(ns, &l)?;
            del_link(ns, index);
            Ok(Vec::new())
        }
        M::NewAddress(a) => new_addr(ns, a, flags).map(|()| Vec::new()),
        M::DelAddress(a) => del_addr(ns, &a).map(|()| Vec::new()),
        M::NewRoute(r) => new_route(ns, r, flags).map(|()| Vec::new()),
        M::DelRoute(r) => del_route(ns, &r).map(|()| Vec::new()),
        M::NewRule(r) => new_rule(ns, r, flags),
        M::DelRule(r) => del_rule(ns, &r).map(|()| Vec::new()),
        M::NewNeighbour(n) => new_neigh(ns, n, flags).map(|()| Vec::new()),
        M::DelNeighbour(n) => {
            let key = neigh_key(&n);
            let before = ns.neighs.len();
            ns.neighs.retain(|x| neigh_key(x) != key);
            if ns.neighs.len() == before {
                return Err(libc::ENOENT);
            }
            Ok(Vec::new())
        }
        _ => Err(libc::EOPNOTSUPP),
    }
}

fn new_link(ns: &mut NsState, mut l: LinkMessage, flags: u16) -> Answer<Vec<RouteNetlinkMessage>> {
    let name = link_name(&l).ok_or(libc::EINVAL)?.to_owned();
    if ns.links.values().any(|x| link_name(x) == Some(&name)) {
        return if flags & NLM_F_EXCL != 0 {
            Err(libc::EEXIST)
        } else {
            Err(libc::EOPNOTSUPP)
        };
    }
    check_controller(ns, &l.attributes)?;
    let index = ns.next_index;
    ns.next_index += 1;
    l.header.index = index;
    l.header.flags &= l.header.change_mask;
    l.header.change_mask = LinkFlags::empty();
    let mut defaults = vec![
        LinkAttribute::Mtu(1500),
        LinkAttribute::Address(vec![0x02, 0, 0, 0, (index >> 8) as u8, index as u8]),
    ];
    merge(&mut defaults, std::mem::take(&mut l.attributes));
    l.attributes = defaults;
    l.attributes
        .retain(|a| !matches!(a, LinkAttribute::Controller(0)));
    ns.links.insert(index, l.clone());
    Ok(vec![RouteNetlinkMessage::NewLink(l)])
}

fn check_controller(ns: &NsState, attributes: &[LinkAttribute]) -> Answer<()> {
    for a in attributes {
        if let LinkAttribute::Controller(m) = a {
            if *m != 0 && !ns.links.contains_key(m) {
                return Err(libc::ENODEV);
            }
        }
    }
    Ok(())
}

fn set_link(ns: &mut NsState, l: LinkMessage) -> Answer<()> {
    let index = find_link(ns, &l)?;
    if let Some(name) = link_name(&l) {
        if ns
            .links
            .iter()
            .any(|(i, x)| *i != index && link_name(x) == Some(name))
        {
            return Err(libc::EEXIST);
        }
    }
    check_controller(ns, &l.attributes)?;
    let link = ns.links.get_mut(&index).ok_or(libc::ENODEV)?;
    let mask = l.header.change_mask;
    let was_up = link.header.flags.contains(LinkFlags::Up);
    let old_mac = link
        .attributes
        .iter()
        .find(|a| matches!(a, LinkAttribute::Address(_)))
        .cloned();
    link.header.flags = (link.header.flags & !mask) | (l.header.flags & mask);
    merge(&mut link.attributes, l.attributes);
    link.attributes
        .retain(|a| !matches!(a, LinkAttribute::Controller(0)));
    let down = was_up && !link.header.flags.contains(LinkFlags::Up);
    let new_mac = link
        .attributes
        .iter()
        .find(|a| matches!(a, LinkAttribute::Address(_)))
        .cloned();
    // Going down takes the link's IPv4 routes and every neighbour on it; a new MAC takes
    // the neighbours (`neigh_changeaddr`).
    if down {
        ns.routes
            .retain(|r| !(r.header.address_family == AddressFamily::Inet && route_uses(r, index)));
    }
    if down || new_mac != old_mac {
        ns.neighs.retain(|n| n.header.ifindex != index);
    }
    Ok(())
}

fn del_link(ns: &mut NsState, index: u32) {
    ns.links.remove(&index);
    ns.forget_sysctls(index);
    for link in ns.links.values_mut() {
        link.attributes
            .retain(|a| !matches!(a, LinkAttribute::Controller(m) if *m == index));
    }
    ns.addrs.retain(|a| a.header.index != index);
    ns.routes.retain(|r| !route_uses(r, index));
    ns.neighs.retain(|n| n.header.ifindex != index);
}

fn addr_of(a: &AddressMessage) -> Option<IpAddr> {
    let local = a.attributes.iter().find_map(|x| match x {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    local.or_else(|| {
        a.attributes.iter().find_map(|x| match x {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        })
    })
}

fn addr_key(a: &AddressMessage) -> (u32, AddressFamily, Option<IpAddr>, u8) {
    (
        a.header.index,
        a.header.family,
        addr_of(a),
        a.header.prefix_len,
    )
}

/// Whether two IPv4 addresses with prefix `len` are in the same subnet.
fn same_subnet(a: IpAddr, b: IpAddr, len: u8) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        _ => false,
    }
}

fn new_addr(ns: &mut NsState, a: AddressMessage, flags: u16) -> Answer<()> {
    if !ns.links.contains_key(&a.header.index) {
        return Err(libc::ENODEV);
    }
    let ip = addr_of(&a).ok_or(libc::EINVAL)?;
    // The kernel's identity of an address: its link, its local address, and (IPv4) its
    // prefix length.
    let exists = ns.addrs.iter().position(|x| {
        x.header.index == a.header.index
            && addr_of(x) == Some(ip)
            && (ip.is_ipv6() || x.header.prefix_len == a.header.prefix_len)
    });
    match exists {
        Some(_) if flags & NLM_F_EXCL != 0 => Err(libc::EEXIST),
        Some(i) if flags & NLM_F_REPLACE != 0 => {
            ns.addrs[i] = a;
            Ok(())
        }
        Some(_) => Err(libc::EEXIST),
        None => {
            ns.addrs.push(a);
            Ok(())
        }
    }
}

fn del_addr(ns: &mut NsState, a: &AddressMessage) -> Answer<()> {
    let key = addr_key(a);
    let pos = ns
        .addrs
        .iter()
        .position(|x| addr_key(x) == key)
        .ok_or(libc::EADDRNOTAVAIL)?;
    let gone = ns.addrs.remove(pos);
    let (index, ip, len) = (gone.header.index, addr_of(&gone), gone.header.prefix_len);
    let Some(ip @ IpAddr::V4(_)) = ip else {
        return Ok(());
    };
    // A primary (the first of its subnet on the link) takes its secondaries with it.
    let primary = !ns.addrs[..pos].iter().any(|x| {
        x.header.index == index
            && x.header.prefix_len == len
            && addr_of(x).is_some_and(|o| same_subnet(o, ip, len))
    });
    if primary {
        ns.addrs.retain(|x| {
            !(x.header.index == index
                && x.header.prefix_len == len
                && addr_of(x).is_some_and(|o| same_subnet(o, ip, len)))
        });
    }
    // Routes with this preferred source go; the link's last IPv4 address takes its IPv4
    // routes and neighbours.
    ns.routes.retain(|r| {
        !r.attributes
            .iter()
            .any(|x| matches!(x, RouteAttribute::PrefSource(s) if route_ip(s) == Some(ip)))
    });
    let last = !ns
        .addrs
        .iter()
        .any(|x| x.header.index == index && x.header.family == AddressFamily::Inet);
    if last {
        ns.routes
            .retain(|r| !(r.header.address_family == AddressFamily::Inet && route_uses(r, index)));
        ns.neighs
            .retain(|n| !(n.header.family == AddressFamily::Inet && n.header.ifindex == index));
    }
    Ok(())
}

fn route_ip(a: &rtnetlink::packet_route::route::RouteAddress) -> Option<IpAddr> {
    use rtnetlink::packet_route::route::RouteAddress;
    match a {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

fn route_table(r: &RouteMessage) -> u32 {
    r.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(r.header.table))
}

fn route_uses(r: &RouteMessage, index: u32) -> bool {
    r.attributes.iter().any(|a| match a {
        RouteAttribute::Oif(i) => *i == index,
        RouteAttribute::MultiPath(hops) => hops.iter().any(|h| h.interface_index == index),
        _ => false,
    })
}

fn route_attr<'a>(r: &'a RouteMessage, kind: &str) -> Option<&'a RouteAttribute> {
    r.attributes
        .iter()
        .find(|a| format!("{a:?}").split('(').next() == Some(kind))
}

/// The kernel's identity of a route: family, table, destination and its length, TOS, metric.
fn route_key(r: &RouteMessage) -> (AddressFamily, u32, Option<RouteAttribute>, u8, u8, u32) {
    let metric = match route_attr(r, "Priority") {
        Some(RouteAttribute::Priority(p)) => *p,
        _ => 0,
    };
    (
        r.header.address_family,
        route_table(r),
        route_attr(r, "Destination").cloned(),
        r.header.destination_prefix_length,
        r.header.tos,
        metric,
    )
}

/// A route as the kernel reports it: the table in its attribute, and in the header when it
/// fits (otherwise `RT_TABLE_COMPAT`).
fn normal_route(mut r: RouteMessage) -> RouteMessage {
    let table = route_table(&r);
    r.header.table = u8::try_from(table).unwrap_or(252);
    r.attributes
        .retain(|a| !matches!(a, RouteAttribute::Table(_)));
    r.attributes.push(RouteAttribute::Table(table));
    r
}

fn new_route(ns: &mut NsState, r: RouteMessage, flags: u16) -> Answer<()> {
    for a in &r.attributes {
        if let RouteAttribute::Oif(i) = a {
            let link = ns.links.get(i).ok_or(libc::ENODEV)?;
            // IPv4 refuses a nexthop on a link that is down.
            if r.header.address_family == AddressFamily::Inet
                && !link.header.flags.contains(LinkFlags::Up)
            {
                return Err(libc::ENETDOWN);
            }
        }
    }
    let r = normal_route(r);
    let key = route_key(&r);
    match ns.routes.iter().position(|x| route_key(x) == key) {
        Some(_) if flags & NLM_F_EXCL != 0 => Err(libc::EEXIST),
        Some(i) if flags & NLM_F_REPLACE != 0 => {
            ns.routes[i] = r;
            Ok(())
        }
        Some(_) => Err(libc::EEXIST),
        None if flags & NLM_F_CREATE != 0 => {
            ns.routes.push(r);
            Ok(())
        }
        None => Err(libc::ENOENT),
    }
}

fn del_route(ns: &mut NsState, q: &RouteMessage) -> Answer<()> {
    use rtnetlink::packet_route::route::{RouteProtocol, RouteScope, RouteType};
    let q = normal_route(q.clone());
    let (family, table, dst, dst_len, tos, _) = route_key(&q);
    let matches = |r: &RouteMessage| {
        let (f, t, d, l, o, _) = route_key(r);
        let given_match = ["Priority", "Oif", "Gateway", "PrefSource"]
            .iter()
            .all(|k| route_attr(&q, k).is_none_or(|a| route_attr(r, k) == Some(a)));
        (f, t, d, l, o) == (family, table, dst.clone(), dst_len, tos)
            && given_match
            && (q.header.scope == RouteScope::NoWhere || q.header.scope == r.header.scope)
            && (q.header.protocol == RouteProtocol::Unspec
                || q.header.protocol == r.header.protocol)
            && (q.header.kind == RouteType::Unspec || q.header.kind == r.header.kind)
    };
    // Without a metric, the kernel deletes the matching route with the lowest one.
    let pos = ns
        .routes
        .iter()
        .enumerate()
        .filter(|(_, r)| matches(r))
        .min_by_key(|(_, r)| route_key(r).5)
        .map(|(i, _)| i);
    match pos {
        Some(i) => {
            ns.routes.remove(i);
            Ok(())
        }
        None => Err(libc::ESRCH),
    }
}

/// A rule in canonical form, for the kernel's "every field" identity.
fn rule_text(r: &RuleMessage) -> String {
    let mut attrs: Vec<String> = r.attributes.iter().map(|a| format!("{a:?}")).collect();
    attrs.sort();
    format!("{:?} {attrs:?}", r.header)
}

fn new_rule(ns: &mut NsState, mut r: RuleMessage, flags: u16) -> Answer<Vec<RouteNetlinkMessage>> {
    let mut given_pref = true;
    if !r
        .attributes
        .iter()
        .any(|a| matches!(a, RuleAttribute::Priority(_)))
    {
        // The kernel's default (`fib_default_rule_pref`): one below the preference of the
        // second rule of the family, or 0 if that one is at 0.
        let second = ns
            .rules
            .iter()
            .filter(|x| x.header.family == r.header.family)
            .nth(1)
            .map_or(0, rule_pref);
        r.attributes
            .push(RuleAttribute::Priority(second.saturating_sub(1)));
        given_pref = false;
    }
    // `rule_exists`: every field, the preference only when the request gave one.
    let text = |x: &RuleMessage| match given_pref {
        true => rule_text(x),
        false => {
            let mut x = x.clone();
            x.attributes
                .retain(|a| !matches!(a, RuleAttribute::Priority(_)));
            rule_text(&x)
        }
    };
    if flags & NLM_F_EXCL != 0 && ns.rules.iter().any(|x| text(x) == text(&r)) {
        return Err(libc::EEXIST);
    }
    // The kernel keeps the rules in order of preference, a new one after those with the same.
    let pref = rule_pref(&r);
    let at = ns
        .rules
        .iter()
        .position(|x| rule_pref(x) > pref)
        .unwrap_or(ns.rules.len());
    ns.rules.insert(at, r.clone());
    Ok(vec![RouteNetlinkMessage::NewRule(r)])
}

fn rule_pref(r: &RuleMessage) -> u32 {
    r.attributes
        .iter()
        .find_map(|a| match a {
            RuleAttribute::Priority(p) => Some(*p),
            _ => None,
        })
        .unwrap_or(0)
}

fn del_rule(ns: &mut NsState, q: &RuleMessage) -> Answer<()> {
    let pos = ns.rules.iter().position(|r| {
        let h = (&q.header, &r.header);
        (h.0.family == AddressFamily::Unspec || h.0.family == h.1.family)
            && (h.0.table == 0 || h.0.table == h.1.table)
            && (h.0.action == RuleAction::Unspec || h.0.action == h.1.action)
            && (h.0.dst_len == 0 || h.0.dst_len == h.1.dst_len)
            && (h.0.src_len == 0 || h.0.src_len == h.1.src_len)
            && h.0.tos == h.1.tos
            && q.attributes.iter().all(|a| r.attributes.contains(a))
    });
    match pos {
        Some(i) => {
            ns.rules.remove(i);
            Ok(())
        }
        None => Err(libc::ENOENT),
    }
}

fn neigh_key(n: &NeighbourMessage) -> (u32, AddressFamily, Option<NeighbourAttribute>) {
    let dst = n
        .attributes
        .iter()
        .find(|a| matches!(a, NeighbourAttribute::Destination(_)))
        .cloned();
    (n.header.ifindex, n.header.family, dst)
}

fn new_neigh(ns: &mut NsState, n: NeighbourMessage, flags: u16) -> Answer<()> {
    if !ns.links.contains_key(&n.header.ifindex) {
        return Err(libc::ENODEV);
    }
    let key = neigh_key(&n);
    match ns.neighs.iter().position(|x| neigh_key(x) == key) {
        Some(_) if flags & NLM_F_EXCL != 0 => Err(libc::EEXIST),
        Some(i) if flags & NLM_F_REPLACE != 0 => {
            ns.neighs[i] = n;
            Ok(())
        }
        Some(_) => Err(libc::EEXIST),
        None if flags & NLM_F_CREATE != 0 => {
            ns.neighs.push(n);
            Ok(())
        }
        None => Err(libc::ENOENT),
    }
}
