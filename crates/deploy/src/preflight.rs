//! Cross-node preflight: each node reports facts (`plan::facts`, from the `preflight/host`
//! step); this module finds what only shows when nodes are compared —
//! cloned machines (product_uuid, machine-id, MACs), duplicate hostnames, clock skew, a VIP
//! that someone else already answers for. Pure: facts in, findings out.

use std::collections::BTreeMap;

// The `fact` lines are parsed next to the script that prints them.
pub use plan::facts::{Facts, parse as parse_facts};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub message: String,
}

impl Finding {
    fn error(message: String) -> Self {
        Finding {
            severity: Severity::Error,
            message,
        }
    }
    fn warning(message: String) -> Self {
        Finding {
            severity: Severity::Warning,
            message,
        }
    }
}

/// A node's clock against this machine's, measured around one round trip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockSample {
    /// Node clock minus the midpoint of our send and receive times, seconds.
    pub offset: f64,
    /// Half the round trip: the offset is right within this much.
    pub uncertainty: f64,
}

impl ClockSample {
    pub fn new(sent: f64, received: f64, node_clock: f64) -> Self {
        ClockSample {
            offset: node_clock - (sent + received) / 2.0,
            uncertainty: (received - sent).max(0.0) / 2.0,
        }
    }
}

pub const MAX_CLOCK_SKEW_SECS: f64 = 2.0;

/// Every finding across `nodes` (name, facts), in a stable order.
pub fn cross_node(nodes: &[(String, Facts)], clocks: &[(String, ClockSample)]) -> Vec<Finding> {
    let mut out = Vec::new();
    duplicates(
        nodes,
        |f| f.product_uuid.iter().cloned().collect(),
        "product_uuid",
        "cloned machines confuse kubelet and CNI; give each machine its own UUID (re-create the VM or change its SMBIOS UUID)",
        &mut out,
    );
    duplicates(
        nodes,
        |f| f.machine_id.iter().cloned().collect(),
        "/etc/machine-id",
        "run `rm /etc/machine-id && systemd-machine-id-setup` on one of them",
        &mut out,
    );
    duplicates(
        nodes,
        |f| f.macs.iter().map(|(_, m)| m.clone()).collect(),
        "MAC address",
        "give each interface its own MAC (cloned VMs keep the source's)",
        &mut out,
    );
    duplicates(
        nodes,
        |f| f.hostname.iter().map(|h| h.to_lowercase()).collect(),
        "hostname",
        "Kubernetes names nodes by hostname; set a unique one with `hostnamectl set-hostname`",
        &mut out,
    );
    if let (Some(lo), Some(hi)) = (
        clocks
            .iter()
            .min_by(|a, b| a.1.offset.total_cmp(&b.1.offset)),
        clocks
            .iter()
            .max_by(|a, b| a.1.offset.total_cmp(&b.1.offset)),
    ) {
        let skew = hi.1.offset - lo.1.offset;
        // Only a skew beyond what the round trips could explain counts.
        if skew - lo.1.uncertainty - hi.1.uncertainty > MAX_CLOCK_SKEW_SECS {
            out.push(Finding::error(format!(
                "clocks of {} and {} differ by {skew:.1} s (at most {MAX_CLOCK_SKEW_SECS} s): etcd and certificates need synchronised time; enable NTP (chrony or systemd-timesyncd) on every node",
                lo.0, hi.0
            )));
        }
    }
    for (name, f) in nodes {
        if !f.swap.is_empty() {
            out.push(Finding::warning(format!(
                "{name}: swap is on ({}); prepare turns it off and comments it out in /etc/fstab",
                f.swap.join(", ")
            )));
        }
        if f.timesync.as_deref() == Some("no") {
            out.push(Finding::warning(format!(
                "{name}: the clock is not NTP-synchronised (timedatectl); enable chrony or systemd-timesyncd"
            )));
        }
    }
    out
}

fn duplicates(
    nodes: &[(String, Facts)],
    values: impl Fn(&Facts) -> Vec<String>,
    what: &str,
    hint: &str,
    out: &mut Vec<Finding>,
) {
    let mut seen: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (name, f) in nodes {
        let mut vs = values(f);
        vs.sort();
        vs.dedup();
        for v in vs {
            seen.entry(v).or_default().push(name);
        }
    }
    for (value, names) in seen {
        if names.len() > 1 {
            out.push(Finding::error(format!(
                "{} have the same {what} {value}: {hint}",
                and_list(&names)
            )));
        }
    }
}

fn and_list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// kubeadm already on a node at another version than the inventory's: the packages step
/// replaces it when it installs from a repository or bundle; with preinstalled packages the
/// operator has to.
pub fn kubeadm_versions(nodes: &[(String, Facts)], want: &str) -> Vec<Finding> {
    let want = format!("v{}", want.trim_start_matches('v'));
    let mut odd: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, f) in nodes {
        if let Some(v) = f.kubeadm.as_deref()
            && v != want
        {
            odd.entry(v).or_default().push(name);
        }
    }
    odd.into_iter()
        .map(|(v, names)| {
            Finding::warning(format!(
                "kubeadm {v} is installed on {}, the inventory says {want}: the packages step installs {want} unless packages.source is preinstalled",
                and_list(&names)
            ))
        })
        .collect()
}

