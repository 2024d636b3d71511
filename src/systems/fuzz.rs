//! Fuzzing every payload parser and signature check: arbitrary bytes, deep nesting, and
//! structured mutations of real deliveries (a field dropped, a value of another type)
//! that reach past the JSON parser into the field readers. Every outcome must be `Ok` or
//! a `PayloadError` naming the field that was changed; nothing may panic.

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;

use super::test_support::{agent_report, arb_json, linear_issue_update, GITHUB_FIXTURES};
use super::{agentapi, github, linear, signature, Parsed, PayloadError};

/// One real delivery to mutate, and the parser it goes to.
#[derive(Clone, Copy, Debug)]
enum Source {
    /// Index into `GITHUB_FIXTURES`.
    Github(usize),
    Linear,
    Agent,
}

impl Source {
    fn all() -> Vec<Source> {
        (0..GITHUB_FIXTURES.len())
            .map(Source::Github)
            .chain([Source::Linear, Source::Agent])
            .collect()
    }

    fn base(self) -> Value {
        match self {
            // unwrap: the fixtures are GitHub's own JSON.
            Source::Github(i) => serde_json::from_slice(GITHUB_FIXTURES[i].1).unwrap(),
            Source::Linear => linear_issue_update(),
            Source::Agent => agent_report(),
        }
    }

    fn parse(self, body: &[u8]) -> Result<Parsed, PayloadError> {
        match self {
            Source::Github(i) => {
                let event = GITHUB_FIXTURES[i].0.split('.').next().unwrap_or_default();
                github::webhook::parse(event, body)
            }
            Source::Linear => linear::webhook::parse(body).map(|d| d.parsed),
            Source::Agent => agentapi::webhook::parse(body),
        }
    }
}

/// How one node of a delivery is changed.
#[derive(Clone, Debug)]
enum Mutation {
    Drop,
    /// The same content as another JSON type: `7` → `"7"`, `{…}` → `[…]`, `"x"` → `0`.
    Retype,
    Replace(Value),
}

/// The dotted path of every node below `value` (array elements by index).
fn paths(value: &Value) -> Vec<String> {
    fn walk(value: &Value, prefix: &str, out: &mut Vec<String>) {
        let children: Vec<(String, &Value)> = match value {
            Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), v))
                .collect(),
            _ => return,
        };
        for (key, child) in children {
            let path = if prefix.is_empty() {
                key
            } else {
                format!("{prefix}.{key}")
            };
            out.push(path.clone());
            walk(child, &path, out);
        }
    }
    let mut out = Vec::new();
    walk(value, "", &mut out);
    out
}

fn retyped(value: &Value) -> Value {
    match value {
        Value::Null => Value::Object(Default::default()),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Number(n) => Value::String(n.to_string()),
        Value::String(s) => s.parse::<f64>().map(Value::from).unwrap_or(Value::from(0)),
        Value::Array(items) => Value::Object(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), v.clone()))
                .collect(),
        ),
        Value::Object(map) => Value::Array(map.values().cloned().collect()),
    }
}

/// `root` with `mutation` applied at the dotted `path` (a path that exists in it).
fn mutated(mut root: Value, path: &str, mutation: &Mutation) -> Value {
    let (parent, last) = path.rsplit_once('.').unwrap_or(("", path));
    let mut node = &mut root;
    for segment in parent.split('.').filter(|s| !s.is_empty()) {
        node = match node {
            Value::Object(map) => map.get_mut(segment),
            Value::Array(items) => segment.parse().ok().and_then(|i: usize| items.get_mut(i)),
            _ => None,
        }
        .expect("the path exists");
    }
    if let (Mutation::Drop, Value::Object(map)) = (mutation, &mut *node) {
        map.remove(last);
        return root;
    }
    let slot = match node {
        Value::Object(map) => map.get_mut(last),
        Value::Array(items) => last.parse().ok().and_then(|i: usize| items.get_mut(i)),
        _ => None,
    }
    .expect("the path exists");
    *slot = match mutation {
        // Dropping an element would shift the others; a null keeps the indexes.
        Mutation::Drop => Value::Null,
        Mutation::Retype => retyped(slot),
        Mutation::Replace(v) => v.clone(),
    };
    root
}

