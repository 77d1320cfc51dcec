//! The metrics port: `GET /metrics` answers the registry as Prometheus text; every other path
//! is 404. Plain HTTP/1.1 on its own port, so that scrapers never touch the gRPC port and its
//! authentication. Bounded: connections at once, and the time to send a request's headers.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Semaphore};

use super::Metrics;

/// Scrapes served at once; more connections wait to be accepted.
pub const MAX_CONNECTIONS: usize = 16;
/// A connection that has not sent its request headers by then is closed.
pub const HEADER_READ_TIMEOUT_MS: u64 = 5_000;
/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `addr` for the metrics of `metrics`; the returned future serves until dropped.
pub async fn bind(
    addr: SocketAddr,
    metrics: Metrics,
) -> std::io::Result<(SocketAddr, impl Future<Output = ()> + Send + 'static)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((local, serve(listener, metrics)))
}

/// The metrics of a service and their port, when `addr` is set (none otherwise): the port is
/// served until the returned guard is dropped.
pub async fn start(
    addr: Option<SocketAddr>,
    service: &'static str,
) -> std::io::Result<(Option<Metrics>, Option<Serving>)> {
    let Some(addr) = addr else {
        return Ok((None, None));
    };
    let metrics = Metrics::new();
    let (bound, serve) = bind(addr, metrics.clone()).await?;
    tracing::info!(service, addr = %bound, "metrics at /metrics");
    Ok((Some(metrics), Some(Serving(tokio::spawn(serve)))))
}

/// The metrics port being served; closed when dropped.
#[derive(Debug)]
pub struct Serving(tokio::task::JoinHandle<()>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn serve(listener: TcpListener, metrics: Metrics) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "metrics port: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let metrics = metrics.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&metrics, &request)) }
            });
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_millis(HEADER_READ_TIMEOUT_MS))
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "metrics port: connection ended");
            }
            drop(permit);
        });
    }
}

fn answer<B>(metrics: &Metrics, request: &Request<B>) -> Response<Full<Bytes>> {
    let (status, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => (StatusCode::OK, metrics.render()),
        (_, "/metrics") => (StatusCode::METHOD_NOT_ALLOWED, String::new()),
        _ => (StatusCode::NOT_FOUND, String::new()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if status == StatusCode::OK {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(CONTENT_TYPE),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).await.unwrap();
        text
    }

    #[tokio::test]
    async fn metrics_are_served_at_their_path_only() {
        let metrics = Metrics::new();
        metrics
            .counter("gongji_refusals_total", &[("reason", "NOT_FOUND")])
            .increment(1);
        let (addr, serve) = bind("127.0.0.1:0".parse().unwrap(), metrics).await.unwrap();
        let server = tokio::spawn(serve);
        let ok = get(addr, "/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains(CONTENT_TYPE), "{ok}");
        assert!(
            ok.contains("gongji_refusals_total{reason=\"NOT_FOUND\"} 1"),
            "{ok}"
        );
        assert!(get(addr, "/").await.starts_with("HTTP/1.1 404"));
        server.abort();
    }
}
