//! The demo's team at work, one story after another, forever: Ada files an issue in
//! Linear and starts it; octocat opens a GitHub issue and a draft pull request naming
//! it; an agent reports progress; the pull request goes to review and is merged; Grace
//! reopens the work in Linear; then Grace and octocat edit it on both sides at once.
//! Every step is a person's change in a stand-in, sent to statsync as a signed webhook;
//! what statsync writes back shows up in the stand-ins and comes back as echoes.

use std::sync::Arc;
use std::time::Duration;

use super::standins::Shared;
use super::world::{ADA, GRACE};

const TITLES: [&str; 6] = [
    "Retry failed payouts",
    "Dark mode for settings",
    "Export invoices as CSV",
    "Rate-limit the login form",
    "Faster search indexing",
    "Audit log for admins",
];

/// One step of a story.
#[derive(Debug, Clone, Copy)]
enum Step {
    FileInLinear,
    StartInLinear,
    OpenIssueAndPull,
    AgentWorking,
    AgentComplete,
    AskForReview,
    Merge,
    ReopenInLinear,
    EditBothSides,
}

const STORY: [Step; 9] = [
    Step::FileInLinear,
    Step::StartInLinear,
    Step::OpenIssueAndPull,
    Step::AgentWorking,
    Step::AgentComplete,
    Step::AskForReview,
    Step::Merge,
    Step::ReopenInLinear,
    Step::EditBothSides,
];

/// What one story has made so far.
#[derive(Default)]
struct Story {
    linear_id: String,
    identifier: String,
    issue: u64,
    pull: u64,
}

impl Story {
    fn play(&mut self, n: usize, step: Step, shared: &Shared) {
        let title = TITLES[n % TITLES.len()];
        let task = format!("agent-task-{}", n + 1);
        shared.change(|w| match step {
            Step::FileInLinear => {
                self.identifier = w.create_linear(title, ADA);
                self.linear_id = w.linear_id(&self.identifier).unwrap_or_default();
            }
            Step::StartInLinear => {
                w.set_linear(&self.linear_id, "st-doing", Some(ADA));
            }
            Step::OpenIssueAndPull => {
                let body = format!("Tracked in {}.", self.identifier);
                self.issue = w.open_issue(title, &body, "octocat");
                self.pull = w.open_pull(&self.identifier, title, "octocat");
            }
            Step::AgentWorking => {
                w.agent_reports(&task, "working", &self.identifier, "writing the tests");
            }
            Step::AskForReview => w.pull_moves(self.pull, "review_requested", "octocat"),
            Step::Merge => w.pull_moves(self.pull, "closed", "monalisa"),
            Step::AgentComplete => {
                w.agent_reports(&task, "complete", &self.identifier, "tests pass");
            }
            Step::ReopenInLinear => {
                w.set_linear(&self.linear_id, "st-doing", Some(GRACE));
            }
            Step::EditBothSides => {
                // Within one conflict window: Grace blocks it while octocat closes it.
                w.set_linear(&self.linear_id, "st-blocked", Some(GRACE));
                w.set_issue(self.issue, false, Some("not_planned"), Some("octocat"));
            }
        });
        tracing::info!(story = %self.identifier, ?step, "demo: the team made a change");
    }
}

/// Plays stories forever, one step every `pace`.
pub async fn run(shared: Arc<Shared>, pace: Duration) {
    for n in 0.. {
        let mut story = Story::default();
        for step in STORY {
            story.play(n, step, &shared);
            tokio::time::sleep(pace).await;
        }
    }
}