/// The outcome of a mutated delivery must be `Ok`, or an error that says what was wrong;
/// a field-level error must name the mutated path, something under it, or an object on
/// the way to it.
fn check_outcome(
    outcome: &Result<Parsed, PayloadError>,
    mutated_path: Option<&str>,
) -> Result<(), String> {
    let Err(err) = outcome else { return Ok(()) };
    let message = err.to_string();
    if message.trim().is_empty() {
        return Err(format!("an empty error message: {err:?}"));
    }
    let field = match err {
        PayloadError::Json(_) => return Ok(()),
        PayloadError::Missing(field) | PayloadError::Invalid { field, .. } => field,
    };
    if field.is_empty() {
        return Err(format!("an error naming no field: {err:?}"));
    }
    match mutated_path {
        Some(path) if !(field == "payload" || related(field, path)) => Err(format!(
            "`{path}` was changed but the error names `{field}`: {err}"
        )),
        _ => Ok(()),
    }
}

/// `a` and `b` are the same path, or one is an ancestor of the other.
fn related(a: &str, b: &str) -> bool {
    let under = |long: &str, short: &str| {
        long == short || long.strip_prefix(short).is_some_and(|r| r.starts_with('.'))
    };
    under(a, b) || under(b, a)
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => Just(Mutation::Drop),
        2 => Just(Mutation::Retype),
        1 => arb_json().prop_map(Mutation::Replace),
    ]
}

