//! A small etcd v3 client over etcd's JSON gateway (HTTPS, client-certificate auth): a fresh
//! TCP + TLS connection per request, bounded by a timeout, so a request never rides on a
//! connection to a holder that has gone away.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::LabError;

#[derive(Clone)]
pub struct EtcdClient {
    tls: TlsConnector,
}

impl std::fmt::Debug for EtcdClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EtcdClient")
    }
}

fn read(path: &Path) -> Result<Vec<u8>, LabError> {
    std::fs::read(path).map_err(|e| LabError::Spawn(path.display().to_string(), e))
}

impl EtcdClient {
    /// Trusts only `ca` and presents `cert` + `key` (PEM files).
    pub fn new(ca: &Path, cert: &Path, key: &Path) -> Result<EtcdClient, LabError> {
        let identity = frontdoor::health::ClientIdentity {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        };
        let config = frontdoor::health::tls_client_config(&read(ca)?, Some(&identity))
            .map_err(|e| LabError::Invalid(format!("TLS client configuration: {e}")))?;
        Ok(EtcdClient {
            tls: TlsConnector::from(config),
        })
    }

    /// POSTs `body` to `https://addr/path` on a new connection; the status and body.
    pub async fn post(
        &self,
        addr: SocketAddr,
        path: &str,
        body: String,
        timeout: Duration,
    ) -> Result<(u16, Bytes), String> {
        match tokio::time::timeout(timeout, self.post_unbounded(addr, path, body)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }

    async fn post_unbounded(
        &self,
        addr: SocketAddr,
        path: &str,
        body: String,
    ) -> Result<(u16, Bytes), String> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .tls
            .connect(ServerName::from(addr.ip()), tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        let req = Request::post(path)
            .header(hyper::header::HOST, addr.to_string())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::CONNECTION, "close")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("request: {e}"))?;
        let exchange = async move {
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| format!("HTTP: {e}"))?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, body))
        };
        // The connection task ends once the exchange has dropped its sender.
        let (r, _) = tokio::join!(exchange, conn);
        r
    }

    /// Puts `key` = `value`; Ok only when etcd acknowledged it (200 with a response header).
    pub async fn put(
        &self,
        addr: SocketAddr,
        key: &str,
        value: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        let body = format!(
            r#"{{"key":"{}","value":"{}"}}"#,
            B64.encode(key),
            B64.encode(value)
        );
        let (status, resp) = self.post(addr, "/v3/kv/put", body, timeout).await?;
        let v = json_answer(status, &resp)?;
        if v.get("header").is_none() {
            return Err("answer without a header".into());
        }
        Ok(())
    }

    /// Every key under `prefix` as this member has it (`serializable`: its own copy, not a
    /// read through the leader), fetched in pages.
    pub async fn keys(
        &self,
        addr: SocketAddr,
        prefix: &str,
        timeout: Duration,
    ) -> Result<HashSet<String>, String> {
        const PAGE: usize = 5000;
        let end = prefix_end(prefix);
        let mut from = prefix.as_bytes().to_vec();
        let mut out = HashSet::new();
        // Bounded: each page advances past its last key; 10^4 pages is 5·10^7 keys.
        for _ in 0..10_000 {
            let body = serde_json::json!({
                "key": B64.encode(&from),
                "range_end": B64.encode(&end),
                "keys_only": true,
                "serializable": true,
                "limit": PAGE,
            })
            .to_string();
            let (status, resp) = self.post(addr, "/v3/kv/range", body, timeout).await?;
            let v = json_answer(status, &resp)?;
            let kvs = v.get("kvs").and_then(|k| k.as_array());
            let mut last = None;
            for kv in kvs.into_iter().flatten() {
                let k = kv
                    .get("key")
                    .and_then(|k| k.as_str())
                    .and_then(|k| B64.decode(k).ok())
                    .ok_or("a key that is not base64")?;
                out.insert(String::from_utf8_lossy(&k).into_owned());
                last = Some(k);
            }
            let more = v.get("more").and_then(|m| m.as_bool()).unwrap_or(false);
            match last {
                Some(mut k) if more => {
                    k.push(0);
                    from = k;
                }
                _ => return Ok(out),
            }
        }
        Err("too many pages".into())
    }
}

/// The first key after every key that starts with `prefix` (etcd's range_end for a prefix).
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The JSON body of a 200 answer from etcd's gateway; anything else as an error that quotes
/// the start of the body.
fn json_answer(status: u16, resp: &[u8]) -> Result<serde_json::Value, String> {
    if status != 200 {
        return Err(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&resp[..resp.len().min(200)])
        ));
    }
    serde_json::from_slice(resp).map_err(|e| format!("answer: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end("drill/1/"), b"drill/10".to_vec());
        assert_eq!(prefix_end("a"), b"b".to_vec());
    }
}
