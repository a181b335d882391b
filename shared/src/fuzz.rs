//! Inputs for the parsers' property tests (#23.8): any JSON, and valid documents mutated one
//! field at a time, so a test can ask both "never a panic" and "the error names the field".

use proptest::prelude::*;
use serde_json::{Map, Value};

/// Cases per property; the README's reliability table reports it.
pub const CASES: u32 = 2000;

pub fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text a parser may meet: empty, control characters, any Unicode, numbers as text, very long.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z0-9_:/.-]{1,24}",
        "\\PC{0,12}",
        ".{0,12}",
        "[\\x00-\\x1f\\x7f]{1,3}",
        any::<i64>().prop_map(|n| n.to_string()),
        Just("18446744073709551616".to_owned()),
        Just("1e400".to_owned()),
        (1usize..70_000).prop_map(|n| "x".repeat(n)),
    ]
}

/// Numbers at the edges: zero, negatives, beyond `u32`/`u16`, `u64::MAX`, `i64::MIN`, fractions,
/// `1e308`.
pub fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u16>().prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        Just(Value::from(i64::MIN)),
        Just(Value::from(0)),
        Just(Value::from(65_536)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        Just(Value::from(1e308)),
        Just(Value::from(-0.5)),
    ]
}

/// Any JSON value: scalars from `text` and `number`, arrays and objects nested a few levels, and
/// now and then a value nested 200 deep.
pub fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ];
    let nested = leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((text(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    });
    prop_oneof![
        20 => nested,
        1 => (1usize..200).prop_map(deep),
    ]
}

/// A value nested `depth` arrays and objects deep.
fn deep(depth: usize) -> Value {
    (0..depth).fold(Value::from(1), |v, i| match i % 2 {
        0 => Value::Array(vec![v]),
        _ => Value::Object(Map::from_iter([("k".to_owned(), v)])),
    })
}

/// One change to a valid document: a field set to any value, or removed.
#[derive(Debug, Clone)]
pub enum Mutation {
    Set(String, Value),
    Remove(String),
}

impl Mutation {
    /// The field it changes.
    pub fn field(&self) -> &str {
        match self {
            Mutation::Set(f, _) | Mutation::Remove(f) => f,
        }
    }

    pub fn apply(&self, valid: &Value) -> Value {
        let mut v = valid.clone();
        if let Value::Object(map) = &mut v {
            match self {
                Mutation::Set(f, x) => {
                    map.insert(f.clone(), x.clone());
                }
                Mutation::Remove(f) => {
                    map.remove(f);
                }
            }
        }
        v
    }
}

/// A change to one of `fields` (the contract's), or to a field of any name.
pub fn mutation(fields: &'static [&'static str]) -> impl Strategy<Value = Mutation> {
    let name = prop_oneof![
        4 => proptest::sample::select(fields).prop_map(str::to_owned),
        1 => text(),
    ];
    (name, json(), any::<bool>()).prop_map(|(f, v, remove)| match remove {
        true => Mutation::Remove(f),
        false => Mutation::Set(f, v),
    })
}

/// Raw text for a secret value: any text, or a valid document's JSON cut short or with a
/// character spliced in.
pub fn raw(valid: Value) -> impl Strategy<Value = String> {
    let doc = valid.to_string();
    let len = doc.len();
    prop_oneof![
        text(),
        json().prop_map(|v| v.to_string()),
        (0..=len).prop_map({
            let doc = doc.clone();
            move |at| doc.chars().take(at).collect()
        }),
        (0..=len, any::<char>()).prop_map(move |(at, c)| {
            let mut s: String = doc.chars().take(at).collect();
            s.push(c);
            s.extend(doc.chars().skip(at));
            s
        }),
    ]
}

/// What a parser must answer to a valid document with `m` applied: accepted, or an error naming
/// the changed field (in backquotes, as every field error does); a field outside `contract`
/// changes nothing (a value nested past serde_json's limit fails the whole document). No error
/// may carry `secret`, the document's credential.
pub fn check_named(
    m: &Mutation,
    contract: &[&str],
    secret: &str,
    result: Result<(), String>,
) -> Result<(), TestCaseError> {
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.contains(secret) => Err(TestCaseError::fail(format!(
            "{m:?}: echoes the secret: {e}"
        ))),
        // serde_json refuses a document nested deeper than 128 as a whole.
        Err(e) if e.contains("recursion limit exceeded") => Ok(()),
        Err(e) if !contract.contains(&m.field()) => Err(TestCaseError::fail(format!(
            "{m:?}: an unknown field was refused: {e}"
        ))),
        Err(e) if e.contains(&format!("`{}`", m.field())) => Ok(()),
        Err(e) => Err(TestCaseError::fail(format!(
            "{m:?}: the error does not name the field: {e}"
        ))),
    }
}
