//! The `fact <key> <value...>` lines that the `preflight/host` script (scripts/preflight-host.sh)
//! prints about its node, for the cross-node checks in `deploy::preflight`.

/// What one node said about itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub hostname: Option<String>,
    pub product_uuid: Option<String>,
    pub machine_id: Option<String>,
    /// (interface, MAC), lowercase.
    pub macs: Vec<(String, String)>,
    pub swap: Vec<String>,
    pub timesync: Option<String>,
    pub runtime: Option<String>,
    pub kubeadm: Option<String>,
}

fn known(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty() && v != "unknown").then(|| v.to_string())
}

/// Reads the `fact` lines of the `preflight/host` step's output; other lines are ignored.
pub fn parse(stdout: &str) -> Facts {
    let mut f = Facts::default();
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix("fact ") else {
            continue;
        };
        let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
        match key {
            "hostname" => f.hostname = known(value),
            "uuid" => f.product_uuid = known(&value.to_lowercase()),
            "machine-id" => f.machine_id = known(value),
            "mac" => {
                if let Some((iface, mac)) = value.split_once(' ') {
                    let mac = mac.trim().to_lowercase();
                    // Zero MACs (some virtual links) say nothing about cloning.
                    if mac != "00:00:00:00:00:00" {
                        f.macs.push((iface.to_string(), mac));
                    }
                }
            }
            "swap" => f.swap.extend(known(value)),
            "timesync" => f.timesync = known(value),
            "runtime" => f.runtime = known(value),
            "kubeadm" => f.kubeadm = known(value),
            _ => {}
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
fact hostname master1
fact uuid 4C4C4544-0042-3510-8052-B4C04F4E4B32
fact machine-id 0123456789abcdef0123456789abcdef
fact mac eth0 52:54:00:AB:CD:01
fact mac dummy0 00:00:00:00:00:00
fact swap /swapfile
fact timesync yes
fact runtime 1.6.20~ds1
fact kubeadm 
noise from a login banner
";

    #[test]
    fn facts_parse_from_the_step_output() {
        let f = parse(SAMPLE);
        assert_eq!(f.hostname.as_deref(), Some("master1"));
        assert_eq!(
            f.product_uuid.as_deref(),
            Some("4c4c4544-0042-3510-8052-b4c04f4e4b32")
        );
        assert_eq!(f.macs, vec![("eth0".into(), "52:54:00:ab:cd:01".into())]);
        assert_eq!(f.swap, vec!["/swapfile".to_string()]);
        assert_eq!(f.runtime.as_deref(), Some("1.6.20~ds1"));
        assert_eq!(f.kubeadm, None);
    }
}
