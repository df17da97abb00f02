//! Raw inventory -> validated `Inventory`. Every check reports the place of the value it
//! rejects; all problems are collected so one run shows them all.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::time::Duration;

use ipnet::Ipv4Net;
use vrrp::{AdvertInterval, ParamError, Priority, Vrid};

use crate::diag::{Pos, Sink};
use crate::raw::*;
use crate::types::*;

/// Oldest Kubernetes minor release kubeha renders configuration for.
pub const MIN_KUBE_MINOR: u32 = 28;

pub(crate) fn validate(raw: RawInventory, sink: &mut Sink) -> Option<Inventory> {
    let cluster = cluster(&raw.cluster, sink);
    let endpoint_raw = &raw.endpoint.value;
    let ssh_defaults = raw.ssh.as_ref().map(|s| &s.value);
    let nodes = nodes(&raw.nodes, ssh_defaults, sink);
    let etcd = etcd(raw.etcd.as_ref(), sink);
    let networking = networking(raw.networking.as_ref(), sink);
    let images = images(raw.images.as_ref(), sink);
    let runtime = runtime(raw.runtime.as_ref(), sink);
    let frontdoor = frontdoor(raw.frontdoor.as_ref(), sink);
    let kubelet = kubelet(raw.kubelet.as_ref(), sink);
    let kubeadm = kubeadm(raw.kubeadm.as_ref(), cluster.as_ref(), sink);
    let pki = pki(raw.pki.as_ref(), sink);
    let packages = packages(raw.packages.as_ref(), sink);
    let host = host(raw.host.as_ref(), sink);
    let hosts = raw.hosts.as_ref().map_or(Some(HostsEntries::All), |s| {
        one_of(
            s,
            "hosts",
            &[
                ("all", HostsEntries::All),
                ("control-plane", HostsEntries::ControlPlane),
                ("none", HostsEntries::None),
            ],
            sink,
        )
    });
    let endpoint = endpoint(endpoint_raw, &nodes, sink);

    // Cross-field checks need the parsed parts; each only runs when its inputs parsed.
    roles_and_etcd(&raw, &nodes, etcd.as_ref(), sink);
    if let (Some(ep), Some(fd)) = (endpoint.as_ref(), frontdoor.as_ref()) {
        ports(endpoint_raw, ep, fd, sink);
    }
    if let Some(ep) = endpoint.as_ref() {
        vip_placement(&raw, ep, &nodes, sink);
    }
    if let Some(net) = networking.as_ref() {
        overlaps(&raw, net, endpoint.as_ref(), &nodes, sink);
    }

    if sink.has_errors() {
        return None;
    }
    let mut inv = Inventory {
        cluster: cluster?,
        endpoint: endpoint?,
        nodes: nodes.into_iter().map(|(n, _)| n).collect(),
        etcd: etcd?,
        networking: networking?,
        images: images?,
        runtime: runtime?,
        frontdoor: frontdoor?,
        kubelet: kubelet?,
        kubeadm: kubeadm?,
        pki: pki?,
        packages: packages?,
        hosts: hosts?,
        host: host?,
    };
    inv.assign_priorities();
    Some(inv)
}

// ---------- small parsers that report at the value's place ----------

fn pos<T>(s: &S<T>) -> Pos {
    Pos::from(s)
}

fn parse_duration(s: &S<String>, field: &str, sink: &mut Sink) -> Option<Duration> {
    match humantime::parse_duration(s.value.trim()) {
        Ok(d) => Some(d),
        Err(e) => {
            sink.error(
                pos(s),
                field,
                format!("`{}` is not a duration: {e}", s.value),
                "write it like 250ms, 2s, 1h or 365d",
            );
            None
        }
    }
}

fn one_of<T: Copy>(
    s: &S<String>,
    field: &str,
    choices: &[(&str, T)],
    sink: &mut Sink,
) -> Option<T> {
    if let Some((_, v)) = choices.iter().find(|(name, _)| *name == s.value) {
        return Some(*v);
    }
    let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
    sink.error(
        pos(s),
        field,
        format!("`{}` is not one of: {}", s.value, names.join(", ")),
        format!("use one of {}", names.join(" | ")),
    );
    None
}

/// `a.b.c.d` or `a.b.c.d/len`: an address and its subnet when a prefix was given.
fn parse_host_address(
    s: &S<String>,
    field: &str,
    sink: &mut Sink,
) -> Option<(Ipv4Addr, Option<Ipv4Net>)> {
    let text = s.value.trim();
    let parsed: Option<(Ipv4Addr, Option<Ipv4Net>)> = if text.contains('/') {
        text.parse::<Ipv4Net>()
            .ok()
            .map(|n| (n.addr(), Some(n.trunc())))
    } else {
        text.parse::<Ipv4Addr>().ok().map(|a| (a, None))
    };
    let Some((addr, net)) = parsed else {
        let hint = if text.contains(':') {
            "IPv6 is not supported yet; give an IPv4 address like 198.18.0.11 or 198.18.0.11/24"
        } else {
            "give an IPv4 address like 198.18.0.11 or 198.18.0.11/24"
        };
        sink.error(
            pos(s),
            field,
            format!("`{text}` is not an IPv4 address"),
            hint,
        );
        return None;
    };
    if addr.is_unspecified() || addr.is_multicast() || addr.is_broadcast() || addr.is_loopback() {
        sink.error(
            pos(s),
            field,
            format!("{addr} cannot be a host address"),
            "use the address other hosts reach this one at",
        );
        return None;
    }
    if let Some(n) = net
        && n.prefix_len() < 31
        && (addr == n.network() || addr == n.broadcast())
    {
        sink.error(
            pos(s),
            field,
            format!("{addr} is the network or broadcast address of {n}"),
            "use a host address inside the subnet",
        );
        return None;
    }
    Some((addr, net))
}

