//! The seam every external system plugs into. A `Connector` is what statsync knows of
//! one system: how its webhook deliveries are told apart and verified at the door
//! (`Door`, `admit`), how a stored delivery becomes updates (`parse`), how a status is
//! written to it (`write`, its failures classified into `OutboundError`), and, for
//! backfill, how its objects are listed (`listing`).
//! `Registry` holds the connectors by `SystemId`; the HTTP door, the engine and the
//! dispatcher reach a system only through it, so adding one is a folder under
//! `systems/` and an entry in `systems::REGISTERED` (the README's Layout section has
//! the recipe).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use secrecy::SecretString;

use super::limiter::Budget;
use super::outbound::{Delivered, OutboundError, OutboundWrite, RateInfo};
use super::signature::SignatureError;
use super::{Parsed, PayloadError};
use crate::domain::{ExternalRef, Origin, OutboundNative, SystemId};

/// Checks a signature header's value (if present) against the body.
pub type Verify =
    fn(secret: &[u8], body: &[u8], provided: Option<&str>) -> Result<(), SignatureError>;

/// Another place a delivery's credential may come in, besides `signature_header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    /// Another header (an older name of the same one).
    Header(&'static str),
    /// `Authorization: Bearer <credential>`.
    Bearer,
}

/// What most senders post: `application/json`.
pub const JSON: &[&str] = &["application/json"];

/// The suffix of most systems' webhook credential variable: `<SYSTEM>_WEBHOOK_SECRET`.
pub const WEBHOOK_SECRET: &str = "WEBHOOK_SECRET";

/// What a system's deliveries carry, and how their signature is checked.
pub struct Door {
    pub system: SystemId,
    /// The path segment of its webhook: `POST /webhooks/{name}`.
    pub name: &'static str,
    pub signature_header: &'static str,
    /// Where else the credential may come, after `signature_header`: a delivery is
    /// verified when any credential it presents verifies (a sender may send a token in
    /// two headers, each checked in constant time).
    pub credential_also: &'static [CredentialSource],
    pub verify: Verify,
    /// The media types its deliveries are posted as (the body is read as JSON whatever
    /// the header says; these are what the OpenAPI description lists).
    pub media_types: &'static [&'static str],
    /// The sender's delivery id; without one, a digest of the body stands in.
    pub delivery_header: &'static str,
    /// The header naming the event, if the system sends one, and whether a delivery
    /// without it is refused.
    pub event_header: Option<(&'static str, bool)>,
    /// The event of a delivery that names none.
    pub default_event: &'static str,
    /// The events `parse` reads: the only values of metrics' `event` label (the header
    /// is not signed), every other one counted as `other`.
    pub events: &'static [&'static str],
}

/// Why the door refuses a verified delivery.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The body cannot be applied (400, naming the field).
    #[error(transparent)]
    Malformed(#[from] PayloadError),
    /// Signed, but older than the system's replay tolerance (401).
    #[error("{0}")]
    Stale(String),
}

pub trait Connector: Send + Sync {
    fn door(&self) -> &'static Door;

    fn system(&self) -> SystemId {
        self.door().system
    }

    /// The secret its deliveries are signed with; without one its webhook is not served.
    fn webhook_secret(&self) -> Option<&SecretString>;

    /// Before the body is read: why a delivery of `event` is answered `ignored` unread
    /// (it may be larger than any delivery statsync reads), if it is.
    fn ignored_unread(&self, _event: &str) -> Option<String> {
        None
    }

    /// At the door, after `verify`: what the delivery means, or why it is refused.
    fn admit(&self, event: &str, body: &[u8], now: DateTime<Utc>) -> Result<Parsed, Refusal> {
        let _ = now;
        Ok(self.parse(Origin::Webhook, event, body)?)
    }

    /// In the engine: a stored row of this system, by where it came from.
    fn parse(&self, origin: Origin, event: &str, body: &[u8]) -> Result<Parsed, PayloadError>;

    /// Writes `native` (the status mapped into its vocabulary) to the write's object.
    fn write<'a>(
        &'a self,
        write: &'a OutboundWrite,
        native: &'a OutboundNative,
    ) -> BoxFuture<'a, Result<Delivered, OutboundError>>;

    /// Whether a write made through its API comes back as a webhook delivery (an echo
    /// to recognise); a system that only reports its own doings does not.
    fn writes_come_back(&self) -> bool {
        true
    }

    /// Whether a write carries every object the entity is linked to.
    fn writes_links(&self) -> bool {
        false
    }

    /// Reads back the value a stored delivery left out (a GitHub Projects item edit that
    /// named only the field), if the system has such deliveries.
    fn read_back<'a>(
        &'a self,
        _request: ReadBackRequest<'a>,
    ) -> Option<BoxFuture<'a, Result<ReadBack, OutboundError>>> {
        None
    }

    /// For backfill and reconciliation: a listing of one scope (a repository, a team),
    /// if the system can list; read one page at a time, it remembers what it needs
    /// between pages.
    fn listing(&self) -> Option<Box<dyn Listing + '_>> {
        None
    }
}

/// What to read back, and the delivery the value completes.
pub struct ReadBackRequest<'a> {
    /// The object to read (a Projects v2 item's node id).
    pub object: &'a str,
    /// The stored delivery that left the value out, and its id.
    pub delivery: &'a [u8],
    pub delivery_id: &'a str,
    /// This read's number (the lookup's id), named in the value stored.
    pub lookup: i64,
}

