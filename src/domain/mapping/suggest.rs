//! `statsync mappings suggest`: a mappings.toml section for one Linear team's actual
//! workflow states, or one Projects v2 board's Status options, with a comment on each
//! guess. A state's type bounds the guess (a `completed` state is done, whatever it is
//! called); its name refines it within the type ("QA" of type started reads as review).
//!
//! What is printed loads as it stands: every canonical status is written to some state,
//! and each state accepts inbound every status written to it, so statsync's own writes
//! never come back as changes (the check `MappingTable` makes at start).

use super::super::CanonicalStatus::{self, *};

/// Words in a state's or option's name, most specific first.
const WORDS: &[(&[&str], CanonicalStatus, &str)] = &[
    (
        &["cancel", "won't", "wont", "duplicate", "reject", "obsolete"],
        Cancelled,
        "cancelled",
    ),
    (
        &["review", "qa", "test", "verif", "approv"],
        InReview,
        "review",
    ),
    (
        &["block", "wait", "hold", "paused", "stuck"],
        Blocked,
        "blocked",
    ),
    (&["triage", "inbox"], Triage, "triage"),
    (
        &["backlog", "icebox", "someday", "later"],
        Backlog,
        "backlog",
    ),
    (
        &[
            "done", "complete", "shipped", "released", "merged", "closed",
        ],
        Done,
        "done",
    ),
    (
        &[
            "progress", "doing", "develop", "started", "working", "wip", "active",
        ],
        InProgress,
        "in progress",
    ),
    (
        &["todo", "to do", "ready", "next", "planned", "selected"],
        Todo,
        "to do",
    ),
];

/// The status a name's words say, and the word that said it.
pub fn by_name(name: &str) -> Option<(CanonicalStatus, &'static str)> {
    let lower = name.to_lowercase();
    WORDS.iter().find_map(|(words, status, what)| {
        words
            .iter()
            .any(|w| lower.contains(w))
            .then_some((*status, *what))
    })
}

/// A Linear state's status: its type decides, its name refines a `started`,
/// `unstarted` or `backlog` state.
pub fn linear_state(name: &str, state_type: &str) -> (CanonicalStatus, String) {
    let said = by_name(name);
    let refine = |allowed: &[CanonicalStatus], default: CanonicalStatus| match said {
        Some((status, word)) if allowed.contains(&status) && status != default => {
            (status, format!("type {state_type}; its name says {word}"))
        }
        _ => (default, format!("type {state_type}")),
    };
    match state_type {
        "triage" => (Triage, "type triage".into()),
        "backlog" => refine(&[Triage], Backlog),
        "unstarted" => refine(&[Blocked, Backlog], Todo),
        "started" => refine(&[InReview, Blocked], InProgress),
        "completed" => (Done, "type completed".into()),
        "canceled" | "duplicate" => (Cancelled, format!("type {state_type}")),
        other => match said {
            Some((status, word)) => (
                status,
                format!("type {other} is unknown; its name says {word}"),
            ),
            None => (
                Todo,
                format!("type {other} is unknown; nothing in its name: todo"),
            ),
        },
    }
}

/// When no native value reads as a status, the nearest one written instead.
fn fallbacks(status: CanonicalStatus) -> &'static [CanonicalStatus] {
    match status {
        Triage => &[Backlog, Todo],
        Backlog => &[Todo, Triage],
        Todo => &[Backlog, Triage],
        InProgress => &[InReview, Todo],
        InReview => &[InProgress],
        Blocked => &[InProgress, Todo],
        Done => &[],
        Cancelled => &[Done],
    }
}

/// One native value with the status it reads as.
#[derive(Debug, Clone, PartialEq)]
pub struct Guess {
    pub native: String,
    pub status: CanonicalStatus,
    pub why: String,
}

/// Which native value each canonical status is written as: the first guessed as it,
/// else the first of its fallbacks'. `None` where nothing fits.
pub fn outbound(guesses: &[Guess]) -> Vec<(CanonicalStatus, Option<&Guess>)> {
    let first = |s: CanonicalStatus| guesses.iter().find(|g| g.status == s);
    CanonicalStatus::ALL
        .iter()
        .map(|s| {
            let pick = first(*s).or_else(|| fallbacks(*s).iter().find_map(|f| first(*f)));
            (*s, pick)
        })
        .collect()
}

/// The inbound value of `guess`: its status, accepting every other status written to it.
fn inbound_value(guess: &Guess, out: &[(CanonicalStatus, Option<&Guess>)]) -> String {
    let mut also: Vec<CanonicalStatus> = out
        .iter()
        .filter(|(s, g)| g.is_some_and(|g| g.native == guess.native) && *s != guess.status)
        .map(|(s, _)| *s)
        .collect();
    if also.is_empty() {
        return format!("\"{}\"", guess.status);
    }
    also.insert(0, guess.status);
    let list: Vec<String> = also.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "{{ compatible = [{}], default = \"{}\" }}",
        list.join(", "),
        guess.status
    )
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The `[linear.teams.<team>.*]` tables for a team's states (name, type), in position
/// order.
pub fn render_linear(team: &str, states: &[(String, String)]) -> String {
    let guesses: Vec<Guess> = states
        .iter()
        .map(|(name, state_type)| {
            let (status, why) = linear_state(name, state_type);
            Guess {
                native: name.clone(),
                status,
                why,
            }
        })
        .collect();
    let out = outbound(&guesses);
    let type_of = |name: &str| {
        states
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
            .unwrap_or("")
    };
    let mut text = format!(
        "# Linear team {team}: its {} workflow states, as statsync reads and writes them.\n\
         # Paste into your mappings file (mappings.file, a copy of config/mappings.toml).\n\
         [linear.teams.{team}.states]\n",
        states.len()
    );
    for g in &guesses {
        text.push_str(&format!(
            "{} = {}  # {}\n",
            quoted(&g.native),
            inbound_value(g, &out),
            g.why
        ));
    }
    text.push_str(&format!("\n[linear.teams.{team}.outbound]\n"));
    for (status, pick) in &out {
        match pick {
            Some(g) => text.push_str(&format!(
                "{status} = {{ type = {}, name = {} }}{}\n",
                quoted(type_of(&g.native)),
                quoted(&g.native),
                match g.status == *status {
                    true => String::new(),
                    false => format!("  # no state reads as {status}: the nearest"),
                }
            )),
            None => text.push_str(&format!(
                "# {status}: no state of team {team} fits; add one in Linear, or writing \
                 {status} there fails\n"
            )),
        }
    }
    text
}

