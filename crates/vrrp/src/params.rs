//! The VRRP rules a configured router must meet, written once: [`Vrid`] (1–255),
//! [`Priority`] (1–254; 255 is the address owner, 0 means "stop") and [`AdvertInterval`]
//! (VRRPv3 counts in whole centiseconds, 10 ms to 40.95 s). Each is checked where it is
//! built (`TryFrom`, `new`, or deserializing), so a value of the type is always valid.
//!
//! Serde: `Vrid` and `Priority` are numbers; `AdvertInterval` is a duration string such as
//! `40ms` or `1s` (what kubeha writes and reads in its YAML files).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use crate::packet::V3_MAX_INTERVAL_CS;

/// Why a VRRP parameter was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("VRID {0} is outside 1-255")]
    Vrid(i64),
    #[error("VRRP priority {0} is outside 1-254")]
    Priority(i64),
    #[error("{} is outside 10ms-40.95s", show(.0))]
    IntervalRange(Duration),
    #[error("{} is not a whole number of centiseconds", show(.0))]
    IntervalNotCentis(Duration),
}

/// Why interval text (`40ms`) was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IntervalParseError {
    #[error("`{0}` is not a duration: {1}")]
    Syntax(String, String),
    #[error(transparent)]
    Param(#[from] ParamError),
}

fn show(d: &Duration) -> String {
    format_duration(*d)
}

/// A duration as kubeha writes it: `40ms`, `1s`, `1s500ms` (humantime without spaces).
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string().replace(' ', "")
}

/// Virtual Router ID, 1–255.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vrid(u8);

impl Vrid {
    pub const fn new(v: u8) -> Result<Vrid, ParamError> {
        if v == 0 {
            return Err(ParamError::Vrid(0));
        }
        Ok(Vrid(v))
    }

    pub const fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<i64> for Vrid {
    type Error = ParamError;
    fn try_from(v: i64) -> Result<Vrid, ParamError> {
        match u8::try_from(v) {
            Ok(b) if b != 0 => Ok(Vrid(b)),
            _ => Err(ParamError::Vrid(v)),
        }
    }
}

impl TryFrom<u8> for Vrid {
    type Error = ParamError;
    fn try_from(v: u8) -> Result<Vrid, ParamError> {
        Vrid::new(v)
    }
}

impl PartialEq<u8> for Vrid {
    fn eq(&self, other: &u8) -> bool {
        self.0 == *other
    }
}

impl From<Vrid> for u8 {
    fn from(v: Vrid) -> u8 {
        v.0
    }
}

impl fmt::Display for Vrid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The priority of a configured (non-owner) router, 1–254. 255 is reserved for the router
/// that owns the addresses ([`Priority::is_owner_value`]), 0 for "master stops".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(u8);

impl Priority {
    /// The priority an address owner advertises (not a [`Priority`]: kubeha never owns the VIP).
    pub const OWNER: u8 = 255;
    /// The lowest priority a configured router can have.
    pub const LOWEST: Priority = Priority(1);

    pub const fn new(v: u8) -> Result<Priority, ParamError> {
        if v == 0 || v == Self::OWNER {
            return Err(ParamError::Priority(v as i64));
        }
        Ok(Priority(v))
    }

    pub const fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<i64> for Priority {
    type Error = ParamError;
    fn try_from(v: i64) -> Result<Priority, ParamError> {
        u8::try_from(v)
            .ok()
            .and_then(|b| Priority::new(b).ok())
            .ok_or(ParamError::Priority(v))
    }
}

impl TryFrom<u8> for Priority {
    type Error = ParamError;
    fn try_from(v: u8) -> Result<Priority, ParamError> {
        Priority::new(v)
    }
}

impl PartialEq<u8> for Priority {
    fn eq(&self, other: &u8) -> bool {
        self.0 == *other
    }
}

impl From<Priority> for u8 {
    fn from(p: Priority) -> u8 {
        p.0
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A VRRPv3 advertisement interval: whole centiseconds, 10 ms (1 cs) to 40.95 s (4095 cs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AdvertInterval(u16);

impl AdvertInterval {
    /// VRRP's default (RFC 9568 §5.2.7, keepalived's `advert_int 1`): 1 s.
    pub const DEFAULT: AdvertInterval = AdvertInterval(100);

    pub const fn from_centis(cs: u16) -> Result<AdvertInterval, ParamError> {
        if cs == 0 || cs > V3_MAX_INTERVAL_CS {
            return Err(ParamError::IntervalRange(Duration::from_millis(
                cs as u64 * 10,
            )));
        }
        Ok(AdvertInterval(cs))
    }

    pub const fn centis(self) -> u16 {
        self.0
    }

    pub const fn as_duration(self) -> Duration {
        Duration::from_millis(self.0 as u64 * 10)
    }
}

impl Default for AdvertInterval {
    fn default() -> AdvertInterval {
        AdvertInterval::DEFAULT
    }
}

impl TryFrom<Duration> for AdvertInterval {
    type Error = ParamError;
    fn try_from(d: Duration) -> Result<AdvertInterval, ParamError> {
        if d < Duration::from_millis(10) || d > Duration::from_millis(40_950) {
            return Err(ParamError::IntervalRange(d));
        }
        if d.as_nanos() % 10_000_000 != 0 {
            return Err(ParamError::IntervalNotCentis(d));
        }
        Ok(AdvertInterval((d.as_millis() / 10) as u16))
    }
}

impl std::str::FromStr for AdvertInterval {
    type Err = IntervalParseError;
    /// A duration such as `40ms` or `1s`.
    fn from_str(s: &str) -> Result<AdvertInterval, IntervalParseError> {
        let d = humantime::parse_duration(s.trim())
            .map_err(|e| IntervalParseError::Syntax(s.to_string(), e.to_string()))?;
        Ok(AdvertInterval::try_from(d)?)
    }
}

impl fmt::Display for AdvertInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.as_duration()))
    }
}

impl Serialize for Vrid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.0)
    }
}

