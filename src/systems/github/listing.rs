//! Reading a repository's issues and pull requests page by page
//! (`GET /repos/{owner}/{repo}/issues?state=all&sort=updated&direction=asc&since=…`,
//! `Link` header pagination), with conditional requests: a page whose ETag is unchanged
//! answers 304, which GitHub does not count against the rate limit. The issue listing
//! has no branch names, so pull requests' branches are read from the pull request
//! listing (`GET /repos/{owner}/{repo}/pulls?state=all`, newest change first). And the
//! webhook deliveries of a hook: listing them and asking GitHub to redeliver failed ones.
//! Never retries by itself and never logs the token.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::rest::classify;
use crate::systems::outbound::{exchange, ErrorCode, Exchange, OutboundError, RateInfo};

/// One page of a listing.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Issue objects as GitHub sends them (pull requests carry `pull_request`).
    pub items: Vec<Value>,
    /// The next page's URL (`Link: <…>; rel="next"`).
    pub next: Option<String>,
    /// The last page's number (`rel="last"`), for progress.
    pub last_page: Option<u32>,
    pub etag: Option<String>,
    /// 304: nothing changed since the ETag sent.
    pub not_modified: bool,
    pub rate: RateInfo,
}

/// The first page of a repository's issues updated since `since`, oldest change first
/// (so that a listing interrupted part-way misses nothing when it resumes).
pub fn first_page_url(
    api_url: &str,
    repo: &str,
    per_page: u32,
    since: Option<DateTime<Utc>>,
) -> String {
    let mut url = format!(
        "{}/repos/{}/issues?state=all&sort=updated&direction=asc&per_page={per_page}",
        api_url.trim_end_matches('/'),
        super::refs::repo_path(repo)
    );
    if let Some(since) = since {
        url.push_str("&since=");
        url.push_str(&since.to_rfc3339_opts(SecondsFormat::Secs, true));
    }
    url
}

pub struct Lister<'a> {
    pub http: &'a reqwest::Client,
    pub token: Option<&'a SecretString>,
}

