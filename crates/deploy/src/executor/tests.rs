//! The executor against scripted nodes (`transport::fake`): no shell, no root, no network.

use std::time::Duration;

use plan::{
    Artifact, EtcdTopology, FrontdoorKind, NodePlan, Phase, Plan, Roles, Step, StepId, Vip,
};

use super::*;
use crate::transport::Purpose;
use crate::transport::fake::{Cluster, Ran};

const SYSCTL: &str = "/etc/sysctl.d/99-kubeha.conf";
const FRONTDOOR: &str = "/etc/kubeha/frontdoor.yaml";

fn step(id: StepId, uploads: &[&str], changes: bool) -> Step {
    Step {
        id,
        description: format!("{id} for tests"),
        uploads: uploads.iter().map(|p| p.to_string()).collect(),
        run: Some(format!("echo {id}")),
        changes,
    }
}

fn node(name: &str, i: usize, roles: Roles, steps: Vec<Step>) -> NodePlan {
    let mut artifacts = vec![Artifact::text(
        SYSCTL,
        0o644,
        "sysctl",
        "net.ipv4.ip_forward = 1\n".into(),
    )];
    if roles.control_plane {
        artifacts.push(Artifact::text(
            FRONTDOOR,
            0o600,
            "front door",
            "vrid: 51\n".into(),
        ));
    }
    NodePlan {
        name: name.into(),
        address: format!("198.18.0.{}", 10 + i),
        roles,
        steps,
        artifacts,
    }
}

/// Three control-plane nodes that are also the external etcd members, two workers.
fn three_and_two() -> Plan {
    let cp = Roles {
        control_plane: true,
        etcd: true,
        worker: false,
    };
    let worker = Roles {
        worker: true,
        ..Roles::default()
    };
    let common = || {
        vec![
            step(StepId::PreflightHost, &[], false),
            step(StepId::PrepareHosts, &[], false),
            step(StepId::PrepareSysctl, &[SYSCTL], true),
        ]
    };
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let mut steps = common();
        steps.push(step(StepId::EtcdMember, &[], true));
        steps.push(step(StepId::FrontdoorBuiltin, &[FRONTDOOR], true));
        if i == 1 {
            steps.push(step(StepId::InitKubeadmInit, &[], true));
            steps.push(step(StepId::InitJoinToken, &[], false));
        } else {
            steps.push(step(StepId::JoinControlPlane, &[], true));
        }
        nodes.push(node(&format!("cp{i}"), i, cp, steps));
    }
    for i in 1..=2 {
        let mut steps = common();
        steps.push(step(StepId::JoinWorker, &[], true));
        nodes.push(node(&format!("w{i}"), 3 + i, worker, steps));
    }
    Plan {
        contents: Default::default(),
        cluster: "test".into(),
        kubernetes_version: "1.34.0".into(),
        endpoint: "198.18.0.10:16443".into(),
        vip: Vip {
            address: "198.18.0.10".parse().unwrap(),
            prefix: 24,
        },
        frontdoor: FrontdoorKind::Builtin,
        etcd_topology: EtcdTopology::External,
        pki_pending: false,
        apiserver_port: 6443,
        sandbox_image: "registry.k8s.io/pause:3.10.1".into(),
        nodes,
    }
}

struct Bed {
    plan: Plan,
    cluster: Cluster,
    logs: tempfile::TempDir,
}

impl Bed {
    fn new() -> Self {
        let cluster = Cluster::new();
        cluster.hold_vip("cp1");
        Bed {
            plan: three_and_two(),
            cluster,
            logs: tempfile::tempdir().unwrap(),
        }
    }

    fn opts(&self) -> Options {
        Options {
            concurrency: 16,
            from: None,
            only: Vec::new(),
            dry_run: false,
            step_timeout: Duration::from_secs(10),
            masked: Vec::new(),
            log_dir: self.logs.path().to_path_buf(),
            kubeconfig: None,
            skip_checks: Vec::new(),
        }
    }

