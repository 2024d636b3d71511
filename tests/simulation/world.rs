//! The simulated world both stand-ins share: a virtual clock, the objects people and
//! statsync change, the webhooks waiting to be delivered, every call statsync made and
//! the trace printed when a seed fails. One lock guards it all; nothing here does I/O.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use statsync::domain::{GithubIssueState, GithubPullRequestState, NativeStatus};

use super::payloads;

pub const OWNER: &str = "acme";
pub const REPO_NAME: &str = "app";
pub const REPO: &str = "acme/app";
pub const TEAM: &str = "ENG";
/// The login `GITHUB_TOKEN` acts as: a token's writes come back as its user.
pub const BOT_LOGIN: &str = "statsync-bot";
/// The user `LINEAR_API_KEY` acts as.
pub const LINEAR_SELF: &str = "5f6a1d9e-0c8e-4a51-9f0b-7d0f2b0d7e11";
pub const PROJECT: &str = "PVT_sim_board";
pub const STATUS_FIELD: &str = "PVTSSF_sim_status";
pub const OPTIONS: [&str; 6] = [
    "Backlog",
    "Todo",
    "In Progress",
    "In Review",
    "Blocked",
    "Done",
];
/// Team ENG's workflow, as the demo's Linear stand-in has it.
pub use statsync::demo::world::LINEAR_STATES;
pub const GITHUB_PEOPLE: [&str; 3] = ["octocat", "hubot-dev", "monalisa"];
pub const LINEAR_PEOPLE: [(&str, &str); 2] = [
    ("8a1c3f20-5b7e-4d0a-9e2f-0c1d2e3f4a5b", "Ada"),
    ("9b2d4e31-6c8f-4e1b-8f30-1d2e3f4a5b6c", "Grace"),
];

pub fn option_id(name: &str) -> String {
    format!("opt-{}", name.to_lowercase().replace(' ', "-"))
}

pub fn linear_state(id: &str) -> (&'static str, &'static str, &'static str, f64) {
    *LINEAR_STATES
        .iter()
        .find(|s| s.0 == id)
        .unwrap_or(&LINEAR_STATES[0])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sys {
    Github,
    Linear,
}

impl Sys {
    pub fn name(self) -> &'static str {
        match self {
            Sys::Github => "github",
            Sys::Linear => "linear",
        }
    }
}

#[derive(Debug, Clone)]
pub struct LinearIssue {
    pub id: String,
    pub identifier: String,
    pub state: &'static str,
    pub updated_ms: i64,
}

#[derive(Debug, Clone)]
pub struct GhIssue {
    pub number: u64,
    pub open: bool,
    pub reason: Option<String>,
    pub updated_s: i64,
}

#[derive(Debug, Clone)]
pub struct Pull {
    pub number: u64,
    pub identifier: String,
    pub opened: bool,
    pub open: bool,
    pub draft: bool,
    pub merged: bool,
    pub updated_s: i64,
}

#[derive(Debug, Clone)]
pub struct Item {
    pub node_id: String,
    pub issue: u64,
    pub option: Option<&'static str>,
    pub updated_s: i64,
}

/// One piece of work: a Linear issue, a GitHub issue and its board item, and maybe a
/// pull request naming the Linear issue.
#[derive(Debug, Clone)]
pub struct Unit {
    pub linear: String,
    pub identifier: String,
    pub issue: u64,
    pub item: String,
    pub pull: Option<u64>,
    pub entity: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Actor {
    Person(String),
    Statsync,
}

/// A change made in a system, by a person or by statsync through the API.
#[derive(Debug, Clone)]
pub struct Change {
    pub actor: Actor,
    /// `system:external_id`, as statsync links it.
    pub object: String,
    pub unit: usize,
    pub native: NativeStatus,
    /// The source time the system stamped (ms; GitHub's are whole seconds).
    pub source_ms: i64,
    pub explicit: bool,
    pub delivery: Option<String>,
    pub what: String,
}

/// A webhook waiting to be (re)delivered.
#[derive(Debug, Clone)]
pub struct Mail {
    pub id: String,
    pub sys: Sys,
    pub event: String,
    pub body: Value,
    pub due: u64,
    /// Sends still owed after this one (a duplicate: the same delivery id again).
    pub copies: u32,
    /// Lost on its first attempt, redelivered later with the same id.
    pub dropped: bool,
    pub attempts: u32,
}

/// A call statsync made to a stand-in.
#[derive(Debug, Clone)]
pub struct Call {
    /// Which run of statsync made it (a SIGKILL and restart starts the next).
    pub incarnation: u32,
    /// A status write that succeeded: the object and whether its value changed.
    pub write: Option<(String, bool)>,
}

/// An API fault to answer instead of handling a call.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    ServerError,
    /// GitHub 429 / Linear: a limit with `retry-after`.
    TooMany,
    /// GitHub 403 with `x-ratelimit-remaining: 0` (primary) / Linear `RATELIMITED`.
    Exhausted,
    /// GitHub 403 secondary limit with `retry-after`.
    Secondary,
}

