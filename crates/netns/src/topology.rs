//! N node namespaces and a client namespace on one bridge. The bridge lives in a hub namespace
//! of its own, so nothing is added to the host's network; addresses are in 198.18.0.0/24.

use std::net::Ipv4Addr;

use crate::{Error, Netns};

/// Node `i` (0-based) gets 198.18.0.(11 + i); the client 198.18.0.100; the VIP is .10.
pub const SUBNET_PREFIX: u8 = 24;
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);

pub fn node_address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, 11 + i as u8)
}

#[derive(Debug)]
pub struct Host {
    pub ns: Netns,
    pub address: Ipv4Addr,
    /// The bridge port (in the hub namespace) this host is plugged into.
    pub port: String,
}

/// Field order matters: hosts are dropped (deleted) before the hub.
#[derive(Debug)]
pub struct Topology {
    pub name: String,
    pub nodes: Vec<Host>,
    pub client: Host,
    pub hub: Netns,
}

impl Topology {
    /// Builds `name-hub` (bridge br0), `name-n0..` and `name-client`. On any error the parts
    /// made so far are removed by their guards.
    pub fn build(name: &str, nodes: usize) -> Result<Topology, Error> {
        if nodes == 0 || nodes > 50 {
            return Err(Error::Invalid(format!("{nodes} nodes: use 1 to 50")));
        }
        let hub = Netns::create(&format!("{name}-hub"))?;
        hub.exec(&["ip", "link", "add", "br0", "type", "bridge"])?;
        // Forward at once: a new port's STP learning delay would eat the first adverts.
        hub.exec(&[
            "ip",
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "forward_delay",
            "0",
            "stp_state",
            "0",
        ])?;
        hub.exec(&["ip", "link", "set", "br0", "up"])?;
        let mut hosts = Vec::new();
        for i in 0..nodes {
            hosts.push(plug(
                &hub,
                &format!("{name}-n{i}"),
                &format!("p{i}"),
                node_address(i),
            )?);
        }
        let client = plug(&hub, &format!("{name}-client"), "pc", CLIENT)?;
        Ok(Topology {
            name: name.to_string(),
            nodes: hosts,
            client,
            hub,
        })
    }

    /// Pulls (up = false) or plugs back (up = true) node `i`'s cable: its bridge port goes down,
    /// so the node sees no carrier while its own interface stays configured.
    pub fn cable(&self, i: usize, up: bool) -> Result<(), Error> {
        let state = if up { "up" } else { "down" };
        self.hub
            .exec(&["ip", "link", "set", &self.nodes[i].port, state])?;
        Ok(())
    }

    /// Every namespace name this topology made.
    pub fn namespaces(&self) -> Vec<String> {
        let mut v: Vec<String> = self.nodes.iter().map(|h| h.ns.name().to_string()).collect();
        v.push(self.client.ns.name().to_string());
        v.push(self.hub.name().to_string());
        v
    }
}

fn plug(hub: &Netns, ns_name: &str, port: &str, address: Ipv4Addr) -> Result<Host, Error> {
    let ns = Netns::create(ns_name)?;
    hub.exec(&[
        "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns_name,
    ])?;
    hub.exec(&["ip", "link", "set", port, "master", "br0"])?;
    hub.exec(&["ip", "link", "set", port, "up"])?;
    ns.exec(&[
        "ip",
        "addr",
        "add",
        &format!("{address}/{SUBNET_PREFIX}"),
        "dev",
        "eth0",
    ])?;
    ns.exec(&["ip", "link", "set", "eth0", "up"])?;
    Ok(Host {
        ns,
        address,
        port: port.to_string(),
    })
}