    async fn up_with(&self, opts: &Options) -> Report {
        let conns: Connections = self
            .plan
            .nodes
            .iter()
            .map(|n| (n.name.clone(), Ok(self.cluster.node(&n.name))))
            .collect();
        execute(&self.plan, conns, opts, &()).await
    }

    async fn up(&self) -> Report {
        self.up_with(&self.opts()).await
    }

    /// A first run that succeeded, then a clean journal.
    async fn done(&self) {
        let r = self.up().await;
        assert!(r.ok(), "{r:#?}");
        self.cluster.clear_journal();
    }
}

fn outcome(r: &Report, node: &str, id: StepId) -> Outcome {
    r.node(node).unwrap().outcome(id).unwrap().clone()
}

fn ran(journal: &[Ran], id: StepId) -> Vec<&str> {
    journal
        .iter()
        .filter(|r| r.step == id)
        .map(|r| r.node.as_str())
        .collect()
}

#[tokio::test]
async fn a_fresh_cluster_runs_every_step_phase_by_phase() {
    let bed = Bed::new();
    let r = bed.up().await;
    assert!(r.ok(), "{r:#?}");
    for n in &bed.plan.nodes {
        for s in &n.steps {
            let want = if s.changes {
                Outcome::Changed
            } else {
                Outcome::Checked
            };
            assert_eq!(outcome(&r, &n.name, s.id), want, "{} {}", n.name, s.id);
        }
    }
    // No step of a phase starts before every step of an earlier phase has ended.
    let journal = bed.cluster.journal();
    for a in &journal {
        for b in &journal {
            if a.step.phase() < b.step.phase() {
                assert!(a.end <= b.start, "{a:?} overlaps the later {b:?}");
            }
        }
    }
    assert_eq!(
        r.checks,
        vec![
            format!(
                "VIP 198.18.0.10 held by cp1 only ({:.1} s after the frontdoor phase)",
                0.0
            ),
            format!(
                "VIP 198.18.0.10 held by cp1 only ({:.1} s after the verify phase)",
                0.0
            ),
            "etcd: 3 member(s) healthy".to_string(),
        ]
    );
}

#[tokio::test]
async fn a_rerun_skips_what_is_recorded_and_runs_only_checks() {
    let bed = Bed::new();
    bed.done().await;
    let r = bed.up().await;
    assert!(r.ok(), "{r:#?}");
    assert_eq!(r.changed(), 0);
    let journal = bed.cluster.journal();
    let changing: Vec<&Ran> = journal
        .iter()
        .filter(|ran| {
            let n = bed.plan.node(&ran.node).unwrap();
            n.step(ran.step).unwrap().changes
        })
        .collect();
    assert!(changing.is_empty(), "{changing:?}");
    assert_eq!(outcome(&r, "cp2", StepId::EtcdMember), Outcome::Unchanged);
    assert_eq!(outcome(&r, "cp1", StepId::PrepareHosts), Outcome::Checked);
    // No join ran, so the token step is not needed.
    assert_eq!(outcome(&r, "cp1", StepId::InitJoinToken), Outcome::Skipped);
    assert_eq!(ran(&journal, StepId::InitJoinToken), Vec::<&str>::new());
}

/// The commands each node got, in order.
fn calls_of(bed: &Bed, node: &str) -> Vec<Purpose> {
    bed.cluster
        .calls()
        .into_iter()
        .filter(|(n, _)| n == node)
        .map(|(_, p)| p)
        .collect()
}

