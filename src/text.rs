//! User text as the server accepts it. Every string that comes in — JSON bodies, query strings,
//! paths, dashboard forms — is refused at the edge if it holds NUL or another control character
//! (PostgreSQL cannot store NUL at all, and nothing else should): the same 422, naming the
//! field, on both engines.
//!
//! Two types carry the rule into the request structs: `Line` for names, identifiers and
//! choices (no control character at all) and `Text` for free text (newlines and tabs allowed).

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Deserializer};

use crate::error::{ApiError, FieldError};

/// Why a string was refused.
pub const CONTROL_MESSAGE: &str = "must not contain control characters (such as NUL)";
pub const LINE_MESSAGE: &str = "must be a single line without control characters";

/// `U+0000–U+001F` and `U+007F–U+009F`.
fn is_control(c: char) -> bool {
    c.is_control()
}

/// A free-text string: control characters other than tab, newline and carriage return refused.
pub fn check_text(s: &str) -> Result<(), &'static str> {
    if s.chars().any(|c| is_control(c) && !matches!(c, '\t' | '\n' | '\r')) { Err(CONTROL_MESSAGE) } else { Ok(()) }
}

/// A single line: every control character refused.
pub fn check_line(s: &str) -> Result<(), &'static str> {
    if s.chars().any(is_control) { Err(LINE_MESSAGE) } else { Ok(()) }
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $check:path, $description:literal) => {
        $(#[$doc])*
        #[derive(Clone, Default, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// Checks `s`; the error is the message for the field.
            pub fn parse(s: impl Into<String>) -> Result<$name, &'static str> {
                let s = s.into();
                $check(&s)?;
                Ok($name(s))
            }

            /// As `parse`, failing with a 422 that names `field`.
            pub fn field(field: &str, s: impl Into<String>) -> Result<$name, ApiError> {
                $name::parse(s).map_err(|m| ApiError::field(field, m))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        /// For defaults written in the code (checked in debug builds).
        impl From<&'static str> for $name {
            fn from(s: &'static str) -> $name {
                debug_assert!($check(s).is_ok(), "{s:?}");
                $name(s.to_string())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl From<$name> for String {
            fn from(t: $name) -> String {
                t.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(s).map_err(serde::de::Error::custom)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some($description))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

text_type!(
    /// A name, identifier or choice: one line, no control characters.
    Line,
    check_line,
    "One line of text without control characters"
);

text_type!(
    /// Free text: newlines and tabs allowed, no other control characters.
    Text,
    check_text,
    "Text without control characters other than tab and newline"
);

/// Checks every key and string of a JSON value with the free-text rule; the error names the
/// first offending member as `prefix.a.b[2]`.
pub fn check_json(value: &serde_json::Value, path: &str) -> Result<(), FieldError> {
    let here = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    match value {
        serde_json::Value::String(s) => {
            check_text(s).map_err(|m| FieldError::new(if path.is_empty() { "body" } else { path }, m))
        }
        serde_json::Value::Array(items) => {
            items.iter().enumerate().try_for_each(|(i, v)| check_json(v, &format!("{path}[{i}]")))
        }
        serde_json::Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            check_text(k).map_err(|m| FieldError::new(here("(key)"), m))?;
            check_json(v, &here(k))
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_refuse_every_control_character_and_text_keeps_newlines_and_tabs() {
        for bad in ["a\u{0}b", "\u{1}", "x\u{1b}[31m", "del\u{7f}", "c1\u{85}", "\u{9f}"] {
            assert!(Line::parse(bad).is_err(), "{bad:?}");
            assert!(Text::parse(bad).is_err(), "{bad:?}");
        }
        for multi in ["two\nlines", "tab\there", "crlf\r\n"] {
            assert!(Line::parse(multi).is_err(), "{multi:?}");
            assert_eq!(Text::parse(multi).unwrap().as_str(), multi);
        }
        assert_eq!(Line::parse("Ünïcödé ✓ 名前").unwrap(), "Ünïcödé ✓ 名前");
    }

    #[test]
    fn json_members_are_named() {
        let v = serde_json::json!({"metadata": {"notes": ["ok", "bad\u{0}"]}, "ok": "fine\n"});
        let err = check_json(&v, "").unwrap_err();
        assert_eq!(err.field, "metadata.notes[1]");
        let err = check_json(&serde_json::json!({"k\u{0}": 1}), "").unwrap_err();
        assert_eq!(err.field, "(key)");
        assert!(check_json(&serde_json::json!({"a": [1, true, null, "x\ty"]}), "").is_ok());
        let typed: Result<Line, _> = serde_json::from_value(serde_json::json!("a\nb"));
        assert!(typed.unwrap_err().to_string().contains("single line"));
    }
}