fn parse_cidr(s: &S<String>, field: &str, sink: &mut Sink) -> Option<Ipv4Net> {
    let text = s.value.trim();
    match text.parse::<Ipv4Net>() {
        Ok(n) if n.trunc() != n => {
            sink.error(
                pos(s),
                field,
                format!("{text} has host bits set"),
                format!("write the network address: {}", n.trunc()),
            );
            None
        }
        Ok(n) => Some(n),
        Err(_) => {
            sink.error(
                pos(s),
                field,
                format!("`{text}` is not an IPv4 CIDR"),
                "write it like 10.244.0.0/16",
            );
            None
        }
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

// ---------- sections ----------

fn cluster(c: &S<RawCluster>, sink: &mut Sink) -> Option<Cluster> {
    let c = &c.value;
    let mut ok = true;
    if !is_dns_label(&c.name.value) {
        sink.error(
            pos(&c.name),
            "cluster.name",
            format!("`{}` is not a valid cluster name", c.name.value),
            "use lowercase letters, digits and '-', at most 63 characters",
        );
        ok = false;
    }
    let version = kube_version(&c.kubernetes_version, sink);
    let domain = match &c.domain {
        Some(d) if !is_dns_subdomain(&d.value) => {
            sink.error(
                pos(d),
                "cluster.domain",
                format!("`{}` is not a DNS domain", d.value),
                "use lowercase labels separated by dots, like cluster.local",
            );
            None
        }
        Some(d) => Some(d.value.clone()),
        None => Some("cluster.local".to_string()),
    };
    if !ok {
        return None;
    }
    Some(Cluster {
        name: c.name.value.clone(),
        kubernetes_version: version?,
        domain: domain?,
    })
}

fn kube_version(s: &S<String>, sink: &mut Sink) -> Option<KubeVersion> {
    let text = s.value.trim();
    let bare = text.strip_prefix('v').unwrap_or(text);
    let parts: Vec<&str> = bare.split('.').collect();
    let nums: Option<Vec<u32>> = if parts.len() == 3 {
        parts
            .iter()
            .map(|p| {
                if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 4 {
                    p.parse().ok()
                } else {
                    None
                }
            })
            .collect()
    } else {
        None
    };
    let Some(nums) = nums else {
        sink.error(
            pos(s),
            "cluster.kubernetes_version",
            format!("`{text}` is not a Kubernetes release"),
            "write major.minor.patch, like 1.31.4",
        );
        return None;
    };
    let v = KubeVersion {
        major: nums[0],
        minor: nums[1],
        patch: nums[2],
    };
    if v.major != 1 || v.minor < MIN_KUBE_MINOR {
        sink.error(
            pos(s),
            "cluster.kubernetes_version",
            format!("Kubernetes {v} is not supported"),
            format!("kubeha renders configuration for 1.{MIN_KUBE_MINOR}.0 and newer"),
        );
        return None;
    }
    Some(v)
}

fn endpoint(e: &RawEndpoint, nodes: &[(Node, &S<RawNode>)], sink: &mut Sink) -> Option<Endpoint> {
    let vip = parse_host_address(&e.vip, "endpoint.vip", sink);
    let port = e.port.as_ref().map_or(16443, |p| p.value);
    let apiserver_port = e.apiserver_port.as_ref().map_or(6443, |p| p.value);
    let mut ok = true;
    for (p, field) in [
        (&e.port, "endpoint.port"),
        (&e.apiserver_port, "endpoint.apiserver_port"),
    ] {
        if let Some(p) = p
            && p.value == 0
        {
            sink.error(pos(p), field, "port 0 is not a port", "use 1-65535");
            ok = false;
        }
    }
    let dns_name = match &e.dns_name {
        Some(d) if !is_dns_subdomain(&d.value) => {
            sink.error(
                pos(d),
                "endpoint.dns_name",
                format!("`{}` is not a DNS name", d.value),
                "use lowercase labels separated by dots",
            );
            ok = false;
            None
        }
        Some(d) => Some(d.value.clone()),
        None => None,
    };
    let (vip, vip_net) = vip?;
    if !ok {
        return None;
    }
    let vip_prefix = match vip_net {
        Some(n) => n.prefix_len(),
        None => nodes
            .iter()
            .filter(|(n, _)| n.roles.control_plane)
            .find_map(|(n, _)| n.subnet.filter(|s| s.contains(&vip)))
            .map_or(32, |s| s.prefix_len()),
    };
    Some(Endpoint {
        vip,
        vip_prefix,
        port,
        apiserver_port,
        dns_name,
    })
}

fn ssh(
    own: Option<&RawSsh>,
    defaults: Option<&RawSsh>,
    field: &str,
    sink: &mut Sink,
) -> Option<Ssh> {
    let pick =
        |f: fn(&RawSsh) -> Option<&S<String>>| own.and_then(f).or_else(|| defaults.and_then(f));
    let user = pick(|s| s.user.as_ref());
    let key = pick(|s| s.key.as_ref());
    let jump = pick(|s| s.jump.as_ref());
    let port = own
        .and_then(|s| s.port.as_ref())
        .or_else(|| defaults.and_then(|s| s.port.as_ref()));
    let mut ok = true;
    if let Some(u) = user
        && (u.value.is_empty() || u.value.contains(char::is_whitespace))
    {
        sink.error(
            pos(u),
            format!("{field}.user"),
            "the SSH user is empty or has spaces",
            "give a login name like root or ubuntu",
        );
        ok = false;
    }
    if let Some(p) = port
        && p.value == 0
    {
        sink.error(
            pos(p),
            format!("{field}.port"),
            "port 0 is not a port",
            "use 1-65535 (22 is SSH's)",
        );
        ok = false;
    }
    ok.then(|| Ssh {
        user: user.map_or_else(|| "root".to_string(), |u| u.value.clone()),
        port: port.map_or(22, |p| p.value),
        key: key.map(|k| k.value.clone()),
        jump: jump.map(|j| j.value.clone()),
    })
}

type ParsedNode<'a> = (Node, &'a S<RawNode>);

fn nodes<'a>(
    list: &'a S<Vec<S<RawNode>>>,
    ssh_defaults: Option<&RawSsh>,
    sink: &mut Sink,
) -> Vec<ParsedNode<'a>> {
    let mut out = Vec::new();
    let mut seen_names: HashMap<&str, u64> = HashMap::new();
    let mut seen_addrs: HashMap<Ipv4Addr, (u64, &str)> = HashMap::new();
    for (i, rn) in list.value.iter().enumerate() {
        let n = &rn.value;
        let f = format!("nodes[{i}]");
        let mut ok = true;
        if !is_dns_subdomain(&n.name.value) || n.name.value.len() > 63 {
            let hint = if n.name.value.chars().any(|c| c.is_ascii_uppercase()) {
                "Kubernetes node names are lowercase; write it in lowercase"
            } else {
                "use lowercase letters, digits, '-' and '.', at most 63 characters"
            };
            sink.error(
                pos(&n.name),
                format!("{f}.name"),
                format!("`{}` is not a valid node name", n.name.value),
                hint,
            );
            ok = false;
        } else if let Some(line) = seen_names.get(n.name.value.as_str()) {
            sink.error(
                pos(&n.name),
                format!("{f}.name"),
                format!(
                    "node name `{}` is already used on line {line}",
                    n.name.value
                ),
                "give every node its own name",
            );
            ok = false;
        } else {
            seen_names.insert(&n.name.value, n.name.referenced.line());
        }
        let addr = parse_host_address(&n.address, &format!("{f}.address"), sink);
        if let Some((a, _)) = addr {
            if let Some((line, other)) = seen_addrs.get(&a) {
                sink.error(
                    pos(&n.address),
                    format!("{f}.address"),
                    format!("address {a} is already used by node `{other}` on line {line}"),
                    "give every node its own address",
                );
                ok = false;
            } else {
                seen_addrs.insert(a, (n.address.referenced.line(), &n.name.value));
            }
        }
        let roles = roles(&n.roles, &format!("{f}.roles"), sink);
        let ssh = ssh(
            n.ssh.as_ref().map(|s| &s.value),
            ssh_defaults,
            &format!("{f}.ssh"),
            sink,
        );
        let interface = match &n.interface {
            Some(ifc) if !valid_ifname(&ifc.value) => {
                sink.error(
                    pos(ifc),
                    format!("{f}.interface"),
                    format!("`{}` is not a Linux interface name", ifc.value),
                    "at most 15 characters, no '/', ':' or spaces",
                );
                ok = false;
                String::new()
            }
            Some(ifc) => ifc.value.clone(),
            None => "eth0".to_string(),
        };
        let mut priority = None;
        if let Some(p) = &n.priority {
            match Priority::try_from(i64::from(p.value)) {
                Err(e) => {
                    sink.error(
                        pos(p),
                        format!("{f}.priority"),
                        e.to_string(),
                        "255 is reserved for the address owner; use 1-254",
                    );
                    ok = false;
                }
                Ok(_) if roles.is_some_and(|r| !r.control_plane) => {
                    sink.error(
                        pos(p),
                        format!("{f}.priority"),
                        "priority is set on a node without the control-plane role",
                        "only control-plane nodes run the front door; remove it",
                    );
                    ok = false;
                }
                Ok(p) => priority = Some(p),
            }
        }
        let labels = n
            .labels
            .as_ref()
            .map(|l| l.value.clone())
            .unwrap_or_default();
        if let Some(l) = &n.labels {
            for k in l.value.keys() {
                if !valid_label_key(k) {
                    sink.error(
                        pos(l),
                        format!("{f}.labels"),
                        format!("`{k}` is not a valid label key"),
                        "use [prefix/]name with letters, digits, '-', '_' and '.'",
                    );
                    ok = false;
                }
            }
        }
        let kubelet_extra_args = n
            .kubelet_extra_args
            .as_ref()
            .and_then(|a| kubelet_args(a, &format!("{f}.kubelet_extra_args"), sink));
        ok &= n.kubelet_extra_args.is_none() || kubelet_extra_args.is_some();
        let pod_subnet = n
            .pod_subnet
            .as_ref()
            .and_then(|s| parse_cidr(s, &format!("{f}.pod_subnet"), sink));
        ok &= n.pod_subnet.is_none() || pod_subnet.is_some();
        if let (true, Some((address, subnet)), Some(roles), Some(ssh)) = (ok, addr, roles, ssh) {
            out.push((
                Node {
                    name: n.name.value.clone(),
                    address,
                    subnet,
                    roles,
                    ssh,
                    interface,
                    labels,
                    priority_set: priority.is_some(),
                    priority,
                    kubelet_extra_args: kubelet_extra_args.unwrap_or_default(),
                    pod_subnet,
                },
                rn,
            ));
        }
    }
    out
}

fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && !s.contains(['/', ':'])
        && !s.contains(char::is_whitespace)
        && s != "."
        && s != ".."
}

fn valid_label_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    name_ok && prefix.is_none_or(is_dns_subdomain)
}

fn roles(list: &S<Vec<S<String>>>, field: &str, sink: &mut Sink) -> Option<Roles> {
    let mut r = Roles::default();
    let mut ok = true;
    if list.value.is_empty() {
        sink.error(
            pos(list),
            field,
            "a node needs at least one role",
            "use control-plane, worker and/or etcd",
        );
        return None;
    }
    for role in &list.value {
        let slot = match role.value.as_str() {
            "control-plane" => &mut r.control_plane,
            "worker" => &mut r.worker,
            "etcd" => &mut r.etcd,
            other => {
                let hint = if other == "master" {
                    "Kubernetes calls it control-plane now; write control-plane"
                } else {
                    "use control-plane, worker or etcd"
                };
                sink.error(pos(role), field, format!("unknown role `{other}`"), hint);
                ok = false;
                continue;
            }
        };
        if *slot {
            sink.error(
                pos(role),
                field,
                format!("role `{}` is listed twice", role.value),
                "list each role once",
            );
            ok = false;
        }
        *slot = true;
    }
    ok.then_some(r)
}

fn etcd(e: Option<&S<RawEtcd>>, sink: &mut Sink) -> Option<Etcd> {
    let default = RawEtcd::default();
    let e = e.map_or(&default, |e| &e.value);
    let topology = match &e.topology {
        Some(t) => one_of(
            t,
            "etcd.topology",
            &[
                ("stacked", EtcdTopology::Stacked),
                ("external", EtcdTopology::External),
            ],
            sink,
        ),
        None => Some(EtcdTopology::Stacked),
    };
    let heartbeat = e
        .heartbeat_interval
        .as_ref()
        .map_or(Some(Duration::from_millis(100)), |s| {
            parse_duration(s, "etcd.heartbeat_interval", sink)
        });
    let election = e
        .election_timeout
        .as_ref()
        .map_or(Some(Duration::from_millis(1000)), |s| {
            parse_duration(s, "etcd.election_timeout", sink)
        });
    let mut ok = true;
    if let (Some(h), Some(el)) = (heartbeat, election) {
        if h < Duration::from_millis(1) || h.subsec_nanos() % 1_000_000 != 0 {
            if let Some(s) = &e.heartbeat_interval {
                sink.error(
                    pos(s),
                    "etcd.heartbeat_interval",
                    format!("{} is not a whole number of milliseconds", s.value),
                    "etcd takes milliseconds; write e.g. 250ms",
                );
            }
            ok = false;
        }
        if el < h * 5 {
            let at = e
                .election_timeout
                .as_ref()
                .map(pos)
                .or(e.heartbeat_interval.as_ref().map(pos))
                .unwrap_or_default();
            sink.error(
                at,
                "etcd.election_timeout",
                format!(
                    "election timeout {}ms is less than 5 x heartbeat interval {}ms",
                    el.as_millis(),
                    h.as_millis()
                ),
                "etcd refuses to start otherwise; etcd suggests ten heartbeats",
            );
            ok = false;
        } else if el > Duration::from_millis(50_000) {
            let at = e.election_timeout.as_ref().map(pos).unwrap_or_default();
            sink.error(
                at,
                "etcd.election_timeout",
                format!("{}ms is above etcd's limit of 50000ms", el.as_millis()),
                "use at most 50s",
            );
            ok = false;
        }
    }
    let quota = e
        .quota_backend_bytes
        .as_ref()
        .map_or(8 * 1024 * 1024 * 1024, |q| q.value);
    if let Some(q) = &e.quota_backend_bytes {
        if q.value == 0 {
            sink.error(
                pos(q),
                "etcd.quota_backend_bytes",
                "a quota of 0 bytes leaves etcd no room",
                "use e.g. 8589934592 (8 GiB)",
            );
            ok = false;
        } else if q.value > 8 * 1024 * 1024 * 1024 {
            sink.warn(
                pos(q),
                "etcd.quota_backend_bytes",
                format!(
                    "{} bytes is above etcd's suggested maximum of 8 GiB",
                    q.value
                ),
                "larger backends make defragmentation and restore slow",
            );
        }
    }
    let snapshot_count = e.snapshot_count.as_ref().map_or(10_000, |s| s.value);
    if let Some(s) = &e.snapshot_count
        && s.value == 0
    {
        sink.error(
            pos(s),
            "etcd.snapshot_count",
            "snapshot_count 0 is not allowed",
            "etcd's default is 100000; the seeds use 10000",
        );
        ok = false;
    }
    let compaction = match &e.auto_compaction {
        None => Some(Compaction {
            mode: CompactionMode::Periodic,
            retention: "1h".into(),
        }),
        Some(c) => {
            let mode = one_of(
                &c.value.mode,
                "etcd.auto_compaction.mode",
                &[
                    ("periodic", CompactionMode::Periodic),
                    ("revision", CompactionMode::Revision),
                ],
                sink,
            );
            let r = &c.value.retention;
            match mode {
                Some(CompactionMode::Periodic) => {
                    parse_duration(r, "etcd.auto_compaction.retention", sink).map(|d| Compaction {
                        mode: CompactionMode::Periodic,
                        retention: humantime::format_duration(d).to_string().replace(' ', ""),
                    })
                }
                Some(CompactionMode::Revision) => match r.value.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Some(Compaction {
                        mode: CompactionMode::Revision,
                        retention: n.to_string(),
                    }),
                    _ => {
                        sink.error(
                            pos(r),
                            "etcd.auto_compaction.retention",
                            format!("`{}` is not a revision count", r.value),
                            "with mode revision, give how many revisions to keep, e.g. 1000",
                        );
                        None
                    }
                },
                None => None,
            }
        }
    };
    let data_dir = match &e.data_dir {
        Some(d) if !d.value.starts_with('/') => {
            sink.error(
                pos(d),
                "etcd.data_dir",
                format!("`{}` is not an absolute path", d.value),
                "write a path starting with /",
            );
            ok = false;
            String::new()
        }
        Some(d) => d.value.clone(),
        None => "/var/lib/etcd".into(),
    };
    if !ok {
        return None;
    }
    Some(Etcd {
        topology: topology?,
        quota_backend_bytes: quota,
        heartbeat_interval: heartbeat?,
        election_timeout: election?,
        snapshot_count,
        auto_compaction: compaction?,
        data_dir,
    })
}

