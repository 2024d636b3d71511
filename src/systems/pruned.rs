//! A JSON body parsed into a `Value` that keeps only the paths a parser reads: the rest
//! is scanned (and so still validated) but never allocated. A GitHub delivery is 10-60 KB
//! of which statsync reads a few hundred bytes; building the whole tree was most of the
//! cost of reading it.
//!
//! Every lookup of a kept path answers as it would on the whole tree: a value that is
//! not an object where the paths go on is kept whole, so `lookup` reports its kind just
//! the same; a repeated key is the last one, as in `serde_json::Value`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The paths kept, as a tree of object keys; a leaf keeps the whole value under it.
#[derive(Debug, Default)]
pub struct Keep {
    children: Vec<(&'static str, Keep)>,
}

impl Keep {
    /// From dotted paths (`issue.number`, `changes`).
    pub fn paths(paths: &[&'static str]) -> Keep {
        let mut root = Keep::default();
        for path in paths {
            let mut node = &mut root;
            for segment in path.split('.') {
                let at = match node.children.iter().position(|(k, _)| *k == segment) {
                    Some(i) => i,
                    None => {
                        node.children.push((segment, Keep::default()));
                        node.children.len() - 1
                    }
                };
                node = &mut node.children[at].1;
            }
        }
        root
    }

    fn child(&self, key: &str) -> Option<&Keep> {
        self.children
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, n)| n)
    }

    fn is_leaf(&self) -> bool {
        self.children.is_empty()
    }
}

/// Parses `text` keeping what `keep` names.
pub fn parse(text: &str, keep: &Keep) -> serde_json::Result<Value> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Pruned(keep).deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

struct Pruned<'k>(&'k Keep);

impl<'de> DeserializeSeed<'de> for Pruned<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match self.0.is_leaf() {
            true => serde::Deserialize::deserialize(d),
            false => d.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for Pruned<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut kept = Map::new();
        // Keys are borrowed from the body where they can be: most are skipped.
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match self.0.child(&key) {
                Some(node) => {
                    let value = map.next_value_seed(Pruned(node))?;
                    kept.insert(key.into_owned(), value);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(kept))
    }

    // Anything but an object where the kept paths go on is kept whole.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// An object key, borrowed unless it had to be unescaped.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_kept_paths_are_kept_and_anything_else_where_they_go_on_is_kept_whole() {
        let keep = Keep::paths(&["action", "issue.number", "issue.pull_request", "changes"]);
        let text = r#"{"action":"closed","repository":{"full_name":"a/b","x":[1,2]},
            "issue":{"number":3,"title":"t","pull_request":{"url":"u"},"user":{"login":"o"}},
            "changes":{"title":{"from":"x"}},"action":"reopened"}"#;
        let v = parse(text, &keep).unwrap();
        assert_eq!(
            v,
            json!({"action": "reopened", "issue": {"number": 3, "pull_request": {"url": "u"}},
                   "changes": {"title": {"from": "x"}}})
        );
        // Not an object where the paths go on: kept as it is, so lookups fail alike.
        let v = parse(r#"{"issue":"nope","action":[1,{"a":2}]}"#, &keep).unwrap();
        assert_eq!(v, json!({"issue": "nope", "action": [1, {"a": 2}]}));
        assert_eq!(parse("[1,2]", &keep).unwrap(), json!([1, 2]));
        // An escaped key is unescaped before it is matched, as serde_json does.
        let v = parse(r#"{"act\u0069on":"x"}"#, &keep).unwrap();
        assert_eq!(v, json!({"action": "x"}));
    }

    #[test]
    fn what_is_not_kept_is_still_validated() {
        let keep = Keep::paths(&["action"]);
        for bad in [
            r#"{"action":"x","other":{"a":}}"#,
            r#"{"action":"x","other":"\q"}"#,
            r#"{"action":"x"} trailing"#,
            r#"{"action":"x","other":[1,2}"#,
        ] {
            assert!(parse(bad, &keep).is_err(), "{bad}");
            assert!(serde_json::from_str::<Value>(bad).is_err(), "{bad}");
        }
    }
}