impl Lister<'_> {
    fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, OutboundError> {
        let token = self.token.ok_or_else(|| {
            OutboundError::new(ErrorCode::Unauthorized, "GITHUB_TOKEN is not set")
        })?;
        Ok(super::rest::as_github(
            self.http.request(method, url),
            token.expose_secret(),
        ))
    }

    /// One page; with `etag`, a conditional request.
    pub async fn page(&self, url: &str, etag: Option<&str>) -> Result<Page, OutboundError> {
        let mut request = self.request(reqwest::Method::GET, url)?;
        if let Some(etag) = etag {
            request = request.header("If-None-Match", etag);
        }
        let answer = exchange(request).await?;
        let rate = RateInfo::github(&answer.headers);
        if answer.status == 304 {
            return Ok(Page {
                not_modified: true,
                etag: etag.map(str::to_owned),
                rate,
                ..Page::default()
            });
        }
        let items = json_list(&answer, "issue")?;
        let (next, last_page) = links(&answer.headers);
        Ok(Page {
            items,
            next,
            last_page,
            etag: header(&answer.headers, "etag"),
            not_modified: false,
            rate,
        })
    }

    /// The head branch of every pull request changed at or after `since` (all without
    /// it), by number: the pull request listing newest change first, page by page
    /// (`Link`) until a pull request older than `since`. Answers the last rate seen.
    pub async fn branches(
        &self,
        api_url: &str,
        repo: &str,
        per_page: u32,
        since: Option<DateTime<Utc>>,
    ) -> Result<(HashMap<u64, String>, RateInfo), OutboundError> {
        let mut url = Some(format!(
            "{}/repos/{}/pulls?state=all&sort=updated&direction=desc&per_page={per_page}",
            api_url.trim_end_matches('/'),
            super::refs::repo_path(repo)
        ));
        let mut out = HashMap::new();
        let mut rate = RateInfo::default();
        while let Some(next) = url.take() {
            let page = self.page(&next, None).await?;
            rate = page.rate;
            let mut older = false;
            for pr in &page.items {
                older |= since.is_some_and(|t| updated_at(pr).is_some_and(|at| at < t));
                if let (Some(n), Some(branch)) = (pr["number"].as_u64(), pr["head"]["ref"].as_str())
                {
                    out.insert(n, branch.to_owned());
                }
            }
            url = page.next.filter(|_| !older);
        }
        Ok((out, rate))
    }

    /// `GET /repos/{repo}/pulls/{number}`: one pull request's head branch (one changed
    /// after the listing was read).
    pub async fn branch(
        &self,
        api_url: &str,
        repo: &str,
        number: u64,
    ) -> Result<(Option<String>, RateInfo), OutboundError> {
        let url = format!(
            "{}/repos/{}/pulls/{number}",
            api_url.trim_end_matches('/'),
            super::refs::repo_path(repo)
        );
        let answer = exchange(self.request(reqwest::Method::GET, &url)?).await?;
        let rate = RateInfo::github(&answer.headers);
        if !(200..300).contains(&answer.status) {
            return Err(classify(answer.status, &answer.headers, &answer.body));
        }
        let pr: Value = serde_json::from_slice(&answer.body).map_err(|e| {
            OutboundError::new(
                ErrorCode::Upstream5xx,
                format!("GitHub's pull request {repo}#{number} is not JSON: {e}"),
            )
        })?;
        Ok((pr["head"]["ref"].as_str().map(str::to_owned), rate))
    }

    /// `GET /repos/{repo}/hooks/{hook}/deliveries`: the hook's deliveries, newest
    /// first, page by page (`Link`, cursor-based) until one older than `since` or
    /// [`MAX_DELIVERY_PAGES`] pages.
    pub async fn deliveries(
        &self,
        api_url: &str,
        repo: &str,
        hook: u64,
        since: DateTime<Utc>,
    ) -> Result<(Vec<Value>, RateInfo), OutboundError> {
        let mut url = format!(
            "{}/repos/{}/hooks/{hook}/deliveries?per_page=100",
            api_url.trim_end_matches('/'),
            super::refs::repo_path(repo)
        );
        let mut all = Vec::new();
        let mut rate = RateInfo::default();
        for _ in 0..MAX_DELIVERY_PAGES {
            let answer = exchange(self.request(reqwest::Method::GET, &url)?).await?;
            rate = RateInfo::github(&answer.headers);
            let page = json_list(&answer, "delivery")?;
            let reached_since = page.iter().filter_map(delivered_at).any(|at| at < since);
            all.extend(page);
            match links(&answer.headers).0 {
                Some(next) if !reached_since => url = next,
                _ => break,
            }
        }
        Ok((all, rate))
    }

    /// `POST …/deliveries/{id}/attempts`: GitHub sends the delivery again, with the same
    /// `X-GitHub-Delivery`.
    pub async fn redeliver(
        &self,
        api_url: &str,
        repo: &str,
        hook: u64,
        delivery: u64,
    ) -> Result<(), OutboundError> {
        let url = format!(
            "{}/repos/{}/hooks/{hook}/deliveries/{delivery}/attempts",
            api_url.trim_end_matches('/'),
            super::refs::repo_path(repo)
        );
        let answer = exchange(self.request(reqwest::Method::POST, &url)?).await?;
        if (200..300).contains(&answer.status) {
            Ok(())
        } else {
            Err(classify(answer.status, &answer.headers, &answer.body))
        }
    }
}

/// How many pages of a hook's deliveries one pass reads at most.
pub const MAX_DELIVERY_PAGES: usize = 10;

/// GitHub redelivers deliveries of the last three days only.
pub const REDELIVERY_WINDOW: chrono::TimeDelta = chrono::TimeDelta::days(3);

