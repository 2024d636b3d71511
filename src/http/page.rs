//! `GET /`: a small page (no build step) that connects to `/ws`, subscribes to a room and
//! shows status changes and sync progress live, so an operator can watch it work. The
//! token is typed into the page and sent as the first message, never put in the URL.

use actix_web::{web, HttpResponse};

const PAGE: &str = include_str!("page.html");

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(page));
}

async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'"))
        .body(PAGE)
}
