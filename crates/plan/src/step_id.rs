//! Step ids: `phase/name`, as `kubeha plan` lists them and `--from` takes them. The strings
//! are a contract (records on nodes are named after them, `--output json` carries them).

use serde::Serialize;

use crate::Phase;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StepId {
    PreflightHost,
    PrepareHosts,
    PrepareSwapOff,
    PrepareModules,
    PrepareSysctl,
    /// journald's limits and storage (`host.journald`).
    PrepareJournald,
    /// `cni: bridge`: the node's bridge config and pod routes.
    PreparePodNetwork,
    PreparePackages,
    /// A time sync service runs (`host.time_sync`).
    PrepareTimeSync,
    PrepareContainerd,
    /// Imports a kubeha bundle's image archives into containerd (offline nodes).
    PrepareImages,
    PkiDistribute,
    EtcdMember,
    FrontdoorBuiltin,
    FrontdoorKeepalivedHaproxy,
    InitKubeadmInit,
    /// Makes this run's bootstrap token exist, on the first control-plane node.
    InitJoinToken,
    CniApply,
    JoinControlPlane,
    JoinWorker,
}

impl StepId {
    pub const ALL: [StepId; 20] = [
        StepId::PreflightHost,
        StepId::PrepareHosts,
        StepId::PrepareSwapOff,
        StepId::PrepareModules,
        StepId::PrepareSysctl,
        StepId::PrepareJournald,
        StepId::PreparePodNetwork,
        StepId::PreparePackages,
        StepId::PrepareTimeSync,
        StepId::PrepareContainerd,
        StepId::PrepareImages,
        StepId::PkiDistribute,
        StepId::EtcdMember,
        StepId::FrontdoorBuiltin,
        StepId::FrontdoorKeepalivedHaproxy,
        StepId::InitKubeadmInit,
        StepId::InitJoinToken,
        StepId::CniApply,
        StepId::JoinControlPlane,
        StepId::JoinWorker,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepId::PreflightHost => "preflight/host",
            StepId::PrepareHosts => "prepare/hosts",
            StepId::PrepareSwapOff => "prepare/swap-off",
            StepId::PrepareModules => "prepare/modules",
            StepId::PrepareSysctl => "prepare/sysctl",
            StepId::PrepareJournald => "prepare/journald",
            StepId::PreparePodNetwork => "prepare/pod-network",
            StepId::PreparePackages => "prepare/packages",
            StepId::PrepareContainerd => "prepare/containerd",
            StepId::PrepareTimeSync => "prepare/time-sync",
            StepId::PrepareImages => "prepare/images",
            StepId::PkiDistribute => "pki/distribute",
            StepId::EtcdMember => "etcd/member",
            StepId::FrontdoorBuiltin => "frontdoor/builtin",
            StepId::FrontdoorKeepalivedHaproxy => "frontdoor/keepalived-haproxy",
            StepId::InitKubeadmInit => "init/kubeadm-init",
            StepId::InitJoinToken => "init/join-token",
            StepId::CniApply => "cni/apply",
            StepId::JoinControlPlane => "join-control-plane/kubeadm-join",
            StepId::JoinWorker => "join-worker/kubeadm-join",
        }
    }

    pub fn phase(self) -> Phase {
        match self {
            StepId::PreflightHost => Phase::Preflight,
            StepId::PrepareHosts
            | StepId::PrepareSwapOff
            | StepId::PrepareModules
            | StepId::PrepareSysctl
            | StepId::PrepareJournald
            | StepId::PreparePodNetwork
            | StepId::PreparePackages
            | StepId::PrepareContainerd
            | StepId::PrepareTimeSync
            | StepId::PrepareImages => Phase::Prepare,
            StepId::PkiDistribute => Phase::Pki,
            StepId::EtcdMember => Phase::Etcd,
            StepId::FrontdoorBuiltin | StepId::FrontdoorKeepalivedHaproxy => Phase::Frontdoor,
            StepId::InitKubeadmInit | StepId::InitJoinToken => Phase::Init,
            StepId::CniApply => Phase::Cni,
            StepId::JoinControlPlane => Phase::JoinControlPlane,
            StepId::JoinWorker => Phase::JoinWorker,
        }
    }
}

impl std::fmt::Display for StepId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no step is called {0}")]
pub struct UnknownStep(pub String);

impl std::str::FromStr for StepId {
    type Err = UnknownStep;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StepId::ALL
            .into_iter()
            .find(|id| id.as_str() == s)
            .ok_or_else(|| UnknownStep(s.to_string()))
    }
}

impl Serialize for StepId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_name_their_phase() {
        for id in StepId::ALL {
            assert_eq!(id.as_str().parse::<StepId>(), Ok(id));
            let (phase, _) = id.as_str().split_once('/').unwrap();
            assert_eq!(phase, id.phase().name());
            assert_eq!(
                serde_json::to_value(id).unwrap(),
                serde_json::Value::String(id.as_str().into())
            );
        }
        assert!("init/nothing".parse::<StepId>().is_err());
    }
}
