//! GitHub: webhook parsing here; the outbound client lives beside it. Nothing
//! GitHub-shaped leaks past this module: the rest of statsync sees `StatusUpdate`s.

pub mod app;
pub mod backfill;
mod branches;
pub mod client;
pub mod connector;
pub mod listing;
pub mod project_item;
pub mod read_back;
pub mod refs;
pub mod rest;
pub mod webhook;

pub use webhook::parse as parse_webhook;

/// `owner/repo#12` for a pull request or issue URL
/// (`https://github.com/owner/repo/pull/12`, `…/issues/12`, with any trailing path).
pub fn ref_of_url(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://github.com/")
        .or_else(|| url.strip_prefix("http://github.com/"))?;
    let mut parts = rest.split(['/', '?', '#']);
    let (owner, repo, kind, number) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if !matches!(kind, "pull" | "issues") {
        return None;
    }
    let external_id = format!("{owner}/{repo}#{number}");
    let valid = client::parse_issue_ref(&external_id).is_some();
    valid.then_some(external_id)
}

#[cfg(test)]
mod tests {
    use super::ref_of_url;

    #[test]
    fn pull_request_and_issue_urls_become_refs() {
        let cases = [
            ("https://github.com/acme/api/pull/12", Some("acme/api#12")),
            (
                "https://github.com/acme/api/issues/3#issuecomment-1",
                Some("acme/api#3"),
            ),
            (
                "https://github.com/acme/api/pull/12/files",
                Some("acme/api#12"),
            ),
            ("https://github.com/acme/api/commit/abc", None),
            ("https://github.com/acme/api/pull/x", None),
            ("https://example.com/acme/api/pull/1", None),
        ];
        for (url, want) in cases {
            assert_eq!(ref_of_url(url).as_deref(), want, "{url}");
        }
    }
}
