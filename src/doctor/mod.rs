//! `statsync doctor`: one checklist of what stands between a team and a synced change —
//! the database, each system's credentials and what they may do, the webhooks that
//! must reach this service (and whether their recent deliveries did), every live
//! workflow state and board option against the mappings, and each API's clock — each
//! line ok, warn, fail or skip with the one-line fix. `statsync webhooks register`
//! (`register`) creates or mends the webhooks the same reading found wanting.
//!
//! Everything is read live from the APIs, never from the files alone: a team's states
//! are the ones Linear has today.

mod database;
mod github;
mod linear;
pub mod register;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Settings;
use crate::domain::MappingTable;
use crate::startup::Connectors;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
    /// Not checked: nothing is configured for it, or what it needs failed first.
    Skip,
}

/// One line of the checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// database, github, linear, webhooks, mappings or clock.
    pub area: &'static str,
    /// What was checked (`credentials`, `acme/web`, `team ENG`).
    pub name: String,
    pub level: Level,
    pub detail: String,
    /// The one-line fix, for a warning or a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn new(
        area: &'static str,
        name: impl Into<String>,
        level: Level,
        detail: impl Into<String>,
    ) -> Check {
        Check {
            area,
            name: name.into(),
            level,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn ok(area: &'static str, name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(area, name, Level::Ok, detail)
    }

    pub fn fail(
        area: &'static str,
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check::new(area, name, Level::Fail, detail).fix(fix)
    }

    pub fn warn(
        area: &'static str,
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check::new(area, name, Level::Warn, detail).fix(fix)
    }

    pub fn skip(area: &'static str, name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(area, name, Level::Skip, detail)
    }

    fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
}

/// The whole checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// No check failed.
    pub ok: bool,
    pub checks: Vec<Check>,
}

impl Report {
    fn new(checks: Vec<Check>) -> Report {
        Report {
            ok: checks.iter().all(|c| c.level != Level::Fail),
            checks,
        }
    }

    pub fn count(&self, level: Level) -> usize {
        self.checks.iter().filter(|c| c.level == level).count()
    }

    /// The checklist for people: one line per check, its fix beneath.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let level = match c.level {
                Level::Ok => "ok",
                Level::Warn => "WARN",
                Level::Fail => "FAIL",
                Level::Skip => "skip",
            };
            out.push_str(&format!(
                "{level:<5} {:<9} {}: {}\n",
                c.area, c.name, c.detail
            ));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("{:15} fix: {fix}\n", ""));
            }
        }
        out.push_str(&format!(
            "{} ok, {} warnings, {} failed, {} skipped\n",
            self.count(Level::Ok),
            self.count(Level::Warn),
            self.count(Level::Fail),
            self.count(Level::Skip)
        ));
        out
    }
}

/// Runs every check.
pub async fn run(settings: &Settings, connectors: &Connectors) -> Report {
    let mut checks = database::check(settings).await;
    let mappings = match settings.mappings.load() {
        Ok(table) => {
            checks.push(Check::ok("mappings", "file", mappings_source(settings)));
            Some(table)
        }
        Err(e) => {
            checks.push(Check::fail(
                "mappings",
                "file",
                e.to_string(),
                "fix the key it names (`statsync check-config` shows the effective settings)",
            ));
            None
        }
    };
    checks.push(public_url(settings));
    let context = Context {
        settings,
        mappings: mappings.as_ref(),
    };
    checks.extend(github::check(&context, &connectors.github).await);
    checks.extend(linear::check(&context, &connectors.linear).await);
    Report::new(checks)
}

/// What every system's checks read.
struct Context<'a> {
    settings: &'a Settings,
    mappings: Option<&'a MappingTable>,
}

fn mappings_source(settings: &Settings) -> String {
    match settings.mappings.file.as_str() {
        "" => "the shipped config/mappings.toml".to_owned(),
        file => format!("{file} loads"),
    }
}

fn public_url(settings: &Settings) -> Check {
    let url = settings.server.public_url.trim_end_matches('/');
    if url.is_empty() {
        return Check::fail(
            "webhooks",
            "public url",
            "server.public_url is not set: where GitHub and Linear must send webhooks is unknown",
            "set server.public_url (or STATSYNC__SERVER__PUBLIC_URL) to the address they reach this service at",
        );
    }
    Check::ok(
        "webhooks",
        "public url",
        format!("webhooks go to {url}/webhooks/<system>"),
    )
}

/// The clock line for `system`, from the `Date` its API answered: within 5 s is fine,
/// within `tolerance_s` a warning, beyond it deliveries are refused or misdated.
fn clock(system: &str, date: Option<DateTime<Utc>>, tolerance_s: i64) -> Check {
    let Some(date) = date else {
        return Check::skip("clock", system, "its answer carried no Date header");
    };
    let skew = (Utc::now() - date).num_seconds();
    let detail = format!("this machine is {skew:+} s from {system}'s clock");
    match skew.abs() {
        s if s <= 5 => Check::ok("clock", system, detail),
        s if s <= tolerance_s => Check::warn(
            "clock",
            system,
            detail,
            "synchronise this machine's clock (NTP): conflict windows and echo times are compared across clocks",
        ),
        _ => Check::fail(
            "clock",
            system,
            format!("{detail}, beyond the {tolerance_s} s statsync tolerates"),
            "synchronise this machine's clock (NTP): deliveries are refused or misdated until then",
        ),
    }
}

/// A system's live vocabulary held against the mappings.
struct Vocabulary {
    name: String,
    /// `state`, `Status option`.
    what: &'static str,
    /// `the team`, `the board`.
    whose: &'static str,
    /// Said before the detail (a board's title).
    prefix: String,
    count: usize,
    /// Live values no mapping covers.
    unmapped: Vec<String>,
    /// Statuses written as values the system lacks.
    unwritable: Vec<String>,
    fix: String,
}

/// A value no mapping covers fails (its deliveries stop); a status with nothing to
/// write warns (its writes dead-letter, saying why, only when that status comes up).
fn vocabulary_line(v: Vocabulary) -> Check {
    let what = v.what;
    if v.unmapped.is_empty() && v.unwritable.is_empty() {
        let detail = format!(
            "{}all {} {what}s map, every status has a {what} to write",
            v.prefix, v.count
        );
        return Check::ok("mappings", v.name, detail);
    }
    let mut wrong = Vec::new();
    if !v.unmapped.is_empty() {
        wrong.push(format!(
            "{what}s no mapping covers: {}",
            v.unmapped.join(", ")
        ));
    }
    if !v.unwritable.is_empty() {
        wrong.push(format!(
            "statuses written as {what}s {} lacks: {}",
            v.whose,
            v.unwritable.join(", ")
        ));
    }
    let detail = format!("{}{}", v.prefix, wrong.join("; "));
    match v.unmapped.is_empty() {
        true => Check::warn("mappings", v.name, detail, v.fix),
        false => Check::fail("mappings", v.name, detail, v.fix),
    }
}