fn networking(n: Option<&S<RawNetworking>>, sink: &mut Sink) -> Option<Networking> {
    let default = RawNetworking::default();
    let n = n.map_or(&default, |n| &n.value);
    let pod = n.pod_cidr.as_ref().map_or_else(
        || Some("10.244.0.0/16".parse().expect("literal")),
        |s| parse_cidr(s, "networking.pod_cidr", sink),
    );
    let svc = n.service_cidr.as_ref().map_or_else(
        || Some("10.96.0.0/12".parse().expect("literal")),
        |s| parse_cidr(s, "networking.service_cidr", sink),
    );
    let mut ok = true;
    if let (Some(s), Some(raw)) = (svc, &n.service_cidr)
        && s.prefix_len() < 12
    {
        sink.error(
            pos(raw),
            "networking.service_cidr",
            format!("{s} is larger than kube-apiserver allows"),
            "use a /12 or smaller range, like 10.96.0.0/12",
        );
        ok = false;
    }
    if let (Some(p), Some(raw)) = (pod, &n.pod_cidr)
        && p.prefix_len() > 24
    {
        sink.error(
            pos(raw),
            "networking.pod_cidr",
            format!("{p} leaves no room for a /24 per node"),
            "use a /24 or larger range, like 10.244.0.0/16",
        );
        ok = false;
    }
    let cni = n.cni.as_ref().map_or(Some(Cni::Flannel), |s| {
        one_of(
            s,
            "networking.cni",
            &[
                ("flannel", Cni::Flannel),
                ("calico", Cni::Calico),
                ("bridge", Cni::Bridge),
                ("none", Cni::None),
            ],
            sink,
        )
    });
    let kpm = n
        .kube_proxy_mode
        .as_ref()
        .map_or(Some(KubeProxyMode::Ipvs), |s| {
            one_of(
                s,
                "networking.kube_proxy_mode",
                &[
                    ("iptables", KubeProxyMode::Iptables),
                    ("ipvs", KubeProxyMode::Ipvs),
                ],
                sink,
            )
        });
    if !ok {
        return None;
    }
    Some(Networking {
        pod_cidr: pod?,
        service_cidr: svc?,
        cni: cni?,
        kube_proxy_mode: kpm?,
    })
}

fn url_ok(u: &str) -> bool {
    (u.starts_with("http://") || u.starts_with("https://"))
        && u.len() > 8
        && !u.contains(char::is_whitespace)
}

fn images(i: Option<&S<RawImages>>, sink: &mut Sink) -> Option<Images> {
    let default = RawImages::default();
    let i = i.map_or(&default, |i| &i.value);
    let mut ok = true;
    let repository = match &i.repository {
        Some(r)
            if r.value.is_empty()
                || r.value.contains("://")
                || r.value.contains(char::is_whitespace) =>
        {
            sink.error(
                pos(r),
                "images.repository",
                format!("`{}` is not an image repository", r.value),
                "write host[/path] without a scheme, like registry.k8s.io",
            );
            ok = false;
            String::new()
        }
        Some(r) => r.value.trim_end_matches('/').to_string(),
        None => "registry.k8s.io".into(),
    };
    let mut mirrors = BTreeMap::new();
    if let Some(m) = &i.mirrors {
        for (registry, urls) in &m.value {
            if registry.is_empty() || registry.contains("://") {
                sink.error(
                    pos(m),
                    "images.mirrors",
                    format!("`{registry}` is not a registry host"),
                    "key mirrors by registry host, like docker.io",
                );
                ok = false;
            }
            if urls.value.is_empty() {
                sink.error(
                    pos(urls),
                    format!("images.mirrors.{registry}"),
                    "no mirror endpoints given",
                    "list at least one https:// endpoint or remove the entry",
                );
                ok = false;
            }
            for u in &urls.value {
                if !url_ok(&u.value) {
                    sink.error(
                        pos(u),
                        format!("images.mirrors.{registry}"),
                        format!("`{}` is not an http(s) URL", u.value),
                        "write it like https://mirror.example.com",
                    );
                    ok = false;
                }
            }
            mirrors.insert(
                registry.clone(),
                urls.value.iter().map(|u| u.value.clone()).collect(),
            );
        }
    }
    let proxy = i.proxy.as_ref().map(|p| {
        let p = &p.value;
        for (v, field) in [
            (&p.http, "images.proxy.http"),
            (&p.https, "images.proxy.https"),
        ] {
            if let Some(v) = v
                && !url_ok(&v.value)
            {
                sink.error(
                    pos(v),
                    field,
                    format!("`{}` is not an http(s) proxy URL", v.value),
                    "write it like http://proxy.example.com:3128",
                );
                ok = false;
            }
        }
        Proxy {
            http: p.http.as_ref().map(|v| v.value.clone()),
            https: p.https.as_ref().map(|v| v.value.clone()),
            no_proxy: p
                .no_proxy
                .as_ref()
                .map(|l| l.value.iter().map(|v| v.value.clone()).collect())
                .unwrap_or_default(),
        }
    });
    ok.then_some(Images {
        repository,
        mirrors,
        proxy,
    })
}

fn runtime(r: Option<&S<RawRuntime>>, sink: &mut Sink) -> Option<Runtime> {
    let default = RawRuntime::default();
    let r = r.map_or(&default, |r| &r.value);
    let mut ok = true;
    if let Some(k) = &r.kind {
        ok &= one_of(k, "runtime.kind", &[("containerd", ())], sink).is_some();
    }
    let log_max_size = match &r.log_max_size {
        Some(s) if !is_quantity(&s.value) => {
            sink.error(
                pos(s),
                "runtime.log_max_size",
                format!("`{}` is not a size", s.value),
                "write it like 10Mi or 100Mi (Ki, Mi, Gi)",
            );
            ok = false;
            String::new()
        }
        Some(s) => s.value.clone(),
        None => "10Mi".into(),
    };
    let log_max_files = r.log_max_files.as_ref().map_or(5, |f| f.value);
    if let Some(f) = &r.log_max_files
        && f.value < 2
    {
        sink.error(
            pos(f),
            "runtime.log_max_files",
            format!("{} log files is too few", f.value),
            "kubelet needs at least 2",
        );
        ok = false;
    }
    let cni_bin_dir = match &r.cni_bin_dir {
        Some(d) if !is_absolute_path(&d.value) => {
            sink.error(
                pos(d),
                "runtime.cni_bin_dir",
                format!("`{}` is not an absolute path", d.value),
                "write it like /opt/cni/bin (Debian's plugins: /usr/lib/cni)",
            );
            ok = false;
            String::new()
        }
        Some(d) => d.value.clone(),
        None => "/opt/cni/bin".into(),
    };
    ok.then(|| Runtime {
        systemd_cgroup: r.systemd_cgroup.as_ref().is_none_or(|b| b.value),
        log_max_size,
        log_max_files,
        restrict_oom_score_adj: r.restrict_oom_score_adj.as_ref().is_some_and(|b| b.value),
        cni_bin_dir,
    })
}

