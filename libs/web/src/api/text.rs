//! A JSON string and nothing else. poem-openapi's `String` also accepts numbers and booleans
//! (turning `false` into "false"), so a request the schema calls invalid would be accepted;
//! request bodies use `Text` to refuse them.

use std::borrow::Cow;

use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef},
    types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Text(pub(crate) String);

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Type for Text {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new("string")))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromJSON for Text {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(text) => Ok(Self(text)),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl ToJSON for Text {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// An optional string that may also be sent as `null` (the schema says `nullable`), with
/// the same strictness as [`Text`] otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct OptionalText(pub(crate) Option<Text>);

impl OptionalText {
    pub(crate) fn into_string(self) -> Option<String> {
        self.0.map(|text| text.0)
    }
}

impl Type for OptionalText {
    const IS_REQUIRED: bool = false;
    type RawValueType = Text;
    type RawElementValueType = Text;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut schema = MetaSchema::new("string");
        schema.nullable = true;
        MetaSchemaRef::Inline(Box::new(schema))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_ref()
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromJSON for OptionalText {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            None | Some(Value::Null) => Ok(Self(None)),
            Some(Value::String(text)) => Ok(Self(Some(Text(text)))),
            Some(other) => Err(ParseError::expected_type(other)),
        }
    }
}

impl ToJSON for OptionalText {
    fn to_json(&self) -> Option<Value> {
        self.0.as_ref().and_then(ToJSON::to_json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_text_takes_a_string_null_or_nothing() {
        assert_eq!(
            OptionalText::parse_from_json(None).unwrap(),
            OptionalText(None)
        );
        assert_eq!(
            OptionalText::parse_from_json(Some(Value::Null)).unwrap(),
            OptionalText(None)
        );
        assert_eq!(
            OptionalText::parse_from_json(Some(Value::from("a")))
                .unwrap()
                .into_string(),
            Some("a".to_owned())
        );
        assert!(OptionalText::parse_from_json(Some(Value::from(1))).is_err());
    }

    #[test]
    fn only_json_strings_are_text() {
        assert_eq!(
            Text::parse_from_json(Some(Value::from("a"))).unwrap(),
            Text("a".to_owned())
        );
        for other in [
            Value::from(false),
            Value::from(5),
            Value::Null,
            serde_json::json!([]),
            serde_json::json!({}),
        ] {
            assert!(
                Text::parse_from_json(Some(other.clone())).is_err(),
                "{other} was accepted"
            );
        }
    }
}
