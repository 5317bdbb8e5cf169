//! The HTTP/1.1 server loop: the service ([`crate::App`]) on a TCP listener, with the bounds that `axum::serve`
//! does not set. `axum::serve` builds hyper's connection without a timer, so hyper's
//! header-read timeout never runs: a client that opens a connection and trickles its request
//! headers (or sends nothing) holds the connection, a task and a file descriptor forever, and
//! a few thousand of them exhaust the process. Here every connection gets a deadline to deliver
//! a request's headers, the first one and each next one on a kept-alive connection, and every
//! request a deadline to deliver its body (counted from the end of its headers): a client that
//! trickles a body is answered `408 request_timeout` and its connection closed. The peer's
//! address is given to the service as [`axum::extract::ConnectInfo`].
//!
//! Connections are accepted on the caller's runtime and served on threads of their own, one
//! per core by default, each with its own event loop ([`ServerOptions::threads`] says why).

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
/// [`serve_with`].
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

/// Serves `app` on `listener` with the given deadlines and the default connection threads; see
/// [`serve_with`].
///
/// # Errors
/// None today; the `Result` leaves room for listener failures that should stop the server.
pub async fn serve_with_deadlines(
    listener: TcpListener,
    app: App,
    deadlines: ClientDeadlines,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(
        listener,
        app,
        ServerOptions {
            deadlines,
            ..ServerOptions::default()
        },
        shutdown,
    )
    .await
}

/// One thread per core the process may use (`std::thread::available_parallelism`, which
/// follows a container's CPU quota).
#[must_use]
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// How the server runs its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerOptions {
    /// The time bounds on clients.
    pub deadlines: ClientDeadlines,
    /// How many threads serve the accepted connections, each with an event loop of its own
    /// (a current-thread Tokio runtime); connections are handed to them in turn. `0` serves
    /// them as tasks of the runtime that calls [`serve_with`].
    ///
    /// Why threads of their own: a multi-threaded Tokio runtime has one event loop (one
    /// `epoll`), which one of its workers waits on at a time. When the kernel wakes that worker
    /// on a core another process holds (a PostgreSQL backend writing a batch, a neighbour on
    /// the host), every connection waits for it, milliseconds at a time, while the other core
    /// idles: the kernel does not move a thread that ran within the last half millisecond.
    /// With an event loop per thread, only that thread's connections wait. On the two-core
    /// benchmark host this about halved the machine's idle time under load in most runs and
    /// raised the gateway's throughput by about 5 % (2.5 to 8 % in interleaved pairs of the
    /// final build; `docs/PERFORMANCE.md`, session 23).
    pub threads: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            deadlines: ClientDeadlines::default(),
            threads: default_threads(),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, lets every