#[test]
fn dropping_or_retyping_any_single_field_of_a_real_delivery_is_ok_or_names_it() {
    let mut named = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    let mut tried = 0;
    for source in Source::all() {
        let base = source.base();
        for path in paths(&base) {
            for m in [Mutation::Drop, Mutation::Retype] {
                tried += 1;
                let body = serde_json::to_vec(&mutated(base.clone(), &path, &m)).unwrap();
                let outcome = source.parse(&body);
                if let Err(why) = check_outcome(&outcome, Some(&path)) {
                    failures.push(format!("{source:?} {m:?} {path}: {why}"));
                }
                if let Err(PayloadError::Missing(f) | PayloadError::Invalid { field: f, .. }) =
                    outcome
                {
                    named.insert(f);
                }
            }
        }
    }
    assert!(tried > 1_000, "the sweep reached only {tried} mutations");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The sweep reached the field readers of every parser, not only the JSON parser.
    for deep in [
        "pull_request.number",
        "repository.full_name",
        "issue.number",
        "projects_v2_item.node_id",
        "data.id",
        "data.updatedAt",
        "webhookTimestamp",
        "taskId",
        "timestamp",
    ] {
        assert!(named.contains(deep), "no error named `{deep}`: {named:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn several_mutations_of_a_real_delivery_never_panic(
        which in 0usize..Source::all().len(),
        edits in prop::collection::vec((any::<Index>(), mutation()), 1..5),
    ) {
        let source = Source::all()[which];
        let mut value = source.base();
        for (at, m) in &edits {
            let all = paths(&value);
            if all.is_empty() {
                break;
            }
            value = mutated(value, &all[at.index(all.len())], m);
        }
        let body = serde_json::to_vec(&value).unwrap();
        let outcome = source.parse(&body);
        prop_assert!(check_outcome(&outcome, None).is_ok(), "{outcome:?}");
    }

    #[test]
    fn a_real_delivery_cut_or_spliced_anywhere_never_panics(
        which in 0usize..Source::all().len(),
        cut in any::<Index>(),
        splice in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        let source = Source::all()[which];
        let body = serde_json::to_vec(&source.base()).unwrap();
        let at = cut.index(body.len());
        let mut spliced = body[..at].to_vec();
        spliced.extend_from_slice(&splice);
        spliced.extend_from_slice(&body[at..]);
        for attempt in [&body[..at], spliced.as_slice()] {
            let outcome = source.parse(attempt);
            prop_assert!(check_outcome(&outcome, None).is_ok(), "{outcome:?}");
        }
    }

    #[test]
    fn nesting_of_any_depth_in_any_field_is_an_error_not_a_crash(
        which in 0usize..Source::all().len(),
        field in any::<Index>(),
        depth in 0usize..20_000,
    ) {
        let source = Source::all()[which];
        let base = source.base();
        let keys: Vec<&String> = base.as_object().map(|m| m.keys().collect()).unwrap_or_default();
        let key = keys[field.index(keys.len())];
        // Spliced as text: a `Value` this deep could not be built or dropped safely.
        let marker = "\"__deep__\"";
        let mut value = base.clone();
        value[key.as_str()] = Value::String("__deep__".into());
        let text = serde_json::to_string(&value).unwrap().replacen(
            marker,
            &format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
            1,
        );
        let outcome = source.parse(text.as_bytes());
        if depth > 200 {
            // Too deep to read is an error; a field the parser skips unread (GitHub's
            // `READS`) is scanned without recursion and reads as if it were absent.
            let mut without = base.clone();
            without.as_object_mut().unwrap().remove(key.as_str());
            let skipped = source.parse(&serde_json::to_vec(&without).unwrap());
            prop_assert!(
                matches!(outcome, Err(PayloadError::Json(_))) || outcome == skipped,
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn signature_checks_never_panic_on_any_header(
        secret in prop::collection::vec(any::<u8>(), 0..80),
        body in prop::collection::vec(any::<u8>(), 0..256),
        header in prop_oneof![
            ".{0,80}",
            "sha256=.{0,70}",
            "sha256=[0-9a-fA-F]{60,68}",
            "[0-9a-fA-F]{64}",
        ],
    ) {
        let signed = signature::sign_prefixed(&secret, &body);
        for verify in [signature::verify_github, signature::verify_agentapi] {
            let outcome = verify(&secret, &body, Some(&header));
            prop_assert_eq!(outcome.is_ok(), header.eq_ignore_ascii_case(&signed)
                && header.starts_with(signature::SHA256_PREFIX));
        }
        let outcome = signature::verify_linear(&secret, &body, Some(&header));
        prop_assert_eq!(
            outcome.is_ok(),
            header.eq_ignore_ascii_case(&signed[signature::SHA256_PREFIX.len()..])
        );
    }

    #[test]
    fn changing_any_byte_of_a_signed_body_fails_verification(
        secret in prop::collection::vec(any::<u8>(), 1..64),
        body in prop::collection::vec(any::<u8>(), 1..512),
        at in any::<Index>(),
        flip in 1u8..=255,
    ) {
        let prefixed = signature::sign_prefixed(&secret, &body);
        let hex = signature::sign_hex(&secret, &body);
        let mut changed = body.clone();
        changed[at.index(body.len())] ^= flip;
        for verify in [signature::verify_github, signature::verify_agentapi] {
            prop_assert_eq!(verify(&secret, &body, Some(&prefixed)), Ok(()));
            prop_assert_eq!(
                verify(&secret, &changed, Some(&prefixed)),
                Err(signature::SignatureError::Mismatch)
            );
        }
        prop_assert_eq!(signature::verify_linear(&secret, &body, Some(&hex)), Ok(()));
        prop_assert_eq!(
            signature::verify_linear(&secret, &changed, Some(&hex)),
            Err(signature::SignatureError::Mismatch)
        );
        // A byte added or removed at the end is a different body too.
        let longer = [body.as_slice(), &[0]].concat();
        prop_assert!(signature::verify_linear(&secret, &longer, Some(&hex)).is_err());
        prop_assert!(signature::verify_linear(&secret, &body[..body.len() - 1], Some(&hex)).is_err());
    }

    #[test]
    fn changing_any_digit_of_a_signature_fails_verification(
        body in prop::collection::vec(any::<u8>(), 0..256),
        at in 0usize..64,
        digit in prop::sample::select(b"0123456789abcdefg-Z ".to_vec()),
    ) {
        let hex = signature::sign_hex(b"secret", &body);
        let mut changed = hex.clone().into_bytes();
        prop_assume!(changed[at] != digit);
        changed[at] = digit;
        let changed = String::from_utf8(changed).unwrap();
        let expected = if digit.is_ascii_hexdigit() {
            signature::SignatureError::Mismatch
        } else {
            signature::SignatureError::Malformed("not hexadecimal".into())
        };
        prop_assert_eq!(signature::verify_linear(b"secret", &body, Some(&changed)), Err(expected));
    }
}