fn is_quantity(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits != "0"
        && ["", "Ki", "Mi", "Gi"].contains(&unit)
}

/// The seeds' VRID.
const DEFAULT_VRID: Vrid = match Vrid::new(51) {
    Ok(v) => v,
    Err(_) => panic!("51 is a VRID"),
};

/// Fast failover (about 130 ms to detect a dead master), still far above LAN jitter.
const DEFAULT_ADVERT_INTERVAL: AdvertInterval = match AdvertInterval::from_centis(4) {
    Ok(i) => i,
    Err(_) => panic!("40 ms is an interval"),
};

fn frontdoor(f: Option<&S<RawFrontdoor>>, sink: &mut Sink) -> Option<Frontdoor> {
    let default = RawFrontdoor::default();
    let f = f.map_or(&default, |f| &f.value);
    let kind = f.kind.as_ref().map_or(Some(FrontdoorKind::Builtin), |k| {
        one_of(
            k,
            "frontdoor.kind",
            &[
                ("builtin", FrontdoorKind::Builtin),
                ("keepalived-haproxy", FrontdoorKind::KeepalivedHaproxy),
                ("external", FrontdoorKind::External),
            ],
            sink,
        )
    });
    let vrid = match &f.vrid {
        Some(v) => match Vrid::try_from(v.value) {
            Ok(v) => Some(v),
            Err(e) => {
                sink.error(
                    pos(v),
                    "frontdoor.vrid",
                    e.to_string(),
                    "pick a VRID from 1 to 255 that no other VRRP group on this network uses",
                );
                None
            }
        },
        None => Some(DEFAULT_VRID),
    };
    let advert = match &f.advert_interval {
        None => Some(DEFAULT_ADVERT_INTERVAL),
        Some(s) => parse_duration(s, "frontdoor.advert_interval", sink).and_then(|d| {
            match AdvertInterval::try_from(d) {
                Ok(i) => Some(i),
                Err(ParamError::IntervalRange(_)) => {
                    sink.error(
                        pos(s),
                        "frontdoor.advert_interval",
                        format!("{} is outside 10ms-40.95s", s.value),
                        "VRRPv3 carries the interval in centiseconds: use 10ms to 40.95s",
                    );
                    None
                }
                Err(_) => {
                    sink.error(
                        pos(s),
                        "frontdoor.advert_interval",
                        format!("{} is not a whole number of centiseconds", s.value),
                        "VRRPv3 counts in 10ms steps; round it, e.g. 40ms",
                    );
                    None
                }
            }
        }),
    };
    let checksum = f.checksum.as_ref().map_or(Some(Checksum::Keepalived), |c| {
        one_of(
            c,
            "frontdoor.checksum",
            &[
                ("keepalived", Checksum::Keepalived),
                ("rfc9568", Checksum::Rfc9568),
            ],
            sink,
        )
    });
    let balance = f.balance.as_ref().map_or(Some(Balance::RoundRobin), |b| {
        one_of(
            b,
            "frontdoor.balance",
            &[
                ("round-robin", Balance::RoundRobin),
                ("least-connections", Balance::LeastConnections),
            ],
            sink,
        )
    });
    let health = health(f.health.as_ref(), sink);
    let vrid = vrid?;
    let max_connections = match &f.max_connections {
        Some(m) if m.value == 0 || m.value > 1_000_000 => {
            sink.error(
                pos(m),
                "frontdoor.max_connections".to_string(),
                format!("{} connections is outside 1-1000000", m.value),
                "each connection costs two file descriptors; 20000 suits most control planes",
            );
            return None;
        }
        m => m.as_ref().map(|m| m.value),
    };
    Some(Frontdoor {
        kind: kind?,
        vrid,
        advert_interval: advert?,
        unicast: f.unicast.as_ref().is_none_or(|u| u.value),
        checksum: checksum?,
        preempt: f.preempt.as_ref().is_none_or(|p| p.value),
        balance: balance?,
        health: health?,
        max_connections,
        close_sessions_on_down: f.close_sessions_on_down.as_ref().is_none_or(|c| c.value),
    })
}

