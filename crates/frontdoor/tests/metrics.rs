//! The `/metrics` endpoint on a loopback socket.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::*;
use frontdoor::metrics::serve_metrics_on;
use frontdoor::pool::Balance;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

async fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = bounded(TcpStream::connect(addr)).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    bounded(s.read_to_string(&mut out)).await.unwrap();
    out
}

fn value(text: &str, series: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("{series} missing in:\n{text}"));
    line[series.len() + 1..].trim().parse().unwrap()
}

#[tokio::test]
async fn metrics_endpoint_counters_move() {
    let stop = CancellationToken::new();
    let live = id_server(0, stop.clone()).await;
    let dead = closed_port().await;
    let p = start_proxy(vec![live, dead], Balance::RoundRobin, test_config());

    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let maddr = l.local_addr().unwrap();
    let pool = p.pool.clone();
    let render: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(move || pool.metrics().render());
    let server = tokio::spawn(serve_metrics_on(l, render, stop.clone()));

    let before = get(maddr, "/metrics").await;
    assert!(before.starts_with("HTTP/1.1 200"), "{before}");
    assert!(before.contains("application/openmetrics-text"), "{before}");
    assert_eq!(value(&before, "kubeha_frontdoor_connections_total"), 0);
    assert_eq!(value(&before, "kubeha_frontdoor_backends_healthy"), 2);

    for _ in 0..4 {
        let (mut s, _) = connect_id(p.addr).await;
        s.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        bounded(s.read_exact(&mut buf)).await.unwrap();
    }
    let pool = p.pool.clone();
    wait_until(|| pool.metrics().active.get() == 0).await;

    let after = get(maddr, "/metrics").await;
    assert_eq!(value(&after, "kubeha_frontdoor_connections_total"), 4);
    assert_eq!(value(&after, "kubeha_frontdoor_connections_active"), 0);
    assert_eq!(value(&after, "kubeha_frontdoor_bytes_in_total"), 16);
    assert_eq!(value(&after, "kubeha_frontdoor_bytes_out_total"), 4 + 16);
    assert_eq!(value(&after, "kubeha_frontdoor_backends_healthy"), 1);
    let dead_l = format!("{{backend=\"{dead}\"}}");
    let live_l = format!("{{backend=\"{live}\"}}");
    assert_eq!(
        value(&after, &format!("kubeha_frontdoor_backend_up{dead_l}")),
        0
    );
    assert_eq!(
        value(&after, &format!("kubeha_frontdoor_backend_up{live_l}")),
        1
    );
    assert_eq!(
        value(
            &after,
            &format!("kubeha_frontdoor_backend_connect_errors_total{dead_l}")
        ),
        1
    );
    assert_eq!(
        value(
            &after,
            &format!("kubeha_frontdoor_backend_ejections_total{dead_l}")
        ),
        1
    );
    assert_eq!(
        value(
            &after,
            &format!("kubeha_frontdoor_backend_connections_total{live_l}")
        ),
        4
    );
    assert!(after.trim_end().ends_with("# EOF"));

    let missing = get(maddr, "/other").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");

    stop.cancel();
    bounded(server).await.unwrap().unwrap();
    p.shutdown.cancel();
}
