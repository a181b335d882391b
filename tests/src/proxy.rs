//! An HTTP proxy between a function and moto: every AWS API call the function makes is counted by
//! service and operation, from outside the function (the benchmarks), and an answer may be
//! rewritten on its way back, to make a stand-in behave as the real service does (IAM's eventual
//! consistency, `iam::lagging`), or left unanswered (a stalled service, `start_stalling`).

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

#[derive(Default)]
pub struct Counts(Mutex<BTreeMap<String, u64>>);

impl Counts {
    pub fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// `SecretsManager:GetSecretValue`, `IAM:ListAccessKeys`, `STS:GetCallerIdentity`, ...
fn operation(req: &hyper::http::request::Parts, body: &[u8]) -> String {
    if let Some(target) = req
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
    {
        let op = target.rsplit('.').next().unwrap_or(target);
        return format!("SecretsManager:{op}");
    }
    let service = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or("unknown")
        .to_uppercase();
    let body = String::from_utf8_lossy(body);
    let action = body
        .split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .unwrap_or("unknown");
    format!("{service}:{action}")
}

/// Rewrites the body of an answer to the given operation (`IAM:ListAccessKeys`, ...).
pub type Rewrite = Arc<dyn Fn(&str, Bytes) -> Bytes + Send + Sync>;

/// Starts the proxy on a loopback port; returns its URL and the counts.
pub async fn start(upstream: String) -> (String, Arc<Counts>) {
    start_with(upstream, None).await
}

/// Like `start`, with every answer passed through `rewrite`.
pub async fn start_with(upstream: String, rewrite: Option<Rewrite>) -> (String, Arc<Counts>) {
    serve(upstream, rewrite, Arc::default()).await
}

/// Like `start`; once the flag is set, every request is taken and never answered (a service that
/// stalls with the connection open).
pub async fn start_stalling(upstream: String) -> (String, Arc<AtomicBool>) {
    let stall = Arc::new(AtomicBool::new(false));
    let (url, _) = serve(upstream, None, stall.clone()).await;
    (url, stall)
}

async fn serve(
    upstream: String,
    rewrite: Option<Rewrite>,
    stall: Arc<AtomicBool>,
) -> (String, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let counts = Arc::new(Counts::default());
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let shared = counts.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (client, counts, upstream, rewrite, stall) = (
                client.clone(),
                shared.clone(),
                upstream.clone(),
                rewrite.clone(),
                stall.clone(),
            );
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (client, counts, upstream, rewrite, stall) = (
                        client.clone(),
                        counts.clone(),
                        upstream.clone(),
                        rewrite.clone(),
                        stall.clone(),
                    );
                    async move {
                        if stall.load(Ordering::SeqCst) {
                            std::future::pending::<()>().await;
                        }
                        let (mut parts, body) = req.into_parts();
                        let bytes = body.collect().await?.to_bytes();
                        let op = operation(&parts, &bytes);
                        *counts.0.lock().unwrap().entry(op.clone()).or_default() += 1;
                        let path = parts
                            .uri
                            .path_and_query()
                            .map(|p| p.as_str())
                            .unwrap_or("/");
                        parts.uri = format!("{upstream}{path}").parse().unwrap();
                        let answer = client
                            .request(Request::from_parts(parts, Full::new(bytes)))
                            .await;
                        let answer = answer.unwrap_or_else(|e| panic!("proxy to {upstream}: {e}"));
                        let (mut parts, body) = answer.into_parts();
                        let mut bytes = body.collect().await?.to_bytes();
                        if let Some(rewrite) = &rewrite {
                            bytes = rewrite(&op, bytes);
                            parts.headers.remove(hyper::header::CONTENT_LENGTH);
                        }
                        Ok::<_, hyper::Error>(Response::from_parts(parts, Full::new(bytes)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, counts)
}
