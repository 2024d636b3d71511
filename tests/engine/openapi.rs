//! The OpenAPI description at `/api/v1/openapi.json` and the routes agree: every
//! operation it describes is served (an unauthenticated call is refused 401, not lost
//! in a 404 or 405), every webhook names its door's headers, and a method a path is not
//! served with is answered 405 with `Allow`.

use super::*;

#[actix_web::test]
async fn every_described_operation_is_served_and_other_methods_answer_405() {
    let app = spawn_app().await;
    let doc = app.get("/api/v1/openapi.json").await;
    assert_eq!(doc.status, 200);
    let doc = doc.body;
    assert_eq!(doc["openapi"], "3.1.0", "{doc}");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 20, "{}", paths.len());
    let http = reqwest::Client::new();
    for (template, item) in paths {
        // Any value for a path parameter: routing does not look at it.
        let path = template
            .split('/')
            .map(|s| if s.starts_with('{') { "1" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        for method in ["get", "post"] {
            if item.get(method).is_none() {
                continue;
            }
            let url = format!("{}{path}", app.address);
            let r = match method {
                "get" => http.get(&url),
                _ => http.post(&url),
            }
            .send()
            .await
            .expect("request");
            // The API wants a token (401); a webhook its event header or signature.
            let refused: &[u16] = if path.starts_with("/webhooks/") {
                &[400, 401]
            } else {
                &[401]
            };
            assert!(
                refused.contains(&r.status().as_u16()),
                "{method} {path} is described but answered {}",
                r.status()
            );
        }
    }
    let github = &paths["/webhooks/github"]["post"];
    let headers: Vec<&str> = github["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(headers.contains(&"X-Hub-Signature-256"), "{headers:?}");
    assert!(headers.contains(&"X-GitHub-Event"), "{headers:?}");
    assert_eq!(
        doc["paths"]["/api/v1/status"]["post"]["security"][0]["bearer"],
        json!([])
    );

    let r = http
        .request(
            reqwest::Method::DELETE,
            format!("{}/api/v1/board", app.address),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET");
    let body: Value = r.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "METHOD_NOT_ALLOWED", "{body}");
    let r = app.get("/nowhere").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"]["code"], "NOT_FOUND", "{}", r.body);
}