pub struct World {
    pub seed: u64,
    pub step: u64,
    /// Virtual now, epoch ms.
    pub clock_ms: i64,
    pub skew_ms: BTreeMap<Sys, i64>,
    pub max_skew_ms: i64,
    pub linear: BTreeMap<String, LinearIssue>,
    pub issues: BTreeMap<u64, GhIssue>,
    pub pulls: BTreeMap<u64, Pull>,
    pub items: BTreeMap<String, Item>,
    pub units: Vec<Unit>,
    pub changes: Vec<Change>,
    pub mail: Vec<Mail>,
    pub calls: Vec<Call>,
    pub faults: BTreeMap<Sys, VecDeque<Option<Fault>>>,
    /// What the network does to the webhooks about statsync's writes: seeded, but
    /// consumed in the order statsync's calls arrive.
    pub net: StdRng,
    /// The same for people's webhooks, consumed in the scheduler's own order.
    pub people: StdRng,
    /// Some item webhooks name only the field, as older GitHub deliveries do.
    pub item_value_omitted: f64,
    pub incarnation: u32,
    pub delivery_seq: u64,
    pub trace: Vec<String>,
    pub violations: Vec<String>,
    /// Open conflicts a person settled at the end: (entity id, status chosen).
    pub resolutions: Vec<(String, String)>,
}

impl World {
    pub fn new(seed: u64, start_ms: i64) -> World {
        World {
            seed,
            step: 0,
            clock_ms: start_ms,
            skew_ms: BTreeMap::new(),
            max_skew_ms: 0,
            linear: BTreeMap::new(),
            issues: BTreeMap::new(),
            pulls: BTreeMap::new(),
            items: BTreeMap::new(),
            units: Vec::new(),
            changes: Vec::new(),
            mail: Vec::new(),
            calls: Vec::new(),
            faults: BTreeMap::new(),
            net: StdRng::seed_from_u64(seed ^ 0x6e65_7477_6f72_6b21),
            people: StdRng::seed_from_u64(seed ^ 0x7065_6f70_6c65_2121),
            item_value_omitted: 0.0,
            incarnation: 1,
            delivery_seq: 0,
            trace: Vec::new(),
            violations: Vec::new(),
            resolutions: Vec::new(),
        }
    }

    pub fn log(&mut self, line: impl AsRef<str>) {
        let at = (self.clock_ms % 3_600_000) as f64 / 1000.0;
        let line = format!("[step {:>3} v{:>8.3}s] {}", self.step, at, line.as_ref());
        self.trace.push(line);
    }

    /// The system's clock: the virtual clock plus its skew, in ms.
    pub fn stamp_ms(&self, sys: Sys) -> i64 {
        let ms = self.clock_ms + self.skew_ms.get(&sys).copied().unwrap_or(0);
        match sys {
            // GitHub reports whole seconds.
            Sys::Github => ms.div_euclid(1000) * 1000,
            Sys::Linear => ms,
        }
    }

    pub fn next_delivery(&mut self, sys: Sys) -> String {
        self.delivery_seq += 1;
        let n = self.delivery_seq;
        match sys {
            Sys::Github => format!("{:08x}-0000-4000-8000-{:012x}", self.seed, n),
            Sys::Linear => format!("{:08x}-1111-4000-8000-{:012x}", self.seed, n),
        }
    }

    pub fn unit_of(&self, object: &str) -> usize {
        self.units
            .iter()
            .position(|u| {
                object == format!("linear:{}", u.linear)
                    || object == format!("github:{REPO}#{}", u.issue)
                    || object == format!("github:{}", u.item)
                    || u.pull
                        .is_some_and(|p| object == format!("github:{REPO}#{p}"))
            })
            .unwrap_or(usize::MAX)
    }

    /// The next API fault for `sys` (consumed per call, in arrival order).
    pub fn fault(&mut self, sys: Sys) -> Option<Fault> {
        self.faults
            .get_mut(&sys)
            .and_then(|q| q.pop_front())
            .flatten()
    }

