//! Pull requests' branches for a GitHub listing: the issue listing has none, so that a
//! pull request whose only mention of an issue is its branch (`eng-123-fix`) still gets
//! linked, the pull request listing is read once per run (lazily, at the first page
//! holding a pull request), and a pull request changed since is fetched by itself.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::listing::Lister;
use crate::systems::outbound::{OutboundError, RateInfo};

#[derive(Default)]
pub struct Branches {
    /// Number → head branch, once read.
    known: Option<HashMap<u64, String>>,
}

impl Branches {
    /// The branch of every pull request among `items` (issue listing objects), by
    /// number; and the rate of the last request made, if any.
    pub async fn of(
        &mut self,
        lister: &Lister<'_>,
        api_url: &str,
        repo: &str,
        per_page: u32,
        since: Option<DateTime<Utc>>,
        items: &[Value],
    ) -> Result<(HashMap<u64, String>, Option<RateInfo>), OutboundError> {
        let numbers: Vec<u64> = items
            .iter()
            .filter(|i| i.get("pull_request").is_some())
            .filter_map(|i| i["number"].as_u64())
            .collect();
        let mut rate = None;
        if numbers.is_empty() {
            return Ok((HashMap::new(), rate));
        }
        let known = match &mut self.known {
            Some(known) => known,
            None => {
                let (all, r) = lister.branches(api_url, repo, per_page, since).await?;
                rate = Some(r);
                self.known.insert(all)
            }
        };
        let mut out = HashMap::new();
        for n in numbers {
            if let Some(b) = known.get(&n) {
                out.insert(n, b.clone());
                continue;
            }
            let (branch, r) = lister.branch(api_url, repo, n).await?;
            rate = Some(r);
            if let Some(b) = branch {
                known.insert(n, b.clone());
                out.insert(n, b);
            }
        }
        Ok((out, rate))
    }
}
