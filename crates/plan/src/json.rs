//! `kubeha plan --output json`: views of the Plan that serialize as they are written.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{Artifact, ClusterCheck, Digest, NodePlan, Phase, Plan, Step};

#[derive(Serialize)]
pub(crate) struct PlanJson<'a> {
    cluster: &'a str,
    kubernetes_version: &'a str,
    endpoint: &'a str,
    vip: crate::Vip,
    frontdoor: crate::FrontdoorKind,
    etcd_topology: crate::EtcdTopology,
    pki_pending: bool,
    apiserver_port: u16,
    sandbox_image: &'a str,
    checks: Vec<CheckJson>,
    nodes: Vec<NodeJson<'a>>,
    /// The text of every distinct shown content, by SHA-256.
    contents: BTreeMap<Digest, &'a str>,
}

#[derive(Serialize)]
struct CheckJson {
    after: Phase,
    check: ClusterCheck,
    description: &'static str,
}

#[derive(Serialize)]
struct NodeJson<'a> {
    name: &'a str,
    address: &'a str,
    roles: Vec<&'static str>,
    steps: &'a [Step],
    artifacts: Vec<ArtifactJson<'a>>,
}

#[derive(Serialize)]
struct ArtifactJson<'a> {
    path: &'a str,
    mode: String,
    owner: &'a str,
    size: usize,
    sha256: Digest,
    sensitive: bool,
    purpose: &'a str,
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'a> PlanJson<'a> {
    pub(crate) fn new(plan: &'a Plan) -> Self {
        let mut contents = BTreeMap::new();
        let nodes = plan
            .nodes
            .iter()
            .map(|n| node(plan, n, &mut contents))
            .collect();
        PlanJson {
            cluster: &plan.cluster,
            kubernetes_version: &plan.kubernetes_version,
            endpoint: &plan.endpoint,
            vip: plan.vip,
            frontdoor: plan.frontdoor,
            etcd_topology: plan.etcd_topology,
            pki_pending: plan.pki_pending,
            apiserver_port: plan.apiserver_port,
            sandbox_image: &plan.sandbox_image,
            checks: Phase::ALL
                .iter()
                .flat_map(|p| {
                    p.policy().checks.iter().map(move |c| CheckJson {
                        after: *p,
                        check: *c,
                        description: c.description(),
                    })
                })
                .collect(),
            nodes,
            contents,
        }
    }
}

fn node<'a>(
    plan: &'a Plan,
    n: &'a NodePlan,
    contents: &mut BTreeMap<Digest, &'a str>,
) -> NodeJson<'a> {
    NodeJson {
        name: &n.name,
        address: &n.address,
        roles: n.roles.names(),
        steps: &n.steps,
        artifacts: n
            .artifacts
            .iter()
            .map(|a| artifact(plan, a, contents))
            .collect(),
    }
}

fn artifact<'a>(
    plan: &Plan,
    a: &'a Artifact,
    contents: &mut BTreeMap<Digest, &'a str>,
) -> ArtifactJson<'a> {
    let digest = plan.contents.digest(&a.contents);
    // Secrets and binaries (kubeha itself) are shown by digest only.
    if !a.sensitive && !contents.contains_key(&digest) {
        if let Ok(text) = std::str::from_utf8(&a.contents) {
            contents.insert(digest, text);
        }
    }
    ArtifactJson {
        path: &a.path,
        mode: format!("{:04o}", a.mode),
        owner: &a.owner,
        size: a.contents.len(),
        sha256: digest,
        sensitive: a.sensitive,
        purpose: &a.purpose,
    }
}
