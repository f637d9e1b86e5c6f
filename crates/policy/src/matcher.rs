//! String matchers: `is`, `not`, `starts_with`, `ends_with`, `contains`, `in`, `not_in`.

use serde_json::Value;

use crate::parse::PolicyError;

/// A string matcher; several operators in one matcher must all hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringMatcher {
    ops: Vec<StringOp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum StringOp {
    Is(String),
    Not(String),
    StartsWith(String),
    EndsWith(String),
    Contains(String),
    In(Vec<String>),
    NotIn(Vec<String>),
}

impl StringMatcher {
    /// Parse `value` (a bare string means `is`). `canon` is applied to every operand, so
    /// operands and inputs are compared in the same canonical form.
    pub(crate) fn parse(
        value: &Value,
        criterion: &str,
        canon: fn(&str) -> String,
    ) -> Result<StringMatcher, PolicyError> {
        let bad = |why: String| PolicyError::new(format!("{criterion}: {why}"));
        let ops = match value {
            Value::String(s) => vec![StringOp::Is(canon(s))],
            Value::Object(map) if !map.is_empty() => {
                let mut ops = Vec::with_capacity(map.len());
                for (op, operand) in map {
                    let one = |v: &Value| -> Result<String, PolicyError> {
                        scalar(v)
                            .map(|s| canon(&s))
                            .ok_or_else(|| bad(format!("`{op}` needs a string, got {}", kind(v))))
                    };
                    let many = |v: &Value| -> Result<Vec<String>, PolicyError> {
                        match v {
                            Value::Array(items) => items.iter().map(one).collect(),
                            other => Ok(vec![one(other)?]),
                        }
                    };
                    ops.push(match op.as_str() {
                        "is" => StringOp::Is(one(operand)?),
                        "not" => StringOp::Not(one(operand)?),
                        "starts_with" => StringOp::StartsWith(one(operand)?),
                        "ends_with" => StringOp::EndsWith(one(operand)?),
                        "contains" => StringOp::Contains(one(operand)?),
                        "in" => StringOp::In(many(operand)?),
                        "not_in" => StringOp::NotIn(many(operand)?),
                        other => {
                            return Err(bad(format!(
                                "unknown string matcher `{other}` (expected is, not, \
                                 starts_with, ends_with, contains, in, not_in)"
                            )));
                        }
                    });
                }
                ops
            }
            other => {
                return Err(bad(format!("expected a string or a matcher, got {}", kind(other))));
            }
        };
        Ok(StringMatcher { ops })
    }

    /// Whether `input` (already canonical) satisfies every operator.
    pub fn matches(&self, input: &str) -> bool {
        self.ops.iter().all(|op| match op {
            StringOp::Is(s) => input == s,
            StringOp::Not(s) => input != s,
            StringOp::StartsWith(s) => input.starts_with(s.as_str()),
            StringOp::EndsWith(s) => input.ends_with(s.as_str()),
            StringOp::Contains(s) => input.contains(s.as_str()),
            StringOp::In(list) => list.iter().any(|s| s == input),
            StringOp::NotIn(list) => !list.iter().any(|s| s == input),
        })
    }
}

/// A scalar as a string (`true`, `42` and `"x"` all compare as text, like Pomerium's YAML).
pub(crate) fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}
