//! A WebSocket client for the tests: awc's framed connection and the next protocol
//! message on it.

use std::time::Duration;

use awc::ws;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

pub type Conn = actix_codec::Framed<awc::BoxedSocket, ws::Codec>;

/// How long a test waits for one message.
pub const MESSAGE_WAIT: Duration = Duration::from_secs(15);

/// The next protocol message (pings answered on the way), or the close frame as
/// `{"type":"close","code":N}`.
pub async fn next(conn: &mut Conn) -> Value {
    loop {
        let frame = tokio::time::timeout(MESSAGE_WAIT, conn.next())
            .await
            .expect("a message before the deadline")
            .expect("the connection is open")
            .expect("a valid frame");
        match frame {
            ws::Frame::Text(t) => return serde_json::from_slice(&t).expect("JSON"),
            ws::Frame::Ping(p) => conn.send(ws::Message::Pong(p)).await.expect("pong"),
            ws::Frame::Close(reason) => {
                let code: u16 = reason.map(|r| r.code.into()).unwrap_or(1005);
                return json!({"type": "close", "code": code});
            }
            _ => {}
        }
    }
}
