//! A deadline on receiving a request body (`http.body_timeout_ms`, counted from the
//! end of the headers). actix-web bounds the time to send headers only: without this, a
//! client dribbling a body a byte at a time holds its connection and worker for as long
//! as it likes. A body still incomplete at the deadline ends in an error that the body
//! readers answer 408; actix then closes the connection, the rest of the body unread.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use actix_web::HttpMessage;
use futures_util::Stream;

use super::AppState;

pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let timeout = req
        .app_data::<web::Data<AppState>>()
        .map(|s| Duration::from_millis(s.settings.http.body_timeout_ms));
    // An upgrade's "body" is the WebSocket itself, which has limits of its own.
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if let Some(timeout) =
        timeout.filter(|_| has_body && !req.headers().contains_key(header::UPGRADE))
    {
        let inner = req.take_payload();
        let limited: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
            Box::pin(Deadline {
                inner,
                timer: Box::pin(tokio::time::sleep(timeout)),
                timeout,
                expired: false,
            });
        req.set_payload(Payload::from(limited));
    }
    next.call(req).await
}

/// The body did not arrive in time, as the error of the payload stream.
pub fn is_timeout(e: &PayloadError) -> bool {
    matches!(e, PayloadError::Io(io) if io.kind() == io::ErrorKind::TimedOut)
}

struct Deadline {
    inner: Payload,
    timer: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
    expired: bool,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        // What has arrived is taken first: a body complete by the deadline is complete.
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        if self.timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.expired = true;
        let ms = self.timeout.as_millis();
        Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the body did not arrive within {ms} ms"),
        )))))
    }
}