#[tokio::test]
async fn a_rerun_that_changes_nothing_costs_one_command_per_node_plus_the_every_run_checks() {
    let bed = Bed::new();
    bed.done().await;
    let r = bed.up().await;
    assert!(r.ok(), "{r:#?}");
    assert_eq!(r.changed(), 0);
    // A worker: its records (and clock) with the preflight checks in one command, then the
    // every-run steps of the prepare phase (prepare/hosts), nothing else.
    let records_then_checks = [Purpose::Records, Purpose::Steps(Phase::Prepare)];
    assert_eq!(calls_of(&bed, "w1"), records_then_checks);
    // The control plane adds verify's cluster checks, the VIP and etcd (the front door phase
    // did nothing, so its own VIP check is left to verify); the first node also who answers
    // ARP for the VIP.
    let mut cp = records_then_checks.to_vec();
    cp.extend([Purpose::VipProbe, Purpose::EtcdProbe]);
    assert_eq!(calls_of(&bed, "cp2"), cp);
    cp.insert(1, Purpose::VipNeighbour);
    assert_eq!(calls_of(&bed, "cp1"), cp);
    assert!(
        bed.cluster
            .calls()
            .iter()
            .all(|(_, p)| *p != Purpose::Tools),
        "nothing runs kubeadm, so nobody is asked for it"
    );
}

#[tokio::test]
async fn a_first_run_sends_each_phase_of_a_node_as_one_command() {
    let bed = Bed::new();
    let r = bed.up().await;
    assert!(r.ok(), "{r:#?}");
    let calls = calls_of(&bed, "cp1");
    let steps: Vec<Phase> = calls
        .iter()
        .filter_map(|p| match p {
            Purpose::Steps(ph) => Some(*ph),
            _ => None,
        })
        .collect();
    let mut phases: Vec<Phase> = bed.plan.nodes[0].steps.iter().map(|s| s.phase()).collect();
    phases.dedup();
    // Preflight went along with the records read.
    assert_eq!(calls[0], Purpose::Records);
    assert_eq!(steps, phases[1..]);
    assert_eq!(outcome(&r, "cp1", StepId::PreflightHost), Outcome::Checked);
    // Still every step's own record and outcome.
    assert_eq!(
        outcome(&r, "cp1", StepId::InitKubeadmInit),
        Outcome::Changed
    );
    assert_eq!(outcome(&r, "cp1", StepId::InitJoinToken), Outcome::Checked);
}

#[tokio::test]
async fn a_step_that_fails_in_a_batch_keeps_the_earlier_ones_and_leaves_the_rest_for_a_rerun() {
    let bed = Bed::new();
    // cp1's init phase is init/kubeadm-init then init/join-token, one command.
    bed.cluster.fail("cp1", StepId::InitJoinToken);
    let r = bed.up().await;
    assert_eq!(
        outcome(&r, "cp1", StepId::InitKubeadmInit),
        Outcome::Changed
    );
    assert_eq!(outcome(&r, "cp1", StepId::InitJoinToken), Outcome::Failed);
    let f = r.node("cp1").unwrap().failure.as_ref().unwrap();
    assert_eq!(f.step, At::Step(StepId::InitJoinToken));
    assert_eq!(f.command, "false init/join-token");
    // The re-run redoes only what did not finish.
    bed.cluster.clear_journal();
    bed.cluster.unfail("cp1", StepId::InitJoinToken);
    let r = bed.up().await;
    assert!(r.ok(), "{r:#?}");
    assert_eq!(
        outcome(&r, "cp1", StepId::InitKubeadmInit),
        Outcome::Unchanged
    );
    assert_eq!(
        outcome(&r, "cp2", StepId::JoinControlPlane),
        Outcome::Changed
    );
}

#[tokio::test]
async fn a_file_edited_on_the_node_reruns_its_step_there_only() {
    let bed = Bed::new();
    bed.done().await;
    bed.cluster.edit_file("cp2", SYSCTL);
    let r = bed.up().await;
    assert_eq!(outcome(&r, "cp2", StepId::PrepareSysctl), Outcome::Changed);
    let reason = r.node("cp2").unwrap().steps[2].reason.clone().unwrap();
    assert!(reason.contains(SYSCTL), "{reason}");
    assert_eq!(
        outcome(&r, "cp3", StepId::PrepareSysctl),
        Outcome::Unchanged
    );
    assert_eq!(r.changed(), 1);
}

