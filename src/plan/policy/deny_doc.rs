//! Whether a policy document only denies, read without building a JSON
//! tree: the grants check and the positive spec both ask it of every
//! identity policy a script writes, and a `serde_json::Value` of the whole
//! document (a map per statement) was the largest cost of the policy check.
//!
//! [`only_denies`] answers only for the plain shape — a JSON object whose
//! `Statement` is one statement object or a list of them, each with a string
//! `Effect`, and no key given twice — and says `None` for anything else
//! (YAML, duplicate keys, a GCP deny policy's `rules`, no statements, a
//! statement that is not an object). Callers then read the document the
//! slow way, with the reasons they always gave, so this reader can only
//! answer where the slow one would have answered the same.

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// `Some(true)`: every statement of `text` denies (and there is at least
/// one); `Some(false)`: one does not; `None`: not the plain shape.
pub(crate) fn only_denies(text: &str) -> Option<bool> {
    let doc: Document = serde_json::from_str(text.trim()).ok()?;
    doc.statement?.0
}

/// An identity policy document: only `Statement` is read, other keys are
/// skipped without being kept. Only a JSON object is one (a derived struct
/// would also take a list, which the full reader refuses).
struct Document {
    statement: Option<Statements>,
}

/// One statement or a list: whether all deny (`None`: an empty list).
struct Statements(Option<bool>);

/// One statement (an object): whether its `Effect` is `Deny`.
struct Statement(bool);

/// A string compared with `.0` as it is read, without keeping it (escapes
/// decoded, as IAM reads them); anything but a string is an error.
struct Is<'w>(&'w str);

impl<'de> de::DeserializeSeed<'de> for Is<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Is<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

/// Reads an object's entries: `wanted`'s value with `read`, every other
/// value skipped; a key given twice is an error.
fn one_key<'de, A, T>(
    mut map: A,
    wanted: &str,
    read: impl FnOnce(&mut A) -> Result<T, A::Error>,
) -> Result<Option<T>, A::Error>
where
    A: MapAccess<'de>,
{
    let mut read = Some(read);
    let mut found = None;
    while let Some(is_wanted) = map.next_key_seed(Is(wanted))? {
        if is_wanted {
            let Some(read) = read.take() else {
                return Err(de::Error::custom(format_args!("{wanted} given twice")));
            };
            found = Some(read(&mut map)?);
        } else {
            map.next_value::<IgnoredAny>()?;
        }
    }
    Ok(found)
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Document;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a policy document object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Document, A::Error> {
                let statement = one_key(map, "Statement", |m| m.next_value::<Statements>())?;
                Ok(Document { statement })
            }
        }
        deserializer.deserialize_map(Object)
    }
}

impl<'de> Deserialize<'de> for Statement {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Statement;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a statement object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Statement, A::Error> {
                let denies = one_key(map, "Effect", |m| m.next_value_seed(Is("Deny")))?
                    .ok_or_else(|| de::Error::missing_field("Effect"))?;
                Ok(Statement(denies))
            }
        }
        deserializer.deserialize_map(Object)
    }
}

impl<'de> Deserialize<'de> for Statements {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrMany;
        impl<'de> Visitor<'de> for OneOrMany {
            type Value = Statements;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a statement or a list of statements")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Statements, A::Error> {
                let mut any = false;
                let mut all = true;
                while let Some(Statement(denies)) = seq.next_element::<Statement>()? {
                    any = true;
                    all &= denies;
                }
                Ok(Statements(any.then_some(all)))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Statements, A::Error> {
                let Statement(denies) =
                    Statement::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Statements(Some(denies)))
            }
        }
        deserializer.deserialize_any(OneOrMany)
    }
}

#[cfg(test)]
mod tests {
    use super::only_denies;

    #[test]
    fn the_plain_shape_is_answered() {
        let deny = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#;
        assert_eq!(only_denies(deny), Some(true));
        let one = r#" {"Statement":{"Effect":"Deny","Action":"s3:*","Resource":"*"}} "#;
        assert_eq!(only_denies(one), Some(true));
        let mixed =
            r#"{"Statement":[{"Effect":"Deny"},{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
        assert_eq!(only_denies(mixed), Some(false));
        // An escaped "Deny" is the string Deny, as IAM reads it.
        assert_eq!(
            only_denies(r#"{"Statement":[{"Effect":"\u0044eny"}]}"#),
            Some(true)
        );
        assert_eq!(
            only_denies(r#"{"Statement":[{"Effect":"deny"}]}"#),
            Some(false)
        );
    }

    #[test]
    fn anything_else_is_left_to_the_full_reader() {
        for text in [
            "",
            "not json",
            "Statement:\n- Effect: Deny\n",
            r#"{"Statement":[]}"#,
            r#"{"Version":"2012-10-17"}"#,
            r#"{"rules":[{"denyRule":{}}]}"#,
            r#"{"Statement":["Deny"]}"#,
            r#"{"Statement":[{"Action":"*"}]}"#,
            r#"{"Statement":[{"Effect":1}]}"#,
            // Duplicate keys: which one counts is the full reader's call.
            r#"{"Statement":[{"Effect":"Deny"}],"Statement":[{"Effect":"Allow"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Effect":"Deny"}]}"#,
            r#"[{"Effect":"Deny"}]"#,
            r#"{"Statement":[["Deny"]]}"#,
            r#"{"Statement":["Deny"]}"#,
            r#"{"Statement":{"Effect":["Deny"]}}"#,
            r#"{"Statement":[{"Effect":null}]}"#,
            r#"{"Statement":[{"Effect":"Deny"}]} trailing"#,
        ] {
            assert_eq!(only_denies(text), None, "{text}");
        }
    }
}