fn updated_at(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v["updated_at"].as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn delivered_at(d: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(d["delivered_at"].as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Deliveries to ask again for, one id per `guid`: failed ones (`status_code` not 2xx)
/// still inside GitHub's redelivery window whose guid never succeeded and was never
/// redelivered (a redelivery that failed too is left to a person: the endpoint is up,
/// since statsync is asking, so asking again every pass would fail the same way).
pub fn failed_deliveries(list: &[Value], now: DateTime<Utc>) -> Vec<u64> {
    let ok = |d: &Value| {
        d["status_code"]
            .as_u64()
            .is_some_and(|s| (200..300).contains(&s))
    };
    let settled: std::collections::HashSet<&str> = list
        .iter()
        .filter(|d| ok(d) || d["redelivery"].as_bool() == Some(true))
        .filter_map(|d| d["guid"].as_str())
        .collect();
    let mut asked = std::collections::HashSet::new();
    list.iter()
        .filter(|d| !ok(d))
        .filter(|d| delivered_at(d).map_or(true, |at| now - at < REDELIVERY_WINDOW))
        .filter(|d| {
            d["guid"]
                .as_str()
                .is_some_and(|g| !settled.contains(g) && asked.insert(g))
        })
        .filter_map(|d| d["id"].as_u64())
        .collect()
}

/// A successful answer's body as a JSON array of `what` objects; any other answer as
/// its classified error.
fn json_list(answer: &Exchange, what: &str) -> Result<Vec<Value>, OutboundError> {
    if !(200..300).contains(&answer.status) {
        return Err(classify(answer.status, &answer.headers, &answer.body));
    }
    serde_json::from_slice(&answer.body).map_err(|e| {
        OutboundError::new(
            ErrorCode::Upstream5xx,
            format!("GitHub's {what} list is not a JSON array: {e}"),
        )
    })
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_owned)
}

/// `rel="next"` URL and the `rel="last"` page number of a `Link` header.
pub fn links(headers: &HeaderMap) -> (Option<String>, Option<u32>) {
    let Some(link) = header(headers, "link") else {
        return (None, None);
    };
    let mut next = None;
    let mut last = None;
    for part in link.split(',') {
        let mut pieces = part.split(';');
        let Some(url) = pieces
            .next()
            .map(str::trim)
            .and_then(|u| u.strip_prefix('<')?.strip_suffix('>'))
        else {
            continue;
        };
        for param in pieces {
            match param.trim() {
                "rel=\"next\"" => next = Some(url.to_owned()),
                "rel=\"last\"" => {
                    last = url
                        .split(['?', '&'])
                        .find_map(|kv| kv.strip_prefix("page="))
                        .and_then(|n| n.parse().ok())
                }
                _ => {}
            }
        }
    }
    (next, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use serde_json::json;

    #[test]
    fn link_headers_give_the_next_url_and_the_last_page() {
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            HeaderValue::from_static(
                "<https://api.github.com/repositories/1/issues?per_page=100&page=2>; rel=\"next\", \
                 <https://api.github.com/repositories/1/issues?per_page=100&page=4>; rel=\"last\"",
            ),
        );
        let (next, last) = links(&h);
        assert_eq!(
            next.as_deref(),
            Some("https://api.github.com/repositories/1/issues?per_page=100&page=2")
        );
        assert_eq!(last, Some(4));
        assert_eq!(links(&HeaderMap::new()), (None, None));
    }

    #[test]
    fn only_deliveries_that_never_succeeded_nor_were_redelivered_are_asked_once() {
        let now = DateTime::parse_from_rfc3339("2024-05-04T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |hours: i64| (now - chrono::TimeDelta::hours(hours)).to_rfc3339();
        let d = |id: u64, guid: &str, code: u64, redelivery: bool, hours: i64| {
            json!({"id": id, "guid": guid, "status_code": code, "redelivery": redelivery,
                   "delivered_at": at(hours)})
        };
        let list = vec![
            d(1, "a", 500, false, 5),
            d(2, "a", 200, false, 4),
            d(3, "b", 502, false, 3),
            d(4, "b", 0, false, 2),
            d(5, "c", 202, false, 1),
            d(6, "d", 503, true, 1),
            d(7, "d", 503, false, 2),
            d(8, "e", 404, false, 71),
            d(9, "f", 500, false, 73),
        ];
        assert_eq!(failed_deliveries(&list, now), vec![3, 8]);
        assert_eq!(
            failed_deliveries(&[json!({"id": 1})], now),
            Vec::<u64>::new()
        );
    }
}