fn health(h: Option<&S<RawHealth>>, sink: &mut Sink) -> Option<Health> {
    let default = RawHealth::default();
    let h = h.map_or(&default, |h| &h.value);
    let mut ok = true;
    let kind = h.kind.as_ref().map_or(Some(HealthKind::Https), |k| {
        one_of(
            k,
            "frontdoor.health.kind",
            &[
                ("https", HealthKind::Https),
                ("http", HealthKind::Http),
                ("tcp", HealthKind::Tcp),
            ],
            sink,
        )
    });
    let path = match &h.path {
        Some(p) if !p.value.starts_with('/') => {
            sink.error(
                pos(p),
                "frontdoor.health.path",
                format!("`{}` does not start with /", p.value),
                "write an absolute path like /readyz",
            );
            ok = false;
            String::new()
        }
        Some(p) => p.value.clone(),
        None => "/readyz".into(),
    };
    let interval = match &h.interval {
        None => Some(Duration::from_millis(200)),
        Some(s) => parse_duration(s, "frontdoor.health.interval", sink).and_then(|d| {
            if d < Duration::from_millis(10) {
                sink.error(
                    pos(s),
                    "frontdoor.health.interval",
                    format!("{} is shorter than 10ms", s.value),
                    "checks that often load the apiservers; use 100ms or more",
                );
                None
            } else {
                Some(d)
            }
        }),
    };
    for (v, field) in [
        (&h.fall, "frontdoor.health.fall"),
        (&h.rise, "frontdoor.health.rise"),
    ] {
        if let Some(v) = v
            && !(1..=100).contains(&v.value)
        {
            sink.error(
                pos(v),
                field,
                format!("{} is outside 1-100", v.value),
                "count of consecutive checks; 2 or 3 is usual",
            );
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    Some(Health {
        kind: kind?,
        path,
        interval: interval?,
        fall: h.fall.as_ref().map_or(2, |v| v.value),
        rise: h.rise.as_ref().map_or(2, |v| v.value),
    })
}

fn kubelet(k: Option<&S<RawKubelet>>, sink: &mut Sink) -> Option<Kubelet> {
    let default = RawKubelet::default();
    let k = k.map_or(&default, |k| &k.value);
    let extra_args = match &k.extra_args {
        Some(a) => kubelet_args(a, "kubelet.extra_args", sink)?,
        None => BTreeMap::new(),
    };
    // Fields with an inventory setting of their own are set there, so two places never
    // disagree about one value.
    const OWNED: [(&str, &str); 7] = [
        ("apiVersion", "it is fixed"),
        ("kind", "it is fixed"),
        ("cgroupDriver", "set runtime.systemd_cgroup"),
        ("maxPods", "set kubelet.max_pods"),
        ("serverTLSBootstrap", "set kubelet.server_tls_bootstrap"),
        ("failCgroupV1", "set kubelet.fail_cgroup_v1"),
        ("containerLogMaxSize", "set runtime.log_max_size"),
    ];
    let mut extra_config = BTreeMap::new();
    if let Some(c) = &k.extra_config {
        for (key, value) in &c.value {
            if let Some((_, hint)) = OWNED.iter().find(|(o, _)| o == key) {
                sink.error(
                    pos(c),
                    format!("kubelet.extra_config.{key}"),
                    "kubeha sets this field itself",
                    *hint,
                );
                return None;
            }
            extra_config.insert(key.clone(), value.clone());
        }
    }
    Some(Kubelet {
        max_pods: k.max_pods.as_ref().map_or(110, |v| v.value),
        server_tls_bootstrap: k.server_tls_bootstrap.as_ref().is_some_and(|v| v.value),
        fail_cgroup_v1: k.fail_cgroup_v1.as_ref().map(|v| v.value),
        extra_args,
        extra_config,
    })
}

/// kubelet flags as a name → value map: names without the leading dashes.
fn kubelet_args(
    a: &S<BTreeMap<String, S<String>>>,
    field: &str,
    sink: &mut Sink,
) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (name, value) in &a.value {
        let plain = !name.is_empty()
            && !name.starts_with('-')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !plain {
            sink.error(
                pos(value),
                format!("{field}.{name}"),
                format!("`{name}` is not a kubelet flag name"),
                "write the flag without dashes, e.g. oom-score-adj: \"0\"",
            );
            return None;
        }
        out.insert(name.clone(), value.value.clone());
    }
    Some(out)
}

fn is_absolute_path(s: &str) -> bool {
    s.starts_with('/') && !s.split('/').any(|c| c == "..")
}

fn kubeadm(
    k: Option<&S<RawKubeadm>>,
    cluster: Option<&Cluster>,
    sink: &mut Sink,
) -> Option<Kubeadm> {
    let default = RawKubeadm::default();
    let k = k.map_or(&default, |k| &k.value);
    let mut ok = true;
    let mut ignore_preflight_errors = Vec::new();
    for e in k.ignore_preflight_errors.iter().flat_map(|l| &l.value) {
        let name_ok = !e.value.is_empty()
            && e.value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !name_ok {
            sink.error(
                pos(e),
                "kubeadm.ignore_preflight_errors",
                format!("`{}` is not a preflight check name", e.value),
                "use kubeadm's check names, e.g. SystemVerification, Swap, or all",
            );
            ok = false;
        }
        ignore_preflight_errors.push(e.value.clone());
    }
    let mut timeouts = KubeadmTimeouts::default();
    if let Some(t) = &k.timeouts {
        let v1beta3 =
            cluster.is_some_and(|c| c.kubernetes_version.kubeadm_api().ends_with("v1beta3"));
        if v1beta3 {
            sink.error(
                pos(t),
                "kubeadm.timeouts",
                "kubeadm's v1beta3 configuration (Kubernetes before 1.31) has no timeouts",
                "remove kubeadm.timeouts, or use Kubernetes 1.31 or newer",
            );
            ok = false;
        }
        let t = &t.value;
        let mut one = |raw: &Option<S<String>>, name: &str| -> Option<Duration> {
            let r = raw.as_ref()?;
            let d = parse_duration(r, &format!("kubeadm.timeouts.{name}"), sink);
            ok &= d.is_some();
            d
        };
        timeouts = KubeadmTimeouts {
            control_plane_health_check: one(
                &t.control_plane_health_check,
                "control_plane_health_check",
            ),
            kubelet_health_check: one(&t.kubelet_health_check, "kubelet_health_check"),
            discovery: one(&t.discovery, "discovery"),
            tls_bootstrap: one(&t.tls_bootstrap, "tls_bootstrap"),
        };
    }
    ok.then_some(Kubeadm {
        ignore_preflight_errors,
        timeouts,
    })
}

fn host(h: Option<&S<RawHost>>, sink: &mut Sink) -> Option<Host> {
    let default = RawHost::default();
    let h = h.map_or(&default, |h| &h.value);
    let mut ok = true;
    let journald = match h.journald.as_ref().map(|j| &j.value) {
        Some(j) if j.manage.as_ref().is_some_and(|m| !m.value) => None,
        j => {
            let storage = match j.and_then(|j| j.storage.as_ref()) {
                None => Some("persistent"),
                Some(s) => one_of(
                    s,
                    "host.journald.storage",
                    &[
                        ("persistent", "persistent"),
                        ("volatile", "volatile"),
                        ("auto", "auto"),
                        ("none", "none"),
                    ],
                    sink,
                ),
            };
            let size = match j.and_then(|j| j.system_max_file_size.as_ref()) {
                None => Some("12M".to_string()),
                Some(s) => {
                    let v = s.value.as_str();
                    let digits = v.trim_end_matches(['K', 'M', 'G', 'T']);
                    let valid = !digits.is_empty()
                        && digits.bytes().all(|b| b.is_ascii_digit())
                        && v.len() <= digits.len() + 1;
                    if !valid {
                        sink.error(
                            pos(s),
                            "host.journald.system_max_file_size",
                            format!("`{v}` is not a journald size"),
                            "write bytes with an optional K, M, G or T suffix, like 12M",
                        );
                    }
                    valid.then(|| v.to_string())
                }
            };
            let files = match j.and_then(|j| j.system_max_files.as_ref()) {
                None => Some(10),
                Some(n) if (1..=10_000).contains(&n.value) => Some(n.value),
                Some(n) => {
                    sink.error(
                        pos(n),
                        "host.journald.system_max_files",
                        format!("{} journal files is out of range", n.value),
                        "use 1-10000 (seed 004 keeps 10)",
                    );
                    None
                }
            };
            match (storage, size, files) {
                (Some(storage), Some(system_max_file_size), Some(system_max_files)) => {
                    Some(Journald {
                        storage: storage.to_string(),
                        system_max_file_size,
                        system_max_files,
                    })
                }
                _ => {
                    ok = false;
                    None
                }
            }
        }
    };
    let time_sync = h.time_sync.as_ref().map_or(Some(TimeSync::Chrony), |s| {
        one_of(
            s,
            "host.time_sync",
            &[("chrony", TimeSync::Chrony), ("none", TimeSync::None)],
            sink,
        )
    });
    let sysctls = match &h.sysctls {
        // Seed 004's value; containerd relays container output through pipes.
        None => BTreeMap::from([("fs.pipe-max-size".to_string(), "16777216".to_string())]),
        Some(m) => {
            let mut out = BTreeMap::new();
            for (key, value) in &m.value {
                let field = format!("host.sysctls.{key}");
                let plain_key = key.contains('.')
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b));
                if !plain_key {
                    sink.error(
                        pos(value),
                        field,
                        format!("`{key}` is not a kernel parameter name"),
                        "write it as sysctl names it, like fs.pipe-max-size",
                    );
                    ok = false;
                    continue;
                }
                if OWNED_SYSCTLS.contains(&key.as_str()) {
                    sink.error(
                        pos(value),
                        field,
                        format!("kubeha sets `{key}` itself"),
                        "remove it from host.sysctls",
                    );
                    ok = false;
                    continue;
                }
                let text = match &value.value {
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    serde_json::Value::String(s) if !s.is_empty() && !s.contains(['\n', '\r']) => {
                        Some(s.clone())
                    }
                    _ => None,
                };
                match text {
                    Some(t) => {
                        out.insert(key.clone(), t);
                    }
                    None => {
                        sink.error(
                            pos(value),
                            field,
                            "a kernel parameter's value is a number or a one-line string",
                            "write it like 16777216 or \"4096 87380 6291456\"",
                        );
                        ok = false;
                    }
                }
            }
            out
        }
    };
    if !ok {
        return None;
    }
    Some(Host {
        journald,
        time_sync: time_sync?,
        sysctls,
    })
}