#[tokio::test]
async fn from_reruns_that_step_and_every_later_one_and_leaves_earlier_ones() {
    let bed = Bed::new();
    bed.done().await;
    let opts = Options {
        from: Some(StepId::JoinControlPlane),
        ..bed.opts()
    };
    let r = bed.up_with(&opts).await;
    assert!(r.ok(), "{r:#?}");
    for n in ["cp1", "cp2", "w1"] {
        assert_eq!(
            outcome(&r, n, StepId::PrepareSysctl),
            Outcome::Skipped,
            "{n}"
        );
    }
    assert_eq!(
        outcome(&r, "cp1", StepId::InitKubeadmInit),
        Outcome::Skipped
    );
    assert_eq!(
        outcome(&r, "cp2", StepId::JoinControlPlane),
        Outcome::Changed
    );
    assert_eq!(outcome(&r, "w2", StepId::JoinWorker), Outcome::Changed);
    // Joins run, so this run's token is made first, though init/ is before --from.
    assert_eq!(outcome(&r, "cp1", StepId::InitJoinToken), Outcome::Checked);
    let journal = bed.cluster.journal();
    assert_eq!(ran(&journal, StepId::PrepareSysctl), Vec::<&str>::new());
    assert_eq!(ran(&journal, StepId::InitJoinToken), vec!["cp1"]);
}

#[tokio::test]
async fn only_runs_the_chosen_nodes_plus_the_token_step_they_need() {
    let bed = Bed::new();
    bed.done().await;
    let opts = Options {
        only: vec!["w2".into()],
        from: Some(StepId::JoinWorker),
        ..bed.opts()
    };
    let r = bed.up_with(&opts).await;
    assert!(r.ok(), "{r:#?}");
    let names: Vec<&str> = r.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["cp1", "w2"]);
    let journal = bed.cluster.journal();
    let steps: Vec<(&str, StepId)> = journal.iter().map(|r| (r.node.as_str(), r.step)).collect();
    assert_eq!(
        steps,
        [("cp1", StepId::InitJoinToken), ("w2", StepId::JoinWorker)]
    );
    // Nobody but those two was even asked for records.
    assert!(
        bed.cluster
            .calls()
            .iter()
            .all(|(n, _)| n == "cp1" || n == "w2")
    );
}

#[tokio::test]
async fn dry_run_reads_records_and_runs_nothing() {
    let bed = Bed::new();
    bed.cluster.edit_file("w1", SYSCTL);
    let opts = Options {
        dry_run: true,
        ..bed.opts()
    };
    let r = bed.up_with(&opts).await;
    assert!(r.dry_run);
    assert!(bed.cluster.journal().is_empty());
    assert!(
        bed.cluster
            .calls()
            .iter()
            .all(|(_, p)| *p == Purpose::Records)
    );
    let s = &r.node("cp1").unwrap().steps;
    assert_eq!(s[0].outcome, Outcome::WouldRun);
    assert_eq!(s[0].reason.as_deref(), Some("check"));
    assert_eq!(s[2].reason.as_deref(), Some("not done before"));
    // After a real run only what changed would run.
    bed.done().await;
    bed.cluster.edit_file("w1", SYSCTL);
    let r = bed.up_with(&opts).await;
    assert_eq!(outcome(&r, "w1", StepId::PrepareSysctl), Outcome::WouldRun);
    assert_eq!(outcome(&r, "w2", StepId::PrepareSysctl), Outcome::Unchanged);
    assert!(bed.cluster.journal().is_empty());
}

