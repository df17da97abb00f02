//! Per-router counters, one per drop reason, for the daemon to export.

/// Plain counters. Every received packet lands in exactly one of `adverts_accepted` or a
/// drop reason (`owner_conflict` is counted in addition, since the owner still processes the
/// advert, RFC 9568 erratum 8298).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Counters {
    /// Adverts that passed every check and reached the state machine.
    pub adverts_accepted: u64,
    /// VRRP packets handed to the router (before any check).
    pub packets_received: u64,
    /// Advert packets emitted (one per destination).
    pub adverts_sent: u64,
    /// Priority-0 advert packets emitted (shutdown or fault while Master).
    pub priority_zero_sent: u64,
    /// Accepted adverts with priority 0.
    pub priority_zero_received: u64,
    /// Transitions into Master.
    pub became_master: u64,
    /// IP TTL not 255.
    pub bad_ttl: u64,
    /// VRRP checksum wrong in both forms.
    pub bad_checksum: u64,
    /// Version not 2/3, or not the configured version.
    pub bad_version: u64,
    /// Type not ADVERTISEMENT.
    pub bad_type: u64,
    /// Truncated, address count too large, trailing bytes, no addresses.
    pub bad_length: u64,
    /// Zero advertisement interval.
    pub bad_interval: u64,
    /// IPv4 header unusable (not IPv4, bad length, fragment, not protocol 112, checksum).
    pub bad_ip_header: u64,
    /// VRID 0 or not this router's VRID.
    pub vrid_mismatch: u64,
    /// Unicast mode: source not in the peer list.
    pub foreign_source: u64,
    /// Our own advert looped back (source is our primary address).
    pub own_advert: u64,
    /// VRRPv2: Adver Int differs from ours (RFC 3768 §7.1).
    pub interval_mismatch: u64,
    /// VRRPv2: auth type or password differs from ours.
    pub auth_mismatch: u64,
    /// Address list differs from ours and the sender is not the owner (RFC 9568 §7.1 MAY).
    pub address_mismatch: u64,
    /// We are the address owner (priority 255) and received an advert: logged, still
    /// processed (RFC 9568 erratum 8298).
    pub owner_conflict: u64,
}

impl Counters {
    /// Every counter with a stable snake_case name, for metrics export.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            ("adverts_accepted", self.adverts_accepted),
            ("packets_received", self.packets_received),
            ("adverts_sent", self.adverts_sent),
            ("priority_zero_sent", self.priority_zero_sent),
            ("priority_zero_received", self.priority_zero_received),
            ("became_master", self.became_master),
            ("bad_ttl", self.bad_ttl),
            ("bad_checksum", self.bad_checksum),
            ("bad_version", self.bad_version),
            ("bad_type", self.bad_type),
            ("bad_length", self.bad_length),
            ("bad_interval", self.bad_interval),
            ("bad_ip_header", self.bad_ip_header),
            ("vrid_mismatch", self.vrid_mismatch),
            ("foreign_source", self.foreign_source),
            ("own_advert", self.own_advert),
            ("interval_mismatch", self.interval_mismatch),
            ("auth_mismatch", self.auth_mismatch),
            ("address_mismatch", self.address_mismatch),
            ("owner_conflict", self.owner_conflict),
        ]
        .into_iter()
    }

    /// Sum of all drop reasons.
    pub fn dropped(&self) -> u64 {
        self.bad_ttl
            + self.bad_checksum
            + self.bad_version
            + self.bad_type
            + self.bad_length
            + self.bad_interval
            + self.bad_ip_header
            + self.vrid_mismatch
            + self.foreign_source
            + self.own_advert
            + self.interval_mismatch
            + self.auth_mismatch
            + self.address_mismatch
    }

    pub(crate) fn count_decode_error(&mut self, e: &crate::packet::DecodeError) {
        use crate::packet::DecodeError as E;
        let c = match e {
            E::BadTtl(_) => &mut self.bad_ttl,
            E::BadChecksum { .. } => &mut self.bad_checksum,
            E::BadVersion(_) => &mut self.bad_version,
            E::BadType(_) => &mut self.bad_type,
            E::BadVrid => &mut self.vrid_mismatch,
            E::Truncated { .. }
            | E::NoAddresses
            | E::AddressCountTooLarge { .. }
            | E::LengthMismatch { .. } => &mut self.bad_length,
            E::ZeroInterval => &mut self.bad_interval,
            E::NotIpv4(_)
            | E::BadIpHeaderLength
            | E::BadIpTotalLength { .. }
            | E::NotVrrp(_)
            | E::Fragmented
            | E::BadIpChecksum => &mut self.bad_ip_header,
        };
        *c += 1;
    }
}