/// The VIP answered ARP from `mac`: fine if it is one of ours (a re-run, our front door holds
/// it), an error if it belongs to no node of the cluster.
pub fn vip_owner(vip: &str, mac: Option<&str>, nodes: &[(String, Facts)]) -> Option<Finding> {
    let mac = mac?.to_lowercase();
    if nodes
        .iter()
        .any(|(_, f)| f.macs.iter().any(|(_, m)| *m == mac))
    {
        return None;
    }
    Some(Finding::error(format!(
        "the VIP {vip} already answers ARP from {mac}, which is none of the cluster's nodes: pick a free address for endpoint.vip, or stop whatever holds it"
    )))
}

/// The MAC in `ip neigh show <addr>` output, if the neighbour resolved.
pub fn parse_neigh(stdout: &str) -> Option<String> {
    let mut words = stdout.split_whitespace();
    while let Some(w) = words.next() {
        if w == "lladdr" {
            return words.next().map(str::to_lowercase);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(name: &str, uuid: &str, mac: &str) -> (String, Facts) {
        (
            name.to_string(),
            Facts {
                hostname: Some(name.into()),
                product_uuid: Some(uuid.into()),
                macs: vec![("eth0".into(), mac.into())],
                ..Facts::default()
            },
        )
    }

    #[test]
    fn duplicate_uuid_and_mac_name_both_nodes() {
        let nodes = vec![
            facts("m1", "u-1", "02:00:00:00:00:01"),
            facts("m2", "u-1", "02:00:00:00:00:02"),
            facts("w1", "u-3", "02:00:00:00:00:01"),
        ];
        let f = cross_node(&nodes, &[]);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(
            f[0].message
                .starts_with("m1 and m2 have the same product_uuid u-1")
        );
        assert!(
            f[1].message
                .starts_with("m1 and w1 have the same MAC address 02:00:00:00:00:01")
        );
        assert!(f.iter().all(|x| x.severity == Severity::Error));
    }

    #[test]
    fn a_kubeadm_of_another_version_is_named_once_per_version() {
        let mut nodes = vec![
            facts("m1", "u-1", "02:00:00:00:00:01"),
            facts("m2", "u-2", "02:00:00:00:00:02"),
        ];
        nodes[0].1.kubeadm = Some("v1.30.2".into());
        nodes[1].1.kubeadm = Some("v1.31.4".into());
        let f = kubeadm_versions(&nodes, "1.31.4");
        assert_eq!(f.len(), 1);
        assert!(
            f[0].message
                .starts_with("kubeadm v1.30.2 is installed on m1, the inventory says v1.31.4")
        );
        assert_eq!(f[0].severity, Severity::Warning);
    }

    #[test]
    fn distinct_nodes_pass() {
        let nodes = vec![
            facts("m1", "u-1", "02:00:00:00:00:01"),
            facts("m2", "u-2", "02:00:00:00:00:02"),
        ];
        assert!(cross_node(&nodes, &[]).is_empty());
    }

    #[test]
    fn clock_skew_beyond_two_seconds_and_the_round_trip_is_an_error() {
        let ok = vec![
            ("a".to_string(), ClockSample::new(100.0, 100.2, 100.1)),
            ("b".to_string(), ClockSample::new(100.0, 100.2, 101.9)),
        ];
        assert!(cross_node(&[], &ok).is_empty());
        let bad = vec![
            ("a".to_string(), ClockSample::new(100.0, 100.2, 100.1)),
            ("b".to_string(), ClockSample::new(100.0, 100.2, 103.0)),
        ];
        let f = cross_node(&[], &bad);
        assert_eq!(f.len(), 1);
        assert!(
            f[0].message
                .starts_with("clocks of a and b differ by 2.9 s"),
            "{}",
            f[0].message
        );
        // A slow round trip widens the tolerance.
        let slow = vec![
            ("a".to_string(), ClockSample::new(100.0, 102.0, 101.0)),
            ("b".to_string(), ClockSample::new(100.0, 100.2, 103.0)),
        ];
        assert!(cross_node(&[], &slow).is_empty());
    }

    #[test]
    fn vip_held_by_a_stranger_is_an_error_by_one_of_ours_is_not() {
        let nodes = vec![facts("m1", "u-1", "02:00:00:00:00:01")];
        assert_eq!(vip_owner("198.18.0.10", None, &nodes), None);
        assert_eq!(
            vip_owner("198.18.0.10", Some("02:00:00:00:00:01"), &nodes),
            None
        );
        let f = vip_owner("198.18.0.10", Some("02:AA:00:00:00:09"), &nodes).unwrap();
        assert!(f.message.contains("02:aa:00:00:00:09"));
        assert_eq!(
            parse_neigh("198.18.0.10 dev eth0 lladdr 02:aa:00:00:00:09 REACHABLE\n").as_deref(),
            Some("02:aa:00:00:00:09")
        );
        assert_eq!(parse_neigh("198.18.0.10 dev eth0 FAILED\n"), None);
    }
}