#[tokio::test]
async fn a_failing_worker_drops_out_and_the_others_finish() {
    let bed = Bed::new();
    bed.cluster.fail("w1", StepId::PrepareSysctl);
    let r = bed.up().await;
    assert!(r.stopped.is_none(), "{r:#?}");
    assert!(!r.ok());
    let f = r.node("w1").unwrap().failure.as_ref().unwrap();
    assert_eq!(f.step, At::Step(StepId::PrepareSysctl));
    assert_eq!(f.command, "false prepare/sysctl");
    assert!(
        f.hint.contains("--only w1 --from prepare/sysctl"),
        "{}",
        f.hint
    );
    assert_eq!(outcome(&r, "w1", StepId::JoinWorker), Outcome::NotRun);
    assert_eq!(outcome(&r, "w2", StepId::JoinWorker), Outcome::Changed);
    assert_eq!(r.checks.len(), 3, "{:?}", r.checks);
}

#[tokio::test]
async fn a_control_plane_failure_stops_every_later_phase() {
    let bed = Bed::new();
    bed.cluster.fail("cp2", StepId::FrontdoorBuiltin);
    let r = bed.up().await;
    match &r.stopped {
        Some(Stop::Failed { node, step }) => {
            assert_eq!(node, "cp2");
            assert_eq!(*step, At::Step(StepId::FrontdoorBuiltin));
        }
        other => panic!("{other:?}"),
    }
    // The other front doors of that phase finished; nothing later started anywhere.
    assert_eq!(
        outcome(&r, "cp3", StepId::FrontdoorBuiltin),
        Outcome::Changed
    );
    assert!(
        bed.cluster
            .journal()
            .iter()
            .all(|ran| ran.step.phase() <= Phase::Frontdoor)
    );
    assert_eq!(outcome(&r, "cp1", StepId::InitKubeadmInit), Outcome::NotRun);
    assert_eq!(outcome(&r, "w1", StepId::JoinWorker), Outcome::NotRun);
    // No VIP check after a phase that failed on a node the cluster depends on.
    assert!(r.checks.is_empty(), "{:?}", r.checks);
}

#[tokio::test]
async fn an_unreachable_control_plane_node_stops_before_anything_runs() {
    let bed = Bed::new();
    let conns: Connections = bed
        .plan
        .nodes
        .iter()
        .map(|n| {
            let c = if n.name == "cp3" {
                Err(TransportError::Timeout(Duration::from_secs(10)))
            } else {
                Ok(bed.cluster.node(&n.name))
            };
            (n.name.clone(), c)
        })
        .collect();
    let r = execute(&bed.plan, conns, &bed.opts(), &()).await;
    match &r.stopped {
        Some(Stop::Failed { node, step }) => {
            assert_eq!((node.as_str(), *step), ("cp3", At::Connect))
        }
        other => panic!("{other:?}"),
    }
    assert!(bed.cluster.calls().is_empty());
    let f = r.node("cp3").unwrap().failure.as_ref().unwrap();
    assert_eq!(f.command, "ssh to 198.18.0.13");
}

#[tokio::test]
async fn missing_kubeadm_stops_at_the_boundary_with_everything_before_done() {
    let bed = Bed::new();
    bed.cluster.without_kubernetes_tools();
    let r = bed.up().await;
    match &r.stopped {
        Some(Stop::KubernetesBinaries { nodes, phase }) => {
            assert_eq!(nodes, &["cp1"]);
            assert_eq!(*phase, Phase::Init);
        }
        other => panic!("{other:?}"),
    }
    assert!(r.failures().next().is_none());
    assert_eq!(
        outcome(&r, "cp3", StepId::FrontdoorBuiltin),
        Outcome::Changed
    );
    assert_eq!(outcome(&r, "cp1", StepId::InitKubeadmInit), Outcome::NotRun);
}

