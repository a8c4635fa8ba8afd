//! AuthZEN request bodies as JSON values, with every member name unique at every depth.
//!
//! serde_json keeps the last of repeated member names and has no switch to refuse them, while
//! the AuthZEN transport asks for I-JSON (RFC 7493 §2.3: names unique), and two parsers that
//! keep different duplicates disagree about which subject or resource a request names. So the
//! body is read through [`UniqueValue`], a `Deserialize` implementation that builds the same
//! `serde_json::Value` as serde_json would, through a map visitor that errors on a name it has
//! already seen. It costs one lookup per member, runs inside serde_json's own parser (its
//! recursion limit still applies), and needs no second pass or second parser.

use std::fmt;

use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A JSON value in which no object repeats a member name.
#[derive(Debug, Clone, PartialEq)]
pub struct UniqueValue(pub Value);

/// Parses `bytes` as JSON, refusing repeated member names at any depth.
pub fn parse(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<UniqueValue>(bytes).map(|UniqueValue(value)| value)
}

impl<'de> Deserialize<'de> for UniqueValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor).map(UniqueValue)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(access.size_hint().unwrap_or(0).min(64));
        while let Some(UniqueValue(item)) = access.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(A::Error::custom(format_args!("member `{key}` appears twice in one object")));
            }
            let UniqueValue(value) = access.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_read_as_serde_json_reads_them() {
        let text = r#"{"a": [1, -2, 2.5, "x", true, null, {"b": {}}], "c": 18446744073709551615}"#;
        assert_eq!(parse(text.as_bytes()).unwrap(), serde_json::from_str::<Value>(text).unwrap());
    }

    #[test]
    fn repeated_names_are_refused_at_any_depth_even_when_escaped_differently() {
        assert!(parse(br#"{"subject": {}, "subject": {}}"#).is_err());
        assert!(parse(br#"{"subject": {"id": "a", "id": "b"}}"#).is_err());
        assert!(parse(br#"{"evaluations": [{"resource": {"type": "t", "\u0074ype": "u"}}]}"#).is_err());
        assert_eq!(parse(br#"{"a": {"id": 1}, "b": {"id": 2}}"#).unwrap(), json!({"a": {"id": 1}, "b": {"id": 2}}));
    }

    #[test]
    fn empty_and_broken_bodies_are_errors() {
        assert!(parse(b"").is_err());
        assert!(parse(b"{").is_err());
        assert!(parse(b"{} {}").is_err());
    }
}
