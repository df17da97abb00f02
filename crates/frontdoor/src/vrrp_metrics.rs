//! The VRRP side's metrics, registered in the same prometheus-client registry as the proxy's
//! (a [`Collector`] that reads the speaker's latest [`vip::Status`] at each scrape).
//!
//! Names (prefixed `kubeha_frontdoor_`; `deploy`'s status parser reads `vrrp_state` and
//! `vrrp_priority`): `vrrp_state{state}` (1 for the current state, 0 for the others),
//! `vrrp_priority`, `vip_held`, `vrrp_transitions_total`, `vrrp_adverts_sent_total`,
//! `vrrp_adverts_received_total`, `vrrp_gratuitous_arps_total`,
//! `vrrp_dropped_total{reason}`, and `vrrp_master{address}` once a master was heard.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use tokio::sync::watch;

/// Reads the speaker's status on every scrape.
#[derive(Debug)]
pub struct VrrpCollector {
    status: watch::Receiver<vip::Status>,
}

impl VrrpCollector {
    pub fn new(status: watch::Receiver<vip::Status>) -> VrrpCollector {
        VrrpCollector { status }
    }
}

/// The drop reasons among the router's counters (the others count accepted traffic).
fn is_drop(reason: &str) -> bool {
    reason.starts_with("bad_")
        || matches!(
            reason,
            "vrid_mismatch"
                | "foreign_source"
                | "interval_mismatch"
                | "auth_mismatch"
                | "address_mismatch"
                | "owner_conflict"
        )
}

fn state_name(s: vrrp::State) -> &'static str {
    match s {
        vrrp::State::Initialize => "initialize",
        vrrp::State::Backup => "backup",
        vrrp::State::Master => "master",
        vrrp::State::Fault => "fault",
    }
}

impl Collector for VrrpCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        let st = self.status.borrow().clone();
        let state = state_name(st.state);
        {
            let mut family = enc.encode_descriptor(
                "vrrp_state",
                "Current VRRP state (1 = this state).",
                None,
                MetricType::Gauge,
            )?;
            for s in ["initialize", "backup", "master", "fault"] {
                ConstGauge::new(i64::from(s == state))
                    .encode(family.encode_family(&[("state", s)])?)?;
            }
        }
        ConstGauge::new(i64::from(st.effective_priority)).encode(enc.encode_descriptor(
            "vrrp_priority",
            "Effective VRRP priority.",
            None,
            MetricType::Gauge,
        )?)?;
        ConstGauge::new(i64::from(st.holds_vip)).encode(enc.encode_descriptor(
            "vip_held",
            "Whether this node holds the VIP.",
            None,
            MetricType::Gauge,
        )?)?;
        for (name, help, v) in [
            (
                "vrrp_transitions",
                "VRRP state transitions.",
                st.transitions,
            ),
            ("vrrp_adverts_sent", "VRRP adverts sent.", st.adverts_sent),
            (
                "vrrp_adverts_received",
                "VRRP adverts accepted.",
                st.counters.adverts_accepted,
            ),
            (
                "vrrp_gratuitous_arps",
                "Gratuitous ARPs sent.",
                st.gratuitous_arps,
            ),
            (
                "vip_conflicts",
                "ARP probes that found a device outside the VRRP group answering for the VIP.",
                st.conflicts_found,
            ),
            (
                "link_ups",
                "Times the VRRP interface came back up (then probed, and the VIP re-announced).",
                st.link_ups,
            ),
        ] {
            ConstCounter::new(v).encode(enc.encode_descriptor(
                name,
                help,
                None,
                MetricType::Counter,
            )?)?;
        }
        {
            let mut family = enc.encode_descriptor(
                "vrrp_dropped",
                "VRRP packets dropped, by reason.",
                None,
                MetricType::Counter,
            )?;
            for (reason, v) in st.counters.iter().filter(|(r, _)| is_drop(r)) {
                ConstCounter::new(v).encode(family.encode_family(&[("reason", reason)])?)?;
            }
        }
        {
            // 1 while another device answers ARP for the VIP (this node then stays in Fault).
            let mut family = enc.encode_descriptor(
                "vip_conflict",
                "Whether a device outside the VRRP group answers ARP for the VIP, by its MAC.",
                None,
                MetricType::Gauge,
            )?;
            if let Some(mac) = st.conflict {
                let mac = vip::arp::mac_string(mac);
                ConstGauge::new(1i64).encode(family.encode_family(&[("mac", mac.as_str())])?)?;
            }
        }
        if let Some(m) = st.master {
            let address = m.to_string();
            let mut family = enc.encode_descriptor(
                "vrrp_master",
                "Source of the last accepted advert.",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(1i64)
                .encode(family.encode_family(&[("address", address.as_str())])?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use super::*;
    use crate::pool::{Balance, Pool};

    /// One registry: a scrape of the pool's metrics carries the VRRP side too, with the
    /// names and labels `kubeha status` reads, and follows the status as it changes.
    #[test]
    fn the_pool_registry_renders_the_vrrp_side() {
        let (tx, rx) = watch::channel(vip::Status::default());
        let backend: SocketAddr = "198.18.0.11:6443".parse().unwrap();
        let pool = Pool::new(vec![backend], Balance::RoundRobin)
            .with_collector(Box::new(VrrpCollector::new(rx)));
        let text = pool.metrics().render();
        assert!(
            text.contains("kubeha_frontdoor_vrrp_state{state=\"initialize\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("kubeha_frontdoor_backend_up{backend=\"198.18.0.11:6443\"}"));
        assert!(!text.contains("vrrp_master{"));
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(text.matches("# EOF").count(), 1);
        tx.send_modify(|s| {
            s.state = vrrp::State::Master;
            s.effective_priority = 150;
            s.adverts_sent = 7;
            s.master = Some(Ipv4Addr::new(198, 18, 0, 12));
            s.conflict = Some([2, 0, 0, 0, 0, 9]);
            s.conflicts_found = 3;
            s.link_ups = 1;
        });
        let text = pool.metrics().render();
        for line in [
            "# TYPE kubeha_frontdoor_vrrp_priority gauge\n",
            "kubeha_frontdoor_vrrp_state{state=\"master\"} 1\n",
            "kubeha_frontdoor_vrrp_priority 150\n",
            "# TYPE kubeha_frontdoor_vrrp_adverts_sent counter\n",
            "kubeha_frontdoor_vrrp_adverts_sent_total 7\n",
            "kubeha_frontdoor_vrrp_dropped_total{reason=\"bad_ttl\"} 0\n",
            "kubeha_frontdoor_vrrp_master{address=\"198.18.0.12\"} 1\n",
            "kubeha_frontdoor_vip_conflict{mac=\"02:00:00:00:00:09\"} 1\n",
            "kubeha_frontdoor_vip_conflicts_total 3\n",
            "kubeha_frontdoor_link_ups_total 1\n",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }
}