/// The `[github.project.*]` tables for a board's Status options, in board order.
/// Options whose names say nothing are listed for a person to map.
pub fn render_project(label: &str, options: &[String]) -> String {
    let (guesses, unknown): (Vec<Option<Guess>>, Vec<&String>) = (
        options
            .iter()
            .map(|o| {
                by_name(o).map(|(status, word)| Guess {
                    native: o.clone(),
                    status,
                    why: format!("its name says {word}"),
                })
            })
            .collect(),
        options.iter().filter(|o| by_name(o).is_none()).collect(),
    );
    let guesses: Vec<Guess> = guesses.into_iter().flatten().collect();
    let out = outbound(&guesses);
    let mut text = format!(
        "# Projects v2 board {label}: its {} Status options, as statsync reads and writes them.\n\
         # Paste into your mappings file (mappings.file, a copy of config/mappings.toml), in\n\
         # place of the shipped [github.project.*] tables, or under\n\
         # [github.repos.\"owner/repo\".project.*] for one repository's items.\n\
         [github.project.options]\n",
        options.len()
    );
    for g in &guesses {
        text.push_str(&format!(
            "{} = {}  # {}\n",
            quoted(&g.native),
            inbound_value(g, &out),
            g.why
        ));
    }
    for o in unknown {
        text.push_str(&format!(
            "# {} = \"…\"  # nothing in its name says which status: map it by hand\n",
            quoted(o)
        ));
    }
    text.push_str("\n[github.project.outbound]\n");
    for (status, pick) in &out {
        match pick {
            Some(g) => text.push_str(&format!(
                "{status} = {}{}\n",
                quoted(&g.native),
                match g.status == *status {
                    true => String::new(),
                    false => format!("  # no option reads as {status}: the nearest"),
                }
            )),
            None => text.push_str(&format!(
                "# {status}: no option of the board fits; add one, or writing {status} fails\n"
            )),
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MappingTable, NativeStatus};

    fn states(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    /// The shipped mappings with `section` appended load (which checks that every
    /// outbound value maps back to a set containing its status).
    fn loads_with(section: &str) -> MappingTable {
        let shipped = include_str!("../../../config/mappings.toml");
        let text = format!("{shipped}\n{section}");
        MappingTable::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{section}"))
    }

    #[test]
    fn a_started_state_whose_name_says_review_reads_as_review() {
        assert_eq!(linear_state("QA", "started").0, InReview);
        assert_eq!(linear_state("Code Review", "started").0, InReview);
        assert_eq!(linear_state("Waiting on customer", "started").0, Blocked);
        assert_eq!(linear_state("Doing", "started").0, InProgress);
        // The type bounds the name: a completed "QA passed" is done.
        assert_eq!(linear_state("QA passed", "completed").0, Done);
        assert_eq!(linear_state("Won't fix", "canceled").0, Cancelled);
    }

    #[test]
    fn a_teams_section_loads_and_maps_its_states_as_guessed() {
        let team = states(&[
            ("Backlog", "backlog"),
            ("Todo", "unstarted"),
            ("Doing", "started"),
            ("QA", "started"),
            ("Shipped", "completed"),
            ("Won't do", "canceled"),
        ]);
        let section = render_linear("ENG", &team);
        assert!(section.contains("\"QA\" = \"in_review\"  # type started; its name says review"));
        // No state reads as blocked: it is written to the nearest, which accepts it.
        assert!(section.contains("blocked = { type = \"started\", name = \"Doing\" }"));
        let table = loads_with(&section);
        let qa = NativeStatus::Linear {
            state_id: None,
            name: Some("QA".into()),
            state_type: Some("started".into()),
        };
        let m = table.inbound(&qa, Some("ENG")).unwrap();
        assert_eq!(m.default_status(), InReview);
    }

    #[test]
    fn a_boards_section_loads_and_names_the_options_it_cannot_guess() {
        let options: Vec<String> = [
            "Inbox",
            "Ready",
            "In progress",
            "Code review",
            "Shipped",
            "Parking lot",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let section = render_project("acme/7", &options);
        assert!(section.contains("# \"Parking lot\" = \"…\""), "{section}");
        assert!(section.contains("in_review = \"Code review\""), "{section}");
        assert!(section.contains("cancelled = \"Shipped\"  # no option reads as cancelled"));
        // Pasted for one repository (the shipped shared tables stay).
        let one_repo = section.replace("[github.project.", "[github.repos.\"acme/web\".project.");
        let table = loads_with(&one_repo);
        let option = |name: &str| NativeStatus::GithubProjectItem {
            project_node_id: "PVT_1".into(),
            field_node_id: "PVTSSF_1".into(),
            option_name: Some(name.into()),
        };
        let shipped = table.inbound(&option("Shipped"), Some("acme/web")).unwrap();
        assert_eq!(shipped.default_status(), Done);
        assert!(shipped.compatible().contains(&Cancelled));
    }
}
