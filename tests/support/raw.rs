//! Raw TCP clients, for what an HTTP client library will not do: connect from a chosen
//! loopback address, send a request head and then nothing, or a body a byte at a time.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::TestApp;

/// A connection to `app` from `from` (any 127.x.y.z address works on loopback).
pub async fn connect_from(app: &TestApp, from: IpAddr) -> TcpStream {
    let port: u16 = app
        .address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the app's port");
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(from, 0))
        .expect("bind a loopback source address");
    socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .expect("connect")
}

/// A WebSocket upgrade from `from` without a token; the connection and the status code
/// of the answer (101 when upgraded). Nothing is sent after the head.
pub async fn silent_upgrade(app: &TestApp, from: IpAddr) -> (TcpStream, u16) {
    let mut conn = connect_from(app, from).await;
    conn.write_all(
        b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .expect("send the upgrade");
    let head = read_head(&mut conn).await;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {head}"));
    (conn, status)
}

/// Reads up to the end of a response head.
async fn read_head(conn: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(15), conn.read(&mut byte))
            .await
            .expect("an answer before the deadline")
            .expect("read");
        assert!(n == 1, "closed before the end of the head: {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Everything the server sends until it closes the connection (a reset after the
/// answer counts as closed), failing the test if that takes longer than `deadline`.
pub async fn read_until_closed(
    conn: &mut tokio::net::tcp::OwnedReadHalf,
    deadline: Duration,
) -> String {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    if tokio::time::timeout(deadline, read).await.is_err() {
        panic!(
            "the connection was still open after {deadline:?}; received: {}",
            String::from_utf8_lossy(&got)
        );
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// One byte of body every `every`, until the server closes the connection.
pub fn dribble(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    every: Duration,
) -> actix_web::rt::task::JoinHandle<()> {
    actix_web::rt::spawn(async move {
        while wr.write_all(b" ").await.is_ok() {
            tokio::time::sleep(every).await;
        }
    })
}