fn packages(p: Option<&S<RawPackages>>, sink: &mut Sink) -> Option<Packages> {
    let default = RawPackages::default();
    let p = p.map_or(&default, |p| &p.value);
    let source = p
        .source
        .as_ref()
        .map_or(Some(PackageSource::Repository), |s| {
            one_of(
                s,
                "packages.source",
                &[
                    ("repository", PackageSource::Repository),
                    ("preinstalled", PackageSource::Preinstalled),
                    ("bundle", PackageSource::Bundle),
                ],
                sink,
            )
        });
    let bundle = p.bundle.as_ref().map(|b| b.value.clone());
    match (source, &p.bundle) {
        (Some(PackageSource::Bundle), None) => {
            // Only a written `source: bundle` gets here, so it has a place.
            let at = p.source.as_ref().map(pos)?;
            sink.error(
                at,
                "packages.bundle".to_string(),
                "source bundle needs packages.bundle",
                "give the directory of .deb files (kubelet, kubeadm, kubectl, containerd and their dependencies), relative to this file",
            );
            return None;
        }
        (Some(s), Some(b)) if s != PackageSource::Bundle => {
            sink.error(
                pos(b),
                "packages.bundle".to_string(),
                "a bundle is only used with packages.source: bundle",
                "set packages.source: bundle, or remove packages.bundle",
            );
            return None;
        }
        _ => {}
    }
    let repository = match &p.repository {
        None => DEFAULT_PACKAGE_REPOSITORY.to_string(),
        Some(r) if r.value.starts_with("https://") || r.value.starts_with("http://") => {
            r.value.trim_end_matches('/').to_string()
        }
        Some(r) => {
            sink.error(
                pos(r),
                "packages.repository".to_string(),
                "the repository is not an http(s) URL",
                "give the apt base URL, e.g. https://pkgs.k8s.io/core:/stable:/{stream}/deb",
            );
            return None;
        }
    };
    Some(Packages {
        source: source?,
        repository,
        bundle,
    })
}

fn pki(p: Option<&S<RawPki>>, sink: &mut Sink) -> Option<PkiSettings> {
    let default = RawPki::default();
    let p = p.map_or(&default, |p| &p.value);
    let key_type = p.key_type.as_ref().map_or(Some(KeyType::Rsa2048), |k| {
        one_of(
            k,
            "pki.key_type",
            &[
                ("rsa-2048", KeyType::Rsa2048),
                ("ecdsa-p256", KeyType::EcdsaP256),
            ],
            sink,
        )
    });
    const DAY: u64 = 86_400;
    let ca = p
        .ca_validity
        .as_ref()
        .map_or(Some(Duration::from_secs(3650 * DAY)), |s| {
            parse_duration(s, "pki.ca_validity", sink)
        });
    let leaf = p
        .leaf_validity
        .as_ref()
        .map_or(Some(Duration::from_secs(365 * DAY)), |s| {
            parse_duration(s, "pki.leaf_validity", sink)
        });
    let mut ok = true;
    if let (Some(c), Some(l)) = (ca, leaf) {
        if l < Duration::from_secs(DAY) {
            let at = p.leaf_validity.as_ref().map(pos).unwrap_or_default();
            sink.error(
                at,
                "pki.leaf_validity",
                "certificates valid for less than a day",
                "use at least 1d; 365d is kubeadm's",
            );
            ok = false;
        }
        if l > c {
            let at = p
                .leaf_validity
                .as_ref()
                .or(p.ca_validity.as_ref())
                .map(pos)
                .unwrap_or_default();
            sink.error(
                at,
                "pki.leaf_validity",
                "leaf certificates would outlive their CA",
                "make leaf_validity shorter than ca_validity",
            );
            ok = false;
        }
    }
    let mut extra = Vec::new();
    if let Some(list) = &p.extra_sans {
        for s in &list.value {
            let v = s.value.trim();
            if v.parse::<std::net::IpAddr>().is_err()
                && !is_dns_subdomain(&v.trim_start_matches("*.").to_ascii_lowercase())
            {
                sink.error(
                    pos(s),
                    "pki.extra_sans",
                    format!("`{v}` is neither an IP address nor a DNS name"),
                    "give an IP like 198.18.0.100 or a name like api.example.com",
                );
                ok = false;
            }
            extra.push(v.to_string());
        }
    }
    if !ok {
        return None;
    }
    Some(PkiSettings {
        key_type: key_type?,
        ca_validity: ca?,
        leaf_validity: leaf?,
        extra_sans: extra,
    })
}

// ---------- cross-field checks ----------

