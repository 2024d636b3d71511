//! The live page at `/` in a real headless Chromium (Debian's `chromium`), driven over
//! the DevTools protocol: it connects, subscribes, shows a status change that arrives by
//! webhook, and a screenshot is saved for a person to look at.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use awc::ws;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

use crate::support::{spawn_app_with, wait_for, API_TOKEN};

const WAIT: Duration = Duration::from_secs(30);

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Killed with the test, pass or fail.
struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct DevTools {
    conn: actix_codec::Framed<awc::BoxedSocket, ws::Codec>,
    next_id: u64,
}

impl DevTools {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params});
        self.conn
            .send(ws::Message::Text(msg.to_string().into()))
            .await
            .expect("send to DevTools");
        loop {
            let frame = tokio::time::timeout(WAIT, self.conn.next())
                .await
                .expect("DevTools answers")
                .expect("DevTools connection open")
                .expect("DevTools frame");
            if let ws::Frame::Text(t) = frame {
                let v: Value = serde_json::from_slice(&t).expect("DevTools JSON");
                if v["id"] == json!(id) {
                    assert!(v.get("error").is_none(), "{method}: {v}");
                    return v["result"].clone();
                }
            }
        }
    }

    async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await;
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expression}: {e}");
        }
        r["result"]["value"].clone()
    }
}

async fn devtools_port(profile: &Path) -> u16 {
    let file = profile.join("DevToolsActivePort");
    wait_for("Chromium's DevTools port", WAIT, || {
        let file = file.clone();
        async move {
            let text = std::fs::read_to_string(file).ok()?;
            text.lines().next()?.trim().parse::<u16>().ok()
        }
    })
    .await
}

#[actix_web::test]
async fn the_live_page_shows_a_status_change_that_arrives_by_webhook() {
    let Some(chromium) = chromium() else {
        // .ci/run installs it; a developer machine without it is told, not failed. Written
        // to the process's stderr directly: the test harness captures `eprintln!` of a
        // passing test, and a skip nobody sees reads as a pass.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr().lock(),
            "\nSKIPPED the_live_page_shows_a_status_change_that_arrives_by_webhook: Chromium is \
             not installed (apt-get install -y chromium; .ci/run installs it)"
        );
        return;
    };
    let app = spawn_app_with(&[]).await;
    let profile = tempdir();
    let _browser = Browser(
        Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1100,600",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.0.display()))
            .arg(format!("{}/", app.address))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Chromium"),
    );
    let port = devtools_port(&profile.0).await;
    let targets: Value = app
        .http
        .get(format!("http://127.0.0.1:{port}/json/list"))
        .send()
        .await
        .expect("DevTools targets")
        .json()
        .await
        .expect("targets JSON");
    let page = targets
        .as_array()
        .and_then(|t| t.iter().find(|t| t["type"] == "page"))
        .expect("a page target");
    let (_, conn) = awc::Client::new()
        .ws(page["webSocketDebuggerUrl"].as_str().expect("debugger URL"))
        .max_frame_size(64 << 20)
        .connect()
        .await
        .expect("DevTools WebSocket");
    let mut tools = DevTools { conn, next_id: 0 };

    let deadline = std::time::Instant::now() + WAIT;
    let loaded = "document.readyState === 'complete' && !!document.getElementById('connect')";
    while tools.eval(loaded).await != json!(true) {
        assert!(std::time::Instant::now() < deadline, "the page loads");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    tools
        .eval(&format!(
            "document.getElementById('token').value = {};
             document.getElementById('connect').requestSubmit(); true",
            json!(API_TOKEN)
        ))
        .await;
    let state_is_live = "document.getElementById('state').textContent.startsWith('live')";
    while tools.eval(state_is_live).await != json!(true) {
        let state = tools
            .eval("document.getElementById('state').textContent")
            .await;
        assert!(
            std::time::Instant::now() < deadline,
            "the page subscribes: {state}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }

    let report = json!({"taskId": "browser-1", "state": "working",
                        "timestamp": chrono::Utc::now().to_rfc3339()});
    let r = app
        .agent(Some("browser-1"), report.to_string().as_bytes())
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let table = "document.getElementById('events').innerText";
    loop {
        let text = tools.eval(table).await;
        let text = text.as_str().unwrap_or_default();
        // The change and the system it came from.
        if text.contains("status_changed") && text.contains("in_progress (agentapi)") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the change appears on the page: {text:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }

    let shot = tools
        .call("Page.captureScreenshot", json!({"format": "png"}))
        .await;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().expect("screenshot data"))
        .expect("base64 PNG");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("live-page.png");
    std::fs::write(&out, &png).expect("save the screenshot");
    eprintln!("screenshot: {}", out.display());
}

/// Chromium's profile directory, removed with the test (declared before the browser, so
/// dropped after it has been killed): each run left about 10 MB behind.
struct Profile(PathBuf);

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> Profile {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chromium-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("profile dir");
    Profile(dir)
}