    /// Queues a webhook with what the network will do to it.
    pub fn post(&mut self, sys: Sys, event: &str, body: Value, actor: &Actor) -> String {
        let id = self.next_delivery(sys);
        let rng = match actor {
            Actor::Statsync => &mut self.net,
            Actor::Person(_) => &mut self.people,
        };
        let delay = match rng.gen_range(0..100) {
            0..=64 => 0,
            65..=84 => rng.gen_range(1..4),
            85..=94 => rng.gen_range(4..11),
            _ => rng.gen_range(11..21),
        };
        let copies = u32::from(rng.gen_bool(0.08));
        let dropped = rng.gen_bool(0.06);
        self.mail.push(Mail {
            id: id.clone(),
            sys,
            event: event.to_owned(),
            body,
            due: self.step + delay,
            copies,
            dropped,
            attempts: 0,
        });
        let mut plan = format!("due step {}", self.step + delay);
        if copies > 0 {
            plan.push_str(", duplicated");
        }
        if dropped {
            plan.push_str(", dropped first");
        }
        self.log(format!("QUEUE {} {event} {id}: {plan}", sys.name()));
        id
    }

    /// A change in `object` made by `actor` and the webhook about it.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        actor: Actor,
        object: String,
        native: NativeStatus,
        source_ms: i64,
        explicit: bool,
        delivery: Option<String>,
        what: String,
    ) {
        let unit = self.unit_of(&object);
        let who = match &actor {
            Actor::Person(p) => p.clone(),
            Actor::Statsync => "statsync".into(),
        };
        self.log(format!(
            "CHANGE by {who}: {object} {what} @{} delivery {}",
            iso_ms(source_ms),
            delivery.as_deref().unwrap_or("(none: nothing changed)")
        ));
        self.changes.push(Change {
            actor,
            object,
            unit,
            native,
            source_ms,
            explicit,
            delivery,
            what,
        });
    }

    // ------------------------------------------------------------ object changes

    /// Moves a Linear issue to `state`; answers the webhook delivery id when it changed.
    pub fn set_linear(&mut self, id: &str, state: &'static str, actor: Actor) -> Option<String> {
        let at = self.stamp_ms(Sys::Linear);
        let issue = self.linear.get_mut(id)?;
        if issue.state == state {
            return None;
        }
        let from = (issue.state, issue.updated_ms);
        issue.state = state;
        issue.updated_ms = at.max(issue.updated_ms + 1);
        let issue = issue.clone();
        let actor_json = match &actor {
            Actor::Person(p) => {
                let name = LINEAR_PEOPLE
                    .iter()
                    .find(|(i, _)| i == p)
                    .map(|(_, n)| *n)
                    .unwrap_or("Someone");
                (p.clone(), name.to_owned())
            }
            Actor::Statsync => (LINEAR_SELF.to_owned(), "statsync".to_owned()),
        };
        let body = payloads::linear_issue("update", &issue, Some(from), &actor_json);
        let delivery = self.post(Sys::Linear, "Issue", body, &actor);
        let (_, name, ty, _) = linear_state(state);
        let native = NativeStatus::Linear {
            state_id: Some(state.to_owned()),
            name: Some(name.to_owned()),
            state_type: Some(ty.to_owned()),
        };
        self.record(
            actor,
            format!("linear:{id}"),
            native,
            issue.updated_ms,
            true,
            Some(delivery.clone()),
            format!("→ {name}"),
        );
        Some(delivery)
    }

    /// A person creates a Linear issue in its current state.
    pub fn create_linear(&mut self, id: &str, person: &str) -> Option<String> {
        let at = self.stamp_ms(Sys::Linear);
        let issue = self.linear.get_mut(id)?;
        issue.updated_ms = at;
        let issue = issue.clone();
        let actor = Actor::Person(person.to_owned());
        let name = LINEAR_PEOPLE
            .iter()
            .find(|(i, _)| *i == person)
            .map(|(_, n)| *n)
            .unwrap_or("Someone");
        let body = payloads::linear_issue("create", &issue, None, &(person.into(), name.into()));
        let delivery = self.post(Sys::Linear, "Issue", body, &actor);
        let (_, name, ty, _) = linear_state(issue.state);
        let native = NativeStatus::Linear {
            state_id: Some(issue.state.to_owned()),
            name: Some(name.to_owned()),
            state_type: Some(ty.to_owned()),
        };
        self.record(
            actor,
            format!("linear:{id}"),
            native,
            at,
            true,
            Some(delivery.clone()),
            format!("created as {name}"),
        );
        Some(delivery)
    }

    /// Opens or closes a GitHub issue (`reason` for a close).
    pub fn set_issue(
        &mut self,
        number: u64,
        open: bool,
        reason: Option<&str>,
        actor: Actor,
    ) -> Option<String> {
        let at = self.stamp_ms(Sys::Github);
        let issue = self.issues.get_mut(&number)?;
        let reason = match (open, issue.open) {
            (true, false) => Some("reopened".to_owned()),
            (true, true) => issue.reason.clone(),
            (false, _) => Some(reason.unwrap_or("completed").to_owned()),
        };
        if issue.open == open && issue.reason == reason {
            return None;
        }
        let state_changed = issue.open != open;
        issue.open = open;
        issue.reason = reason.clone();
        issue.updated_s = (at / 1000).max(issue.updated_s);
        let issue = issue.clone();
        if !state_changed {
            // A closed issue's reason changed: GitHub sends no `closed` again.
            self.log(format!(
                "{REPO}#{number}: state_reason now {reason:?}, no status webhook"
            ));
            return None;
        }
        let sender = self.sender(&actor);
        let action = if open { "reopened" } else { "closed" };
        let body = payloads::github_issue(action, &issue, &sender);
        let delivery = self.post(Sys::Github, "issues", body, &actor);
        let state = match open {
            true => GithubIssueState::Open,
            false => GithubIssueState::Closed {
                state_reason: reason.clone(),
            },
        };
        self.record(
            actor,
            format!("github:{REPO}#{number}"),
            NativeStatus::GithubIssue(state),
            issue.updated_s * 1000,
            open,
            Some(delivery.clone()),
            format!("{action} ({})", reason.unwrap_or_default()),
        );
        Some(delivery)
    }

    /// Sets a board item's Status option.
    pub fn set_item(&mut self, node: &str, option: &'static str, actor: Actor) -> Option<String> {
        let at = self.stamp_ms(Sys::Github);
        let omit = match actor {
            Actor::Statsync => self.net.gen_bool(self.item_value_omitted),
            Actor::Person(_) => self.people.gen_bool(self.item_value_omitted),
        };
        let item = self.items.get_mut(node)?;
        if item.option == Some(option) {
            return None;
        }
        let from = item.option;
        item.option = Some(option);
        item.updated_s = (at / 1000).max(item.updated_s);
        let item = item.clone();
        let sender = self.sender(&actor);
        let body = payloads::project_item(&item, from, !omit, &sender);
        let delivery = self.post(Sys::Github, "projects_v2_item", body, &actor);
        let native = NativeStatus::GithubProjectItem {
            project_node_id: PROJECT.into(),
            field_node_id: STATUS_FIELD.into(),
            option_name: Some(option.into()),
        };
        self.record(
            actor,
            format!("github:{node}"),
            native,
            item.updated_s * 1000,
            true,
            Some(delivery.clone()),
            format!(
                "Status → {option}{}",
                if omit { " (value omitted)" } else { "" }
            ),
        );
        Some(delivery)
    }

    /// A person's pull request action.
    pub fn pull_action(&mut self, number: u64, action: &str, person: &str) -> Option<String> {
        let at = self.stamp_ms(Sys::Github);
        let pr = self.pulls.get_mut(&number)?;
        match action {
            "opened" => {
                pr.opened = true;
                pr.open = true;
            }
            "opened_draft" => {
                pr.opened = true;
                pr.open = true;
                pr.draft = true;
            }
            "ready_for_review" => pr.draft = false,
            "converted_to_draft" => pr.draft = true,
            "review_requested" => {}
            "merged" => {
                pr.open = false;
                pr.merged = true;
                pr.draft = false;
            }
            "closed" => pr.open = false,
            "reopened" => pr.open = true,
            _ => return None,
        }
        pr.updated_s = (at / 1000).max(pr.updated_s);
        let pr = pr.clone();
        let event_action = match action {
            "opened_draft" => "opened",
            "merged" => "closed",
            a => a,
        };
        let body = payloads::pull_request(event_action, &pr, person);
        let actor = Actor::Person(person.to_owned());
        let delivery = self.post(Sys::Github, "pull_request", body, &actor);
        let state = match action {
            "merged" => GithubPullRequestState::Merged,
            "closed" => GithubPullRequestState::ClosedUnmerged,
            "review_requested" => GithubPullRequestState::ReviewRequested,
            _ if pr.draft => GithubPullRequestState::Draft,
            _ => GithubPullRequestState::Open,
        };
        self.record(
            actor,
            format!("github:{REPO}#{number}"),
            NativeStatus::GithubPullRequest { pr: state },
            pr.updated_s * 1000,
            action == "reopened",
            Some(delivery.clone()),
            format!("pull request {action}"),
        );
        Some(delivery)
    }

    fn sender(&self, actor: &Actor) -> String {
        match actor {
            Actor::Person(p) => p.clone(),
            Actor::Statsync => BOT_LOGIN.to_owned(),
        }
    }
}

pub fn iso_ms(ms: i64) -> String {
    at(ms).to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn iso_s(s: i64) -> String {
    at(s * 1000).to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}