fn roles_and_etcd(
    raw: &RawInventory,
    nodes: &[ParsedNode<'_>],
    etcd: Option<&Etcd>,
    sink: &mut Sink,
) {
    let cp = nodes.iter().filter(|(n, _)| n.roles.control_plane).count();
    let any_node_failed = nodes.len() != raw.nodes.value.len();
    if raw.nodes.value.is_empty() {
        sink.error(
            pos(&raw.nodes),
            "nodes",
            "no nodes are listed",
            "list at least one node with the control-plane role",
        );
        return;
    }
    if cp == 0 && !any_node_failed {
        sink.error(
            pos(&raw.nodes),
            "nodes",
            "no node has the control-plane role",
            "give at least one node the role control-plane; three for HA",
        );
        return;
    }
    let Some(etcd) = etcd else { return };
    match etcd.topology {
        EtcdTopology::Stacked => {
            for (n, rn) in nodes {
                if n.roles.etcd && !n.roles.control_plane {
                    sink.error(pos(&rn.value.roles), format!("nodes[{}].roles", index_of(raw, rn)), format!("node `{}` has the etcd role but etcd.topology is stacked", n.name), "stacked etcd runs on the control-plane nodes: set etcd.topology: external, or remove the role");
                }
            }
            if cp % 2 == 0 && !any_node_failed {
                sink.warn(pos(&raw.nodes), "nodes", format!("{cp} control-plane nodes run {cp} stacked etcd members, which tolerate {} failure(s), no more than {} would", (cp - 1) / 2, cp - 1), "use an odd number of control-plane nodes: 3 or 5");
            }
        }
        EtcdTopology::External => {
            let members = nodes.iter().filter(|(n, _)| n.roles.etcd).count();
            if members == 0 && !any_node_failed {
                sink.error(
                    pos(&raw.nodes),
                    "nodes",
                    "etcd.topology is external but no node has the etcd role",
                    "give three or five nodes the etcd role",
                );
            } else if members % 2 == 0 && !any_node_failed {
                sink.warn(
                    pos(&raw.nodes),
                    "nodes",
                    format!(
                        "{members} etcd members tolerate {} failure(s), no more than {} would",
                        (members - 1) / 2,
                        members - 1
                    ),
                    "use an odd number of etcd nodes: 3 or 5",
                );
            }
        }
    }
}

fn index_of(raw: &RawInventory, rn: &S<RawNode>) -> usize {
    raw.nodes
        .value
        .iter()
        .position(|x| std::ptr::eq(x, rn))
        .unwrap_or(0)
}

fn ports(e: &RawEndpoint, ep: &Endpoint, fd: &Frontdoor, sink: &mut Sink) {
    if fd.kind != FrontdoorKind::External && ep.port == ep.apiserver_port {
        let at = e
            .port
            .as_ref()
            .or(e.apiserver_port.as_ref())
            .map(pos)
            .unwrap_or_else(|| pos(&e.vip));
        sink.error(at, "endpoint.port", format!("the front door and kube-apiserver would both listen on port {} of every control-plane node", ep.port), "use another port for the front door, like 16443, or set frontdoor.kind: external");
    }
}

fn vip_placement(raw: &RawInventory, ep: &Endpoint, nodes: &[ParsedNode<'_>], sink: &mut Sink) {
    let vip_pos = pos(&raw.endpoint.value.vip);
    if let Some((n, rn)) = nodes.iter().find(|(n, _)| n.address == ep.vip) {
        sink.error(
            vip_pos,
            "endpoint.vip",
            format!(
                "the VIP {} is node `{}`'s own address (line {})",
                ep.vip,
                n.name,
                rn.value.address.referenced.line()
            ),
            "the VIP must be a free address in the control-plane subnet",
        );
        return;
    }
    let cps: Vec<&Node> = nodes
        .iter()
        .map(|(n, _)| n)
        .filter(|n| n.roles.control_plane)
        .collect();
    let mut subnets: Vec<Ipv4Net> = cps.iter().filter_map(|n| n.subnet).collect();
    subnets.sort();
    subnets.dedup();
    if !subnets.is_empty() && !subnets.iter().any(|s| s.contains(&ep.vip)) {
        let list: Vec<String> = subnets.iter().map(|s| s.to_string()).collect();
        sink.error(
            vip_pos,
            "endpoint.vip",
            format!(
                "the VIP {} is outside every control-plane subnet ({})",
                ep.vip,
                list.join(", ")
            ),
            "VRRP moves the VIP within one layer-2 subnet: pick a free address in it",
        );
        return;
    }
    let vip_net = Ipv4Net::new(ep.vip, ep.vip_prefix).map(|n| n.trunc()).ok();
    if raw.endpoint.value.vip.value.contains('/')
        && let Some(vn) = vip_net
        && !cps.is_empty()
        && !cps.iter().any(|n| vn.contains(&n.address))
    {
        sink.error(
            vip_pos,
            "endpoint.vip",
            format!("no control-plane node address is inside the VIP's subnet {vn}"),
            "the VIP must share a subnet with the control-plane nodes",
        );
    }
}

/// `cni: bridge`: each node's /24 (pinned, or by its place) inside the pod range, and no two
/// alike. Other CNIs allocate pod addresses themselves, so a pin there is a mistake.
fn pod_subnets(net: &Networking, nodes: &[ParsedNode<'_>], pod_pos: Pos, sink: &mut Sink) {
    let pod = net.pod_cidr;
    let mut taken: HashMap<Ipv4Net, &str> = HashMap::new();
    let mut short_of_room = false;
    for (i, (node, raw)) in nodes.iter().enumerate() {
        let field = format!("nodes[{i}].pod_subnet");
        let pinned = raw.value.pod_subnet.as_ref();
        if let (Some(p), Some(s)) = (pinned, node.pod_subnet) {
            if net.cni != Cni::Bridge {
                sink.error(
                    pos(p),
                    field,
                    "pod_subnet is set, but only `cni: bridge` gives each node its own pod subnet",
                    "remove it: the CNI allocates pod addresses itself",
                );
                continue;
            }
            if s.prefix_len() != 24 || !pod.contains(&s) {
                sink.error(
                    pos(p),
                    field,
                    format!("{s} is not a /24 inside the pod range {pod}"),
                    "pin one of the pod range's /24s, like the one this node has now",
                );
                continue;
            }
        }
        if net.cni != Cni::Bridge {
            continue;
        }
        let Some(subnet) = node.pod_subnet.or_else(|| net.node_pod_subnet(i)) else {
            short_of_room = true;
            continue;
        };
        if let Some(other) = taken.insert(subnet, &node.name) {
            let at = pinned.map_or_else(|| pos(&raw.value.name), pos);
            sink.error(
                at,
                field,
                format!("pod subnet {subnet} is node `{other}`'s too"),
                "give every node its own /24: pin pod_subnet on the node whose place gives it that one",
            );
        }
    }
    if short_of_room {
        sink.error(
            pod_pos,
            "networking.pod_cidr",
            format!(
                "{pod} has room for fewer /24s than the {} nodes `cni: bridge` gives one each",
                nodes.len()
            ),
            "use a larger pod range, like 10.244.0.0/16",
        );
    }
}

fn overlaps(
    raw: &RawInventory,
    net: &Networking,
    ep: Option<&Endpoint>,
    nodes: &[ParsedNode<'_>],
    sink: &mut Sink,
) {
    let default = RawNetworking::default();
    let rn = raw.networking.as_ref().map_or(&default, |n| &n.value);
    let pod_pos = rn
        .pod_cidr
        .as_ref()
        .map(pos)
        .or(raw.networking.as_ref().map(pos))
        .unwrap_or_default();
    let svc_pos = rn
        .service_cidr
        .as_ref()
        .map(pos)
        .or(raw.networking.as_ref().map(pos))
        .unwrap_or_default();
    let (pod, svc) = (net.pod_cidr, net.service_cidr);
    pod_subnets(net, nodes, pod_pos, sink);
    if overlap(pod, svc) {
        sink.error(
            svc_pos,
            "networking.service_cidr",
            format!("service CIDR {svc} overlaps pod CIDR {pod}"),
            "pick ranges that do not overlap, like pods 10.244.0.0/16 and services 10.96.0.0/12",
        );
    }
    for (i, (n, rnode)) in nodes.iter().enumerate() {
        let host = n
            .subnet
            .unwrap_or_else(|| Ipv4Net::new(n.address, 32).expect("32 is a valid prefix"));
        for (cidr, what, at) in [(pod, "pod", pod_pos), (svc, "service", svc_pos)] {
            if overlap(host, cidr) {
                let field = if what == "pod" {
                    "networking.pod_cidr"
                } else {
                    "networking.service_cidr"
                };
                sink.error(
                    at,
                    field,
                    format!(
                        "{what} CIDR {cidr} clashes with node `{}`'s subnet {host} (line {})",
                        n.name,
                        rnode.value.address.referenced.line()
                    ),
                    format!(
                        "the {what} CIDR must not overlap any host subnet; choose another range"
                    ),
                );
                let _ = i;
                return;
            }
        }
    }
    if let Some(ep) = ep {
        for (cidr, what) in [(pod, "pod"), (svc, "service")] {
            if cidr.contains(&ep.vip) {
                sink.error(
                    pos(&raw.endpoint.value.vip),
                    "endpoint.vip",
                    format!("the VIP {} is inside the {what} CIDR {cidr}", ep.vip),
                    "move the VIP into the control-plane nodes' subnet",
                );
            }
        }
    }
}

fn overlap(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}
