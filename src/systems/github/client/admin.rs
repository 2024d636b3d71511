//! What `statsync doctor` and `statsync webhooks register` ask of GitHub: whose the
//! credentials are and what they may do, the webhooks that reach statsync and how their
//! recent deliveries went, and creating or mending one. With a personal token these are
//! repository and organisation hooks (`/repos/{o}/{r}/hooks`, `/orgs/{org}/hooks`);
//! with a GitHub App, the App's own webhook (`/app/hook/config`), which receives the
//! events of every installation.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::super::app::{json_of, Scope};
use super::super::refs::segment;
use super::{classify, Auth, GithubClient};
use crate::systems::outbound::{classify_status, date_of, time_at, ErrorCode, OutboundError};

/// Where a webhook is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOwner {
    /// A repository, `owner/name`.
    Repo(String),
    /// An organisation (Projects v2 item events are sent only to its hooks).
    Org(String),
    /// The GitHub App's own webhook.
    App,
}

impl HookOwner {
    fn hooks_path(&self) -> String {
        match self {
            HookOwner::Repo(repo) => {
                let (owner, name) = repo.split_once('/').unwrap_or((repo, ""));
                format!("/repos/{}/{}/hooks", segment(owner), segment(name))
            }
            HookOwner::Org(org) => format!("/orgs/{}/hooks", segment(org)),
            HookOwner::App => "/app/hook".to_owned(),
        }
    }
}

impl fmt::Display for HookOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookOwner::Repo(repo) => write!(f, "repository {repo}"),
            HookOwner::Org(org) => write!(f, "organisation {org}"),
            HookOwner::App => f.write_str("the GitHub App"),
        }
    }
}

/// A webhook as GitHub lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    /// None for the App's webhook, which has no id of its own.
    pub id: Option<u64>,
    pub url: String,
    pub events: Vec<String>,
    pub active: bool,
    /// Sends `application/json` (the form statsync verifies and reads).
    pub json: bool,
    pub updated_at: Option<DateTime<Utc>>,
}

