//! The HTTP front: accept loop, one hyper connection per socket, and the request pipeline shared
//! by both carriers (log, fault, dispatch). Hyper is used directly, not a router, because a
//! "dropped connection" fault must close the socket without an answer, which needs a handle on
//! the connection itself.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::model::{Carrier, RequestRecord};
use crate::world::World;
use crate::{control, telnyx, twilio};

/// Request bodies above this are refused; carrier requests are small.
const MAX_BODY: usize = 1024 * 1024;

/// State shared by every connection.
#[derive(Debug)]
pub(crate) struct Shared {
    world: Mutex<World>,
    pub(crate) http: reqwest::Client,
}

impl Shared {
    pub(crate) fn new(world: World, http: reqwest::Client) -> Shared {
        Shared {
            world: Mutex::new(world),
            http,
        }
    }

    /// The world, recovering from a poisoned lock: a panicking test thread must not take the
    /// emulator down with it, and every mutation leaves the world consistent.
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A parsed request, body already read.
#[derive(Debug)]
pub(crate) struct Req {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Req {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(crate) fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }
}

/// An answer, before it becomes a hyper response.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply {
            status,
            headers: vec![(
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body: Bytes::from(value.to_string()),
        }
    }

    pub(crate) fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub(crate) fn with_header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(self.body));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        for (name, value) in self.headers {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(&value),
            ) {
                response.headers_mut().append(n, v);
            }
        }
        response
    }
}

/// What a carrier handler produced: the reply and the account it authenticated, if any.
#[derive(Debug)]
pub(crate) struct Handled {
    pub(crate) reply: Reply,
    pub(crate) account: Option<String>,
}

impl From<Reply> for Handled {
    fn from(reply: Reply) -> Handled {
        Handled {
            reply,
            account: None,
        }
    }
}

enum Outcome {
    Reply(Reply),
    Drop,
}

/// Accepts connections until `shutdown` flips to true.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let kill = Arc::new(Notify::new());
            let kill_in_service = Arc::clone(&kill);
            let service = service_fn(move |request: Request<Incoming>| {
                let shared = Arc::clone(&shared);
                let kill = Arc::clone(&kill_in_service);
                async move {
                    match handle(&shared, request).await {
                        Outcome::Reply(reply) => Ok::<_, Infallible>(reply.into_response()),
                        Outcome::Drop => {
                            kill.notify_one();
                            // Never answer: the connection task drops the socket.
                            std::future::pending().await
                        }
                    }
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                result = connection => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                }
                _ = kill.notified() => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

async fn handle(shared: &Arc<Shared>, request: Request<Incoming>) -> Outcome {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Outcome::Reply(Reply::empty(413)),
    };
    let req = Req {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers: parts.headers,
        body,
    };

    if req.path.starts_with("/_emulator/") {
        return Outcome::Reply(control::handle(shared, &req).await);
    }
    // `/pricing/v1/...` stands for Twilio's Pricing API host (`pricing.twilio.com/v1/...`).
    let carrier = if req.path.starts_with("/2010-04-01/") || req.path.starts_with("/pricing/") {
        Some(Carrier::Twilio)
    } else if req.path.starts_with("/v2/") || req.path == "/v2" {
        Some(Carrier::Telnyx)
    } else {
        None
    };

    let seq = shared.world().log_request(RequestRecord {
        seq: 0,
        carrier,
        method: req.method.to_string(),
        path: req.path.clone(),
        query: (!req.query.is_empty()).then(|| req.query.clone()),
        content_type: req.content_type().map(str::to_string),
        body: String::from_utf8_lossy(&req.body).into_owned(),
        account: None,
        status: None,
    });

    let fault = shared.world().take_fault(req.method.as_str(), &req.path);
    if let Some(fault) = &fault {
        if fault.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
        }
        if fault.drop_connection {
            return Outcome::Drop;
        }
        if let Some(status) = fault.status {
            let reply = match carrier {
                Some(Carrier::Telnyx) => telnyx::fault_reply(status),
                _ => twilio::fault_reply(status, &req.path),
            };
            shared.world().finish_request(seq, None, Some(status));
            return Outcome::Reply(reply);
        }
    }

    let handled = match carrier {
        Some(Carrier::Twilio) => twilio::handle(shared, &req).await,
        Some(Carrier::Telnyx) => telnyx::handle(shared, &req).await,
        None => Handled::from(Reply::json(
            404,
            &serde_json::json!({"error": "no carrier is emulated at this path"}),
        )),
    };
    shared
        .world()
        .finish_request(seq, handled.account.clone(), Some(handled.reply.status));
    Outcome::Reply(handled.reply)
}

/// Parses `Authorization: Basic …` into user and password.
pub(crate) fn basic_auth(req: &Req) -> Option<(String, String)> {
    use base64::Engine as _;
    let value = req.header("authorization")?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// Parses `Authorization: Bearer …`.
pub(crate) fn bearer(req: &Req) -> Option<&str> {
    let value = req.header("authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}
