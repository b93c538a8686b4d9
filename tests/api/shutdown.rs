//! Graceful shutdown: on SIGTERM the real process stops accepting connections, finishes the
//! requests it is serving (their writes are committed), and exits 0 without being held up by
//! its background tasks.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, SCIM, USER};

/// Reads one HTTP/1.1 response with a `content-length` off `stream`: (status, body).
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("a status line: {head}"));
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return (
                    status,
                    String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).to_string(),
                );
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut chunk))
            .await
            .expect("the response comes within 30 s")
            .expect("read");
        assert!(
            n > 0,
            "the connection closed before a full response: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn sigterm_drains_the_in_flight_request_refuses_new_connections_and_exits_0() {
    let app = TestApp::spawn().await;
    let mut server = app.second_process_with(&[("SEATBRIDGE_SCIM_RATE", "0")]).await;
    let mut stream = TcpStream::connect(("127.0.0.1", server.port())).await.expect("connect");

    // A first request on the connection proves a worker serves it (a connection still in the
    // accept queue at shutdown would be dropped, and rightly so).
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: seatbridge\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(read_response(&mut stream).await.0, 200);

    // The in-flight request: headers and half its body now, the rest after SIGTERM.
    let body = json!({"schemas": [USER], "userName": "drained@example.com", "active": true}).to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let head = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: seatbridge\r\nAuthorization: Bearer {}\r\n\
         Content-Type: {SCIM}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
        app.token,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;

    server.terminate();

    // New connections are refused once the listener is closed.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(("127.0.0.1", server.port())).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            // A handshake that raced the listener's close is reset; the next one is refused.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("unexpected connect error: {e}"),
            Ok(_) => {
                assert!(
                    Instant::now() < deadline,
                    "still accepting connections 10 s after SIGTERM"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert!(
        server.wait_exit(Duration::ZERO).await.is_none(),
        "the process must wait for the in-flight request"
    );

    // The in-flight request completes…
    stream.write_all(rest.as_bytes()).await.expect("write the rest");
    let (status, text) = read_response(&mut stream).await;
    assert_eq!(status, 201, "{text}");
    let created: Value = serde_json::from_str(&text).expect("json");

    // …the process exits cleanly, within the shutdown timeout…
    let exit = server
        .wait_exit(Duration::from_secs(35))
        .await
        .expect("the process exits after draining");
    assert!(exit.success(), "exit status {exit}");

    // …and the drained write is committed.
    let (status, user) = app
        .get(&format!("/Users/{}", created["id"].as_str().expect("id")))
        .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["userName"], "drained@example.com");
}

#[tokio::test]
async fn sigterm_on_an_idle_server_exits_0_promptly() {
    let app = TestApp::spawn().await;
    // A short sweep interval keeps the background tasks busy; they must not hold the exit up.
    let mut server = app.second_process_with(&[("SEATBRIDGE_SWEEP_SECONDS", "1")]).await;
    let ready = app
        .client
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    server.terminate();
    let exit = server
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("an idle server exits well within the 30 s shutdown timeout");
    assert!(exit.success(), "exit status {exit}");
}
