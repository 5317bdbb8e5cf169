//! `twiml-reference`: the fastest answer this machine can give a carrier webhook.
//!
//! A bare hyper HTTP/1 server that drains the request body and answers a fixed TwiML document,
//! with no routing, no database and no signature check. The inbound-path benchmark drives the
//! same load at it and at the gateway, and reports the gateway's throughput as a ratio of this
//! one's (see `docs/PERFORMANCE.md`).
//!
//! Usage: `twiml-reference [LISTEN_ADDR]` (default `127.0.0.1:8090`).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Connect><Stream url=\"wss://agent.example.com/stream\"><Parameter name=\"number_id\" value=\"00000000-0000-0000-0000-000000000000\"/></Stream></Connect></Response>";

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the whole body, as the gateway must, so both servers do the same network work.
    let _ = request.into_body().collect().await;
    let response = Response::builder()
        .header("content-type", "text/xml")
        .body(Full::new(Bytes::from_static(TWIML.as_bytes())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())));
    Ok(response)
}

fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".to_owned())
        .parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        #[allow(clippy::print_stderr)]
        {
            eprintln!("twiml-reference listening on {}", listener.local_addr()?);
        }
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(answer))
                    .await;
            });
        }
    })
}
