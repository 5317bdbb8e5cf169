//! The HTTP/1.1 server loop: the service ([`crate::App`]) on a TCP listener, with the bounds that `axum::serve`
//! does not set. `axum::serve` builds hyper's connection without a timer, so hyper's
//! header-read timeout never runs: a client that opens a connection and trickles its request
//! headers (or sends nothing) holds the connection, a task and a file descriptor forever, and
//! a few thousand of them exhaust the process. Here every connection gets a deadline to deliver
//! a request's headers, the first one and each next one on a kept-alive connection, and every
//! request a deadline to deliver its body (counted from the end of its headers): a client that
//! trickles a body is answered `408 request_timeout` and its connection closed. The peer's
//! address is given to the service as [`axum::extract::ConnectInfo`].

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::App;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// How long a client may take to send a request's headers, from the moment the server waits
/// for them (connection opened, or previous response sent on a kept-alive connection).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a request's body once its headers are in.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The time bounds the server puts on its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientDeadlines {
    /// See [`HEADER_READ_TIMEOUT`].
    pub header_read: Duration,
    /// See [`BODY_READ_TIMEOUT`].
    pub body_read: Duration,
}

impl Default for ClientDeadlines {
    fn default() -> Self {
        Self {
            header_read: HEADER_READ_TIMEOUT,
            body_read: BODY_READ_TIMEOUT,
        }
    }
}

/// The error a request body gives when its client missed the body deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body was not received in time")]
pub struct BodyTimeout;

/// A request body that fails with [`BodyTimeout`] once its deadline passes.
///
/// The timer is armed only when the body is not all there yet (the first time reading it
/// would wait): a webhook's body almost always arrives with its headers, and then no timer is
/// registered (or deregistered) at all.
struct DeadlineBody {
    inner: Incoming,
    /// When the body must be in: the end of the headers plus the body deadline.
    due: tokio::time::Instant,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    expired: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|result| result.map_err(Into::into)));
        }
        let due = this.due;
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if deadline.as_mut().poll(cx).is_ready() {
            this.expired
                .store(true, std::sync::atomic::Ordering::Relaxed);
            return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        hyper::body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> SizeHint {
        hyper::body::Body::size_hint(&self.inner)
    }
}

/// Serves `app` on `listener` with a header deadline and the default body deadline; see
/// [`serve_with_deadlines`].
///
/// # Errors
/// None today; the `Result` leaves room for listener failures that should stop the server.
pub async fn serve(
    listener: TcpListener,
    app: App,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_deadlines(
        listener,
        app,
        ClientDeadlines {
            header_read: header_read_timeout,
            ..ClientDeadlines::default()
        },
        shutdown,
    )
    .await
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, lets every
/// open connection finish its request in flight and returns when all are closed.
///
/// # Errors
/// None today; the `Result` leaves room for listener failures that should stop the server.
pub async fn serve_with_deadlines(
    listener: TcpListener,
    app: App,
    deadlines: ClientDeadlines,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Polled on its own task from now on, so a signal handler inside it is installed at once,
    // not at the first moment the accept loop happens to poll it.
    let (shutdown_tx, mut shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        shutdown.await;
        let _ = shutdown_tx.send(());
    });
    // Each connection task holds a `closed` receiver; when the last one is dropped every
    // connection is done.
    let (closed_tx, closed_rx) = tokio::sync::watch::channel(());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: transient, back off and retry.
                    tracing::warn!(error = %error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown_rx => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let mut stop = stop_rx.clone();
        let closed = closed_rx.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
                let (mut parts, body) = request.into_parts();
                parts.extensions.insert(ConnectInfo::<SocketAddr>(peer));
                let app = app.clone();
                async move {
                    if hyper::body::Body::is_end_stream(&body) {
                        return app
                            .oneshot(http::Request::from_parts(parts, Body::new(body)))
                            .await;
                    }
                    let expired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                    let body = DeadlineBody {
                        inner: body,
                        due: tokio::time::Instant::now() + deadlines.body_read,
                        deadline: None,
                        expired: std::sync::Arc::clone(&expired),
                    };
                    let response = app
                        .oneshot(http::Request::from_parts(parts, Body::new(body)))
                        .await?;
                    // Whatever the handler made of the failed read (a 400 or a 413), the
                    // client is told it was too slow, and the connection is not kept.
                    if expired.load(std::sync::atomic::Ordering::Relaxed) {
                        let mut response = crate::error::ApiError::new(
                            http::StatusCode::REQUEST_TIMEOUT,
                            "request_timeout",
                            "the request body was not received in time",
                        )
                        .into_response();
                        response.headers_mut().insert(
                            http::header::CONNECTION,
                            http::HeaderValue::from_static("close"),
                        );
                        return Ok(response);
                    }
                    Ok(response)
                }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(deadlines.header_read);
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut connection = std::pin::pin!(connection);
            let stopping = async move {
                let _ = stop.wait_for(|stop| *stop).await;
            };
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::trace!(error = %error, "connection ended with an error");
                    }
                }
                () = stopping => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(closed);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(closed_rx);
    closed_tx.closed().await;
    Ok(())
}
