//! The HTTP server loop (`server::serve_with`): connections served on threads of their own keep
//! being answered while the runtime that accepted them is blocked, and stopping the server
//! finishes the request in flight, however connections are served.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use telephony_service::server::{ServerOptions, serve_with};

use super::support::Gateway;

/// A request for the health check, on a kept-alive connection.
const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n";

/// Reads one HTTP response (headers and a `Content-Length` body) from `stream`; its head.
fn read_response(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut received = Vec::new();
    let mut buf = [0_u8; 1024];
    loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                return Ok(head);
            }
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        received.extend_from_slice(&buf[..n]);
    }
}

async fn listener() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

// The test's runtime has one thread, and the test blocks it: the server's accept loop runs
// there, so only a connection served elsewhere can still be answered.
#[tokio::test(flavor = "current_thread")]
async fn a_connection_is_answered_while_the_runtime_that_accepted_it_is_blocked() {
    let gw = Gateway::start().await;
    let (listener, addr) = listener().await;
    tokio::spawn(serve_with(
        listener,
        gw.app.clone(),
        ServerOptions {
            threads: 1,
            ..ServerOptions::default()
        },
        std::future::pending(),
    ));
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (second_tx, second_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).expect("connect");
        // Guards the test against hanging; not a measure of speed.
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        stream.write_all(HEALTH).expect("first request");
        let _ = first_tx.send(read_response(&mut stream).map_err(|e| e.to_string()));
        if go_rx.recv().is_ok() {
            stream.write_all(HEALTH).expect("second request");
            let _ = second_tx.send(read_response(&mut stream).map_err(|e| e.to_string()));
        }
    });
    // The runtime runs while the connection is accepted and its first request answered.
    let first = first_rx.await.expect("first answer");
    assert!(first.expect("first answer").starts_with("HTTP/1.1 200"));

    // From here the runtime's only thread is blocked until the second answer arrives.
    go_tx.send(()).expect("go");
    let second = second_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the client reports");
    let head = second.expect("the second request is answered while the runtime is blocked");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

/// Starts a POST whose body is not all sent, stops the server, sends the rest: the request is
/// answered, the connection closed, and the server returns.
async fn stopping_finishes_the_request_in_flight(threads: usize) {
    let gw = Gateway::start().await;
    let (listener, addr) = listener().await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_with(
        listener,
        gw.app.clone(),
        ServerOptions {
            threads,
            ..ServerOptions::default()
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    let (half_sent_tx, half_sent_rx) = tokio::sync::oneshot::channel();
    let (rest_tx, rest_rx) = std::sync::mpsc::channel::<()>();
    let client = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        // A first request, answered: the connection is being served.
        stream.write_all(HEALTH).expect("first request");
        read_response(&mut stream).expect("first answer");
        stream
            .write_all(
                b"POST /webhooks/twilio/voice HTTP/1.1\r\nHost: gateway\r\n\
                  Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 10\r\n\r\nTo=%2B1",
            )
            .expect("head and half the body");
        let _ = half_sent_tx.send(());
        rest_rx.recv().expect("told to send the rest");
        stream.write_all(b"415").expect("the rest of the body");
        let head = read_response(&mut stream).expect("the request in flight is answered");
        // Then the server closes the connection.
        let mut buf = [0_u8; 64];
        let after = stream.read(&mut buf).expect("read after the answer");
        (head, after)
    });
    half_sent_rx.await.expect("sent");
    // The server has read the request's head by now (loopback); not a measure of speed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop_tx.send(()).expect("stop");
    // Stopping waits for the request in flight: the server is still running.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !server.is_finished(),
        "the server returned with a request in flight"
    );
    rest_tx.send(()).expect("rest");
    let (head, after) = client.await.expect("client");
    // A webhook without its CallSid: refused, but answered.
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert_eq!(after, 0, "the connection is closed after the answer");
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("the server returns once its connections are closed")
        .expect("server task")
        .expect("served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_server_finishes_the_request_in_flight_on_a_connection_thread() {
    stopping_finishes_the_request_in_flight(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_server_finishes_the_request_in_flight_on_the_main_runtime() {
    stopping_finishes_the_request_in_flight(0).await;
}