impl<'de> Deserialize<'de> for Vrid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Vrid, D::Error> {
        Vrid::new(u8::deserialize(d)?).map_err(de::Error::custom)
    }
}

impl Serialize for Priority {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.0)
    }
}

impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Priority, D::Error> {
        Priority::new(u8::deserialize(d)?).map_err(de::Error::custom)
    }
}

impl Serialize for AdvertInterval {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AdvertInterval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AdvertInterval, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn vrid_is_1_to_255() {
        assert_eq!(Vrid::new(0), Err(ParamError::Vrid(0)));
        assert_eq!(Vrid::new(1).map(Vrid::get), Ok(1));
        assert_eq!(Vrid::new(255).map(Vrid::get), Ok(255));
        assert_eq!(Vrid::try_from(256i64), Err(ParamError::Vrid(256)));
        assert_eq!(Vrid::try_from(-1i64), Err(ParamError::Vrid(-1)));
        assert_eq!(Vrid::try_from(51i64).map(u8::from), Ok(51));
        assert_eq!(
            ParamError::Vrid(300).to_string(),
            "VRID 300 is outside 1-255"
        );
    }

    #[test]
    fn priority_is_1_to_254() {
        assert_eq!(Priority::new(0), Err(ParamError::Priority(0)));
        assert_eq!(Priority::new(255), Err(ParamError::Priority(255)));
        assert_eq!(Priority::new(1).map(Priority::get), Ok(1));
        assert_eq!(Priority::new(254).map(Priority::get), Ok(254));
        assert_eq!(Priority::try_from(1000i64), Err(ParamError::Priority(1000)));
        assert_eq!(
            ParamError::Priority(255).to_string(),
            "VRRP priority 255 is outside 1-254"
        );
    }

    #[test]
    fn interval_is_whole_centiseconds_10ms_to_40_95s() {
        assert_eq!(AdvertInterval::try_from(ms(10)).map(|i| i.centis()), Ok(1));
        assert_eq!(
            AdvertInterval::try_from(ms(40_950)).map(|i| i.centis()),
            Ok(4095)
        );
        assert_eq!(
            AdvertInterval::try_from(ms(5)),
            Err(ParamError::IntervalRange(ms(5)))
        );
        assert_eq!(
            AdvertInterval::try_from(ms(41_000)),
            Err(ParamError::IntervalRange(ms(41_000)))
        );
        assert_eq!(
            AdvertInterval::try_from(ms(45)),
            Err(ParamError::IntervalNotCentis(ms(45)))
        );
        assert!(AdvertInterval::try_from(Duration::from_micros(10_001)).is_err());
        assert_eq!(
            AdvertInterval::from_centis(4095).map(|i| i.as_duration()),
            Ok(ms(40_950))
        );
        assert!(AdvertInterval::from_centis(0).is_err());
        assert!(AdvertInterval::from_centis(4096).is_err());
        assert_eq!(
            AdvertInterval::default().as_duration(),
            Duration::from_secs(1)
        );
        assert_eq!(
            ParamError::IntervalNotCentis(ms(45)).to_string(),
            "45ms is not a whole number of centiseconds"
        );
        assert_eq!(
            ParamError::IntervalRange(ms(41_000)).to_string(),
            "41s is outside 10ms-40.95s"
        );
    }

    #[test]
    fn interval_text_round_trips() {
        for (text, cs) in [
            ("40ms", 4),
            ("1s", 100),
            ("1s500ms", 150),
            ("40s950ms", 4095),
        ] {
            let i: AdvertInterval = text.parse().unwrap();
            assert_eq!(i.centis(), cs, "{text}");
            assert_eq!(i.to_string(), text);
        }
        assert!(matches!(
            "fast".parse::<AdvertInterval>(),
            Err(IntervalParseError::Syntax(..))
        ));
    }
}