#[tokio::test]
async fn etcd_members_start_together_whatever_the_concurrency() {
    let bed = Bed::new();
    bed.cluster.step_time(Duration::from_millis(40));
    let opts = Options {
        concurrency: 1,
        ..bed.opts()
    };
    let r = bed.up_with(&opts).await;
    assert!(r.ok(), "{r:#?}");
    let journal = bed.cluster.journal();
    let of = |id| -> Vec<&Ran> { journal.iter().filter(|r| r.step == id).collect() };
    let etcd = of(StepId::EtcdMember);
    let last_start = etcd.iter().map(|r| r.start).max().unwrap();
    let first_end = etcd.iter().map(|r| r.end).min().unwrap();
    assert!(last_start < first_end, "etcd members ran one after another");
    // Elsewhere the concurrency limit holds: one node at a time.
    let sysctl = of(StepId::PrepareSysctl);
    for w in sysctl.windows(2) {
        assert!(w[0].end <= w[1].start, "{w:?}");
    }
}

#[tokio::test]
async fn redone_etcd_members_and_front_doors_restart_one_at_a_time_in_order() {
    let mut bed = Bed::new();
    bed.done().await;
    bed.cluster.step_time(Duration::from_millis(30));
    for n in bed.plan.nodes.iter_mut().filter(|n| n.roles.control_plane) {
        for a in n.artifacts.iter_mut().filter(|a| a.path == FRONTDOOR) {
            a.contents = b"vrid: 52\n".as_slice().into();
        }
        for s in n.steps.iter_mut().filter(|s| s.id == StepId::EtcdMember) {
            s.run = Some("echo a changed unit".into());
        }
    }
    let r = bed.up().await;
    assert!(r.ok(), "{r:#?}");
    let journal = bed.cluster.journal();
    for id in [StepId::EtcdMember, StepId::FrontdoorBuiltin] {
        let runs: Vec<&Ran> = journal.iter().filter(|r| r.step == id).collect();
        let order: Vec<&str> = runs.iter().map(|r| r.node.as_str()).collect();
        assert_eq!(order, ["cp1", "cp2", "cp3"], "{id}");
        for w in runs.windows(2) {
            assert!(w[0].end <= w[1].start, "{id}: {w:?}");
        }
        assert_eq!(outcome(&r, "cp2", id), Outcome::Changed);
    }
}

#[tokio::test]
async fn control_plane_joins_go_one_at_a_time_and_stop_at_the_first_failure() {
    let bed = Bed::new();
    bed.cluster.step_time(Duration::from_millis(20));
    let r = bed.up().await;
    assert!(r.ok(), "{r:#?}");
    let journal = bed.cluster.journal();
    let joins: Vec<&Ran> = journal
        .iter()
        .filter(|r| r.step == StepId::JoinControlPlane)
        .collect();
    let order: Vec<&str> = joins.iter().map(|r| r.node.as_str()).collect();
    assert_eq!(order, ["cp2", "cp3"]);
    assert!(joins[0].end <= joins[1].start, "{joins:?}");

    // A fresh cluster where cp2's join fails: cp3 does not try.
    let bed = Bed::new();
    bed.cluster.fail("cp2", StepId::JoinControlPlane);
    let r = bed.up().await;
    assert_eq!(
        outcome(&r, "cp2", StepId::JoinControlPlane),
        Outcome::Failed
    );
    assert_eq!(
        outcome(&r, "cp3", StepId::JoinControlPlane),
        Outcome::NotRun
    );
}

#[tokio::test]
async fn a_preflight_failure_sent_with_the_records_read_stops_before_anything_changes() {
    let bed = Bed::new();
    bed.cluster.fail("cp2", StepId::PreflightHost);
    let r = bed.up().await;
    let f = r.node("cp2").unwrap().failure.as_ref().unwrap();
    assert_eq!(f.step, At::Step(StepId::PreflightHost));
    assert_eq!(f.command, "false preflight/host");
    assert!(matches!(r.stopped, Some(Stop::Failed { .. })), "{r:#?}");
    assert!(
        bed.cluster
            .journal()
            .iter()
            .all(|ran| ran.step.phase() == Phase::Preflight)
    );
    assert_eq!(outcome(&r, "cp1", StepId::PreflightHost), Outcome::Checked);
}