/// open connection finish its request in flight and returns when all are closed (and the
/// connection threads have ended).
///
/// The connections are accepted on the calling runtime and served on `options.threads`
/// threads of their own (see [`ServerOptions::threads`]). A thread that cannot start, or has
/// stopped, leaves its connections to the calling runtime.
///
/// # Errors
/// None today; the `Result` leaves room for listener failures that should stop the server.
pub async fn serve_with(
    listener: TcpListener,
    app: App,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let deadlines = options.deadlines;
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
    let mut threads = ConnectionThreads::start(options.threads, &app, deadlines, &stop_rx);
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
        let accepted = Accepted {
            stream,
            peer,
            closed: closed_rx.clone(),
        };
        if let Some(accepted) = threads.hand_off(accepted) {
            tokio::spawn(connection(
                accepted,
                app.clone(),
                deadlines,
                stop_rx.clone(),
            ));
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(closed_rx);
    closed_tx.closed().await;
    threads.stop().await;
    Ok(())
}

/// An accepted connection, with the receiver its task holds until it ends.
struct Accepted {
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    closed: tokio::sync::watch::Receiver<()>,
}

/// A connection on its way to a connection thread: its socket leaves the accepting runtime's
/// event loop for the thread's.
struct HandedOff {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    closed: tokio::sync::watch::Receiver<()>,
}

/// The threads that serve connections (see [`ServerOptions::threads`]).
struct ConnectionThreads {
    threads: Vec<ConnectionThread>,
    next: usize,
}

struct ConnectionThread {
    connections: tokio::sync::mpsc::UnboundedSender<HandedOff>,
    ended: tokio::sync::oneshot::Receiver<()>,
}

impl ConnectionThreads {
    /// Starts `count` threads serving `app`; fewer when some cannot start (logged).
    fn start(
        count: usize,
        app: &App,
        deadlines: ClientDeadlines,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        let threads = (0..count)
            .filter_map(|index| {
                ConnectionThread::start(index, app.clone(), deadlines, stop.clone())
                    .inspect_err(|error| {
                        tracing::warn!(%error, "a connection thread could not start; its connections are served by the main runtime");
                    })
                    .ok()
            })
            .collect();
        Self { threads, next: 0 }
    }

    /// Hands `accepted` to the next thread in turn; gives it back when there is none (or it
    /// has stopped), for the caller to serve.
    fn hand_off(&mut self, accepted: Accepted) -> Option<Accepted> {
        if self.threads.is_empty() {
            return Some(accepted);
        }
        let thread = &self.threads[self.next % self.threads.len()];
        self.next = self.next.wrapping_add(1);
        let Accepted {
            stream,
            peer,
            closed,
        } = accepted;
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%error, "an accepted connection could not be handed off; closed");
                return None;
            }
        };
        let handed = HandedOff {
            stream,
            peer,
            closed,
        };
        let handed = match thread.connections.send(handed) {
            Ok(()) => return None,
            // The thread has stopped: the connection is served here.
            Err(tokio::sync::mpsc::error::SendError(handed)) => handed,
        };
        match tokio::net::TcpStream::from_std(handed.stream) {
            Ok(stream) => Some(Accepted {
                stream,
                peer: handed.peer,
                closed: handed.closed,
            }),
            Err(error) => {
                tracing::debug!(%error, "an accepted connection could not be served; closed");
                None
            }
        }
    }

    /// Lets every thread end once its connections have (they have, when the server stops).
    async fn stop(self) {
        let ended: Vec<_> = self
            .threads
            .into_iter()
            .map(|thread| {
                drop(thread.connections);
                thread.ended
            })
            .collect();
        for thread in ended {
            let _ = thread.await;
        }
    }
}

impl ConnectionThread {
    fn start(
        index: usize,
        app: App,
        deadlines: ClientDeadlines,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> std::io::Result<Self> {
        let (connections, mut handed) = tokio::sync::mpsc::unbounded_channel::<HandedOff>();
        let (ended_tx, ended) = tokio::sync::oneshot::channel();
        // The runtime is built on the thread: one dropped on the caller's task, should the
        // thread not start, would panic inside the caller's runtime.
        std::thread::Builder::new()
            .name(format!("http-{index}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        // Its connections go back to the main runtime (`hand_off`).
                        tracing::warn!(%error, "no runtime for a connection thread");
                        return;
                    }
                };
                runtime.block_on(async move {
                    let mut running = tokio::task::JoinSet::new();
                    loop {
                        tokio::select! {
                            next = handed.recv() => {
                                let Some(next) = next else { break };
                                match tokio::net::TcpStream::from_std(next.stream) {
                                    Ok(stream) => {
                                        let accepted = Accepted { stream, peer: next.peer, closed: next.closed };
                                        running.spawn(connection(accepted, app.clone(), deadlines, stop.clone()));
                                    }
                                    Err(error) => {
                                        tracing::debug!(%error, "a handed-off connection could not be served; closed");
                                    }
                                }
                            }
                            Some(_) = running.join_next(), if !running.is_empty() => {}
                        }
                    }
                    // No more connections come; those still open finish first.
                    while running.join_next().await.is_some() {}
                });
                // Whatever a request left on this runtime (a pooled client connection's
                // task) is dropped with it, without waiting on blocking work for long.
                runtime.shutdown_timeout(Duration::from_secs(1));
                let _ = ended_tx.send(());
            })?;
        Ok(Self { connections, ended })
    }
}

/// Serves one connection until it closes, or until the server stops (then it finishes the
/// request in flight and closes).
async fn connection(
    accepted: Accepted,
    app: App,
    deadlines: ClientDeadlines,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let Accepted {
        stream,
        peer,
        closed,
    } = accepted;
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
}