/// What a read came to.
pub enum ReadValue {
    /// The delivery completed with the value read, to store with origin `lookup`.
    Delivery {
        body: Vec<u8>,
        event_type: &'static str,
        /// What was read, for the lookup's outcome.
        outcome: String,
    },
    /// Nothing to apply (the object shows no value), with why.
    Nothing(String),
    /// The delivery cannot carry the value read: never retried.
    Unusable(String),
}

pub struct ReadBack {
    pub value: ReadValue,
    pub rate: RateInfo,
}

/// Which page of a scope's listing to read.
pub struct ListFrom<'a> {
    /// A repository (`owner/repo`), a team key: what the system lists by.
    pub scope: &'a str,
    /// Only what changed after this (an incremental run); everything without it.
    pub since: Option<DateTime<Utc>>,
    pub page_size: u32,
    /// Where the previous page said the next one is; `None` for the first.
    pub position: Option<&'a str>,
    /// The first page as last read, `(address, validator)`: when the system can tell
    /// it is unchanged, the page is not read again (GitHub's 304, free of rate budget).
    pub unchanged_since: Option<(&'a str, &'a str)>,
}

/// One object a listing found, stored as a delivery of origin `backfill`.
pub struct ListedObject {
    /// Unique per object and version (`backfill:<system>:<scope>:<id>:<updated>`): an
    /// unchanged object listed again is a duplicate.
    pub delivery_id: String,
    pub event_type: &'static str,
    pub body: Vec<u8>,
    pub target: ExternalRef,
    pub updated_at: Option<DateTime<Utc>>,
}

/// One page of a listing.
pub struct ListedPage {
    pub items: Vec<ListedObject>,
    /// Where the next page is, if there is one.
    pub next: Option<String>,
    pub rate: RateInfo,
    /// How far through the listing this page is, when the system tells.
    pub percent: Option<u8>,
    /// The first page's `(address, validator)`, to ask with `unchanged_since` next time.
    pub first_page: Option<(String, Option<String>)>,
}

/// A listing in progress.
pub trait Listing: Send {
    /// The page `from` names; `Ok(None)` when it is the first page and unchanged since
    /// `from.unchanged_since`.
    fn page<'a>(
        &'a mut self,
        from: ListFrom<'a>,
    ) -> BoxFuture<'a, Result<Option<ListedPage>, OutboundError>>;
}

/// What a connector registered beyond the built-in three is built from.
pub struct Setup<'a> {
    /// Its `[connectors.<system>]` section, if the settings have one (else its defaults).
    pub section: Option<&'a serde_json::Value>,
    /// `<SYSTEM>_<webhook_credential>` (`_WEBHOOK_SECRET`): without it, its webhook is
    /// not served.
    pub webhook_secret: Option<SecretString>,
    /// `<SYSTEM>_API_TOKEN`: what its writes authenticate with.
    pub api_token: Option<SecretString>,
    /// The outbound HTTP client every connector shares (`dispatch.request_timeout_ms`).
    pub http: reqwest::Client,
}

impl Setup<'_> {
    /// The connector's own settings type from its section, its defaults where the
    /// section (or a key of it) is absent; an error names `connectors.<system>`.
    pub fn settings<T: serde::de::DeserializeOwned + Default>(
        &self,
        system: SystemId,
    ) -> Result<T, String> {
        match self.section {
            None => Ok(T::default()),
            Some(section) => {
                T::deserialize(section).map_err(|e| format!("`connectors.{system}` {e}"))
            }
        }
    }
}

/// A connector, and the request budget its calls spend.
pub type Built = (Arc<dyn Connector>, Budget);

/// A connector beyond the built-in three: its system, and how it is built. Listed in
/// `systems::REGISTERED`.
pub struct Registration {
    pub system: SystemId,
    /// Its webhook credential is `<SYSTEM>_<this>`: `WEBHOOK_SECRET` for a signing
    /// secret, or the name its protocol gives it (A2A's `NOTIFICATION_TOKEN`).
    pub webhook_credential: &'static str,
    /// The connector and the request budget its calls spend, or why the settings
    /// cannot build it (named by key).
    pub build: fn(Setup<'_>) -> Result<Built, String>,
}

/// Every connector, by system, with the request budget each one's calls spend.
pub struct Registry {
    connectors: BTreeMap<SystemId, Arc<dyn Connector>>,
    budgets: BTreeMap<SystemId, Budget>,
}

impl Registry {
    pub fn new(entries: Vec<Built>) -> Registry {
        let mut registry = Registry {
            connectors: BTreeMap::new(),
            budgets: BTreeMap::new(),
        };
        for (connector, budget) in entries {
            let system = connector.system();
            registry.budgets.insert(system, budget);
            registry.connectors.insert(system, connector);
        }
        registry
    }

    pub fn get(&self, system: SystemId) -> Option<&dyn Connector> {
        self.connectors.get(&system).map(|c| c.as_ref())
    }

    /// The connector whose webhook is `POST /webhooks/{name}`.
    pub fn by_door(&self, name: &str) -> Option<&dyn Connector> {
        self.connectors
            .values()
            .find(|c| c.door().name == name)
            .map(|c| c.as_ref())
    }

    pub fn systems(&self) -> impl Iterator<Item = SystemId> + '_ {
        self.connectors.keys().copied()
    }

    pub fn budget(&self, system: SystemId) -> Option<&Budget> {
        self.budgets.get(&system)
    }
}
