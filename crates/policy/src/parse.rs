//! PPL documents (as JSON values) to [`Policy`].

use serde_json::Value;

use crate::matcher::kind;
use crate::{Action, Criterion, Expr, Policy, Rule};

/// A PPL document that cannot be compiled; the message names the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PolicyError {
    message: String,
}

impl PolicyError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        PolicyError { message: message.into() }
    }
}

pub(crate) fn policy(value: &Value) -> Result<Policy, PolicyError> {
    let mut rules = Vec::new();
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                rule_block(item, &mut rules).map_err(|e| PolicyError::new(format!("[{i}]: {e}")))?;
            }
        }
        other => rule_block(other, &mut rules)?,
    }
    Ok(Policy { rules })
}

/// `{allow: {...}}` or `{deny: {...}}` (both may appear in one block).
fn rule_block(value: &Value, rules: &mut Vec<Rule>) -> Result<(), PolicyError> {
    let Value::Object(map) = value else {
        return Err(PolicyError::new(format!(
            "a rule must be a map with allow or deny, got {}",
            kind(value)
        )));
    };
    if map.is_empty() {
        return Err(PolicyError::new("a rule must have allow or deny"));
    }
    for (key, body) in map {
        let action = match key.as_str() {
            "allow" => Action::Allow,
            "deny" => Action::Deny,
            other => {
                return Err(PolicyError::new(format!("unknown action `{other}` (expected allow or deny)")));
            }
        };
        action_body(key, body, action, rules)?;
    }
    Ok(())
}

/// The operators of one action; each becomes its own rule (they are OR-ed, as in Pomerium).
fn action_body(key: &str, body: &Value, action: Action, rules: &mut Vec<Rule>) -> Result<(), PolicyError> {
    let Value::Object(ops) = body else {
        return Err(PolicyError::new(format!("{key}: expected a map of and/or/not/nor, got {}", kind(body))));
    };
    for (op, list) in ops {
        let condition = operator(op, list).map_err(|e| PolicyError::new(format!("{key}.{e}")))?;
        // An empty list contributes nothing, as Pomerium skips it.
        if !matches!(&condition, Expr::And(c) | Expr::Or(c) | Expr::Not(c) | Expr::Nor(c) if c.is_empty()) {
            rules.push(Rule { action, condition });
        }
    }
    Ok(())
}

fn operator(op: &str, list: &Value) -> Result<Expr, PolicyError> {
    let build: fn(Vec<Expr>) -> Expr = match op {
        "and" => Expr::And,
        "or" => Expr::Or,
        "not" => Expr::Not,
        "nor" => Expr::Nor,
        other => {
            return Err(PolicyError::new(format!("{other}: unknown operator (expected and, or, not, nor)")));
        }
    };
    let items = match list {
        Value::Array(items) => items.as_slice(),
        Value::Null => &[],
        other => {
            return Err(PolicyError::new(format!("{op}: expected a list, got {}", kind(other))));
        }
    };
    let mut children = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        children.push(condition(item).map_err(|e| PolicyError::new(format!("{op}[{i}].{e}")))?);
    }
    Ok(build(children))
}

/// One list item: a single criterion (`email: {...}`) or a nested operator (`or: [...]`).
fn condition(item: &Value) -> Result<Expr, PolicyError> {
    let Value::Object(map) = item else {
        return Err(PolicyError::new(format!("expected a criterion map, got {}", kind(item))));
    };
    let mut iter = map.iter();
    let (Some((name, value)), None) = (iter.next(), iter.next()) else {
        return Err(PolicyError::new("each list item must hold exactly one criterion or operator"));
    };
    match name.as_str() {
        "and" | "or" | "not" | "nor" => operator(name, value),
        _ => Criterion::parse(name, value)
            .map(Expr::Criterion)
            .map_err(|e| PolicyError::new(format!("{name}: {e}"))),
    }
}