/// One recent delivery of a hook: its answer's status code (0: no answer at all).
#[derive(Debug, Clone, PartialEq)]
pub struct HookDelivery {
    pub status_code: u16,
    pub event: String,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Whose the GitHub credentials are.
#[derive(Debug, Clone, PartialEq)]
pub enum Identity {
    /// A personal token acting as `login`; `scopes` are a classic token's OAuth scopes
    /// (`X-OAuth-Scopes`), None for a fine-grained token, which reports none.
    User {
        login: String,
        scopes: Option<Vec<String>>,
    },
    /// The App `slug`, its permissions and subscribed events, and the accounts it is
    /// installed on.
    App {
        slug: String,
        permissions: BTreeMap<String, String>,
        events: Vec<String>,
        installations: Vec<String>,
    },
}

/// An answer's body and its `Date` header (for the clock check).
type Dated = (Value, Option<DateTime<Utc>>);

fn permissions_of(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    let level = match v {
                        Value::String(s) => s.clone(),
                        Value::Bool(true) => "yes".to_owned(),
                        other => other.to_string(),
                    };
                    (k.clone(), level)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn hook_of(v: &Value) -> Hook {
    let config = &v["config"];
    Hook {
        id: v["id"].as_u64(),
        url: config["url"].as_str().unwrap_or_default().to_owned(),
        events: strings(&v["events"]),
        active: v["active"].as_bool().unwrap_or(true),
        json: config["content_type"].as_str() == Some("json"),
        updated_at: time_at(v, "/updated_at"),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

impl GithubClient {
    /// Whether statsync acts as a GitHub App (whose one webhook is the App's own).
    pub fn is_app(&self) -> bool {
        matches!(self.auth, Auth::App(_))
    }

    /// One REST call with statsync's credentials;
    /// a non-2xx answer is its classified error.
    async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Dated, OutboundError> {
        self.budget.acquire().await?;
        // The App's own endpoints take its JWT, everything else an installation token.
        let as_app = path.starts_with("/app") || path.ends_with("/installation");
        let answer = match (&self.auth, as_app) {
            (Auth::App(app), true) => app.call(method, path, body).await?,
            _ => {
                let url = format!("{}{path}", self.api_url);
                let answer = self.send(method, &url, Scope::Any, body).await?;
                if classify_status(answer.status).is_some() {
                    return Err(classify(answer.status, &answer.headers, &answer.body));
                }
                answer
            }
        };
        let date = date_of(&answer.headers);
        if answer.status == 204 || answer.body.is_empty() {
            return Ok((Value::Null, date));
        }
        Ok((json_of(path, &answer.body)?, date))
    }

    /// Whose the credentials are, and GitHub's clock (its `Date` header) when asked.
    pub async fn identity(&self) -> Result<(Identity, Option<DateTime<Utc>>), OutboundError> {
        if let Auth::App(_) = &self.auth {
            let (app, date) = self.admin(Method::GET, "/app", None).await?;
            let (installed, _) = self.admin(Method::GET, "/app/installations", None).await?;
            let installations = installed
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|i| i["account"]["login"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let identity = Identity::App {
                slug: app["slug"].as_str().unwrap_or_default().to_owned(),
                permissions: permissions_of(&app["permissions"]),
                events: strings(&app["events"]),
                installations,
            };
            return Ok((identity, date));
        }
        if let Auth::None = &self.auth {
            return Err(OutboundError::new(
                ErrorCode::Unauthorized,
                "neither GITHUB_TOKEN nor GITHUB_APP_ID is set",
            ));
        }
        self.budget.acquire().await?;
        let url = format!("{}/user", self.api_url);
        let answer = self.send(Method::GET, &url, Scope::Any, None).await?;
        if classify_status(answer.status).is_some() {
            return Err(classify(answer.status, &answer.headers, &answer.body));
        }
        let user = json_of("/user", &answer.body)?;
        let scopes = answer
            .headers
            .get("x-oauth-scopes")
            .and_then(|v| v.to_str().ok())
            .map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_owned())
                    .filter(|x| !x.is_empty())
                    .collect()
            });
        let identity = Identity::User {
            login: user["login"].as_str().unwrap_or_default().to_owned(),
            scopes,
        };
        Ok((identity, date_of(&answer.headers)))
    }

    /// What the credentials may do in `repo` (`owner/name`): a token's repository
    /// permissions (`admin`, `push`, `pull`: `yes` when granted), or the permissions of
    /// the App installation covering it (`issues: write`, …).
    pub async fn repo_permissions(
        &self,
        repo: &str,
    ) -> Result<BTreeMap<String, String>, OutboundError> {
        let (owner, name) = repo.split_once('/').unwrap_or((repo, ""));
        let base = format!("/repos/{}/{}", segment(owner), segment(name));
        let (answer, _) = match &self.auth {
            Auth::App(_) => {
                let path = format!("{base}/installation");
                self.admin(Method::GET, &path, None).await?
            }
            _ => self.admin(Method::GET, &base, None).await?,
        };
        Ok(permissions_of(&answer["permissions"]))
    }

    /// The webhooks of `owner` (the App's one webhook, with the App's events).
    pub async fn hooks(&self, owner: &HookOwner) -> Result<Vec<Hook>, OutboundError> {
        if *owner == HookOwner::App {
            let (config, _) = self.admin(Method::GET, "/app/hook/config", None).await?;
            let (app, _) = self.admin(Method::GET, "/app", None).await?;
            let url = config["url"].as_str().unwrap_or_default().to_owned();
            if url.is_empty() {
                return Ok(Vec::new());
            }
            return Ok(vec![Hook {
                id: None,
                url,
                events: strings(&app["events"]),
                active: true,
                json: config["content_type"].as_str() == Some("json"),
                updated_at: None,
            }]);
        }
        let path = format!("{}?per_page=100", owner.hooks_path());
        let (answer, _) = self.admin(Method::GET, &path, None).await?;
        Ok(answer
            .as_array()
            .map(|a| a.iter().map(hook_of).collect())
            .unwrap_or_default())
    }

    /// A hook's most recent deliveries, newest first.
    pub async fn hook_deliveries(
        &self,
        owner: &HookOwner,
        hook: &Hook,
    ) -> Result<Vec<HookDelivery>, OutboundError> {
        let path = match hook.id {
            Some(id) => format!("{}/{id}/deliveries?per_page=10", owner.hooks_path()),
            None => "/app/hook/deliveries?per_page=10".to_owned(),
        };
        let (answer, _) = self.admin(Method::GET, &path, None).await?;
        let mut deliveries: Vec<HookDelivery> = answer
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|d| HookDelivery {
                        status_code: d["status_code"].as_u64().unwrap_or(0) as u16,
                        event: d["event"].as_str().unwrap_or_default().to_owned(),
                        delivered_at: time_at(d, "/delivered_at"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        deliveries.sort_by_key(|d| std::cmp::Reverse(d.delivered_at));
        Ok(deliveries)
    }

    /// Creates a hook on `owner` sending `events` to `url` as JSON, signed with
    /// `secret`; or, with `Some(hook)`, makes that hook so. The App's webhook takes its
    /// URL and secret; its events are the App's own settings.
    pub async fn put_hook(
        &self,
        owner: &HookOwner,
        existing: Option<&Hook>,
        url: &str,
        secret: &SecretString,
        events: &[&str],
    ) -> Result<(), OutboundError> {
        let config = json!({
            "url": url,
            "content_type": "json",
            "insecure_ssl": "0",
            "secret": secret.expose_secret(),
        });
        let (method, path, body) = match (owner, existing.and_then(|h| h.id)) {
            (HookOwner::App, _) => (Method::PATCH, "/app/hook/config".to_owned(), config),
            (_, Some(id)) => (
                Method::PATCH,
                format!("{}/{id}", owner.hooks_path()),
                json!({ "config": config, "events": events, "active": true }),
            ),
            (_, None) => (
                Method::POST,
                owner.hooks_path(),
                json!({ "name": "web", "config": config, "events": events, "active": true }),
            ),
        };
        self.admin(method, &path, Some(&body)).await.map(|_| ())
    }
}
