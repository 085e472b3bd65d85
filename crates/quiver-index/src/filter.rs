//! Metadata filters, evaluated row by row during the scan.
//!
//! Two spellings build the same [`Filter`]: the CLI's `field=value` / `price<=100` strings
//! ([`Filter::parse`], which takes a JSON object too) and a JSON object in the style of Orama's `where`
//! (`{"category": "Shoes", "price": {"gte": 10, "lte": 100}}`, [`Filter::from_json`]).
//! All conditions must hold. A field absent from a document fails every condition but `!=`.

use serde_json::Value;

use crate::{IndexError, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Eq(Value),
    Ne(Value),
    In(Vec<Value>),
    Lt(f64),
    Le(f64),
    Gt(f64),
    Ge(f64),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    clauses: Vec<(Vec<String>, Condition)>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    /// Adds the condition `path` (dotted for nested objects) must meet.
    pub fn and(mut self, path: &str, condition: Condition) -> Self {
        self.clauses.push((path.split('.').map(str::to_owned).collect(), condition));
        self
    }

    /// Parses one `field OP value` clause, OP one of `= != < <= > >=`, or a JSON object
    /// ([`Filter::from_json`]), and adds it.
    pub fn parse_clause(mut self, clause: &str) -> Result<Self> {
        let invalid = |reason: &str| IndexError::InvalidFilter { filter: clause.to_owned(), reason: reason.to_owned() };
        if clause.trim_start().starts_with('{') {
            let json: Value = serde_json::from_str(clause).map_err(|e| invalid(&e.to_string()))?;
            self.clauses.extend(Filter::from_json(&json)?.clauses);
            return Ok(self);
        }
        let at = clause.find(['=', '!', '<', '>']).ok_or_else(|| invalid("expected field=value, field<=number, …"))?;
        let (field, rest) = clause.split_at(at);
        let field = field.trim();
        if field.is_empty() {
            return Err(invalid("missing field name"));
        }
        let (op, value) = ["!=", "<=", ">=", "=", "<", ">"]
            .iter()
            .find_map(|op| rest.strip_prefix(op).map(|v| (*op, v.trim())))
            .ok_or_else(|| invalid("unknown operator"))?;
        let number = || value.parse::<f64>().map_err(|_| invalid("this operator needs a number"));
        let condition = match op {
            "=" => Condition::Eq(Value::String(value.to_owned())),
            "!=" => Condition::Ne(Value::String(value.to_owned())),
            "<" => Condition::Lt(number()?),
            "<=" => Condition::Le(number()?),
            ">" => Condition::Gt(number()?),
            ">=" => Condition::Ge(number()?),
            _ => unreachable!(),
        };
        Ok(self.and(field, condition))
    }

    /// Parses several CLI clauses, all of which must hold.
    pub fn parse<S: AsRef<str>>(clauses: &[S]) -> Result<Self> {
        clauses.iter().try_fold(Filter::default(), |f, c| f.parse_clause(c.as_ref()))
    }

    /// Builds a filter from `{"field": value | {"eq"|"ne"|"in"|"lt"|"lte"|"gt"|"gte": …}}`.
    pub fn from_json(value: &Value) -> Result<Self> {
        let invalid = |reason: String| IndexError::InvalidFilter { filter: value.to_string(), reason };
        let Value::Object(fields) = value else {
            return Err(invalid("a filter is a JSON object of field conditions".into()));
        };
        let mut filter = Filter::default();
        for (field, spec) in fields {
            match spec {
                Value::Object(ops) => {
                    for (op, arg) in ops {
                        let number = || arg.as_f64().ok_or_else(|| invalid(format!("{field}.{op} needs a number")));
                        let condition = match op.as_str() {
                            "eq" => Condition::Eq(arg.clone()),
                            "ne" => Condition::Ne(arg.clone()),
                            "in" => Condition::In(
                                arg.as_array().ok_or_else(|| invalid(format!("{field}.in needs an array")))?.clone(),
                            ),
                            "lt" => Condition::Lt(number()?),
                            "lte" => Condition::Le(number()?),
                            "gt" => Condition::Gt(number()?),
                            "gte" => Condition::Ge(number()?),
                            other => return Err(invalid(format!("unknown operator {other:?} on {field}"))),
                        };
                        filter = filter.and(field, condition);
                    }
                }
                Value::Array(options) => filter = filter.and(field, Condition::In(options.clone())),
                exact => filter = filter.and(field, Condition::Eq(exact.clone())),
            }
        }
        Ok(filter)
    }

    /// Whether a document with this metadata passes.
    pub fn matches(&self, metadata: &Value) -> bool {
        self.clauses.iter().all(|(path, condition)| {
            let field = path.iter().try_fold(metadata, |v, key| v.get(key));
            match (condition, field) {
                (Condition::Ne(want), Some(have)) => !loosely_equal(have, want),
                (Condition::Ne(_), None) => true,
                (_, None) => false,
                (Condition::Eq(want), Some(have)) => loosely_equal(have, want),
                (Condition::In(options), Some(have)) => options.iter().any(|o| loosely_equal(have, o)),
                (Condition::Lt(x), Some(have)) => as_number(have).is_some_and(|h| h < *x),
                (Condition::Le(x), Some(have)) => as_number(have).is_some_and(|h| h <= *x),
                (Condition::Gt(x), Some(have)) => as_number(have).is_some_and(|h| h > *x),
                (Condition::Ge(x), Some(have)) => as_number(have).is_some_and(|h| h >= *x),
            }
        })
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Equality that lets the CLI's string `"42"` match the number 42 and `"true"` the boolean,
/// and lets a document's array field match any of its elements (tags).
fn loosely_equal(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Array(items), want) if !want.is_array() => items.iter().any(|i| loosely_equal(i, want)),
        (Value::String(h), Value::String(w)) => h == w,
        (Value::Number(_), Value::String(w)) | (Value::String(w), Value::Number(_)) => {
            let other = if have.is_number() { have } else { want };
            w.trim().parse::<f64>().ok().zip(as_number(other)).is_some_and(|(a, b)| a == b)
        }
        (Value::Bool(h), Value::String(w)) => w == if *h { "true" } else { "false" },
        (h, w) => h == w,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn cli_and_json_spellings_agree() {
        let doc = json!({"category": "Shoes", "price": 49.5, "stock": {"warehouse": "B"}, "tags": ["red", "sale"]});
        let cli =
            Filter::parse(&["category=Shoes", "price<=50", "price>10", "stock.warehouse=B", "tags=sale"]).unwrap();
        let js = Filter::from_json(&json!({"category": "Shoes", "price": {"lte": 50, "gt": 10},
                                             "stock.warehouse": "B", "tags": {"eq": "sale"}}))
        .unwrap();
        assert!(cli.matches(&doc));
        assert!(js.matches(&doc));
        // The CLI takes the JSON spelling too, beside its own clauses.
        let mixed = Filter::parse(&[r#"{"category": "Shoes", "price": {"lte": 50}}"#, "price>10"]).unwrap();
        assert!(mixed.matches(&doc));
        assert!(!Filter::parse(&[r#"{"price": {"gt": 50}}"#]).unwrap().matches(&doc));
        assert!(!Filter::parse(&["price<49"]).unwrap().matches(&doc));
        assert!(!Filter::parse(&["category!=Shoes"]).unwrap().matches(&doc));
        assert!(Filter::parse(&["brand!=Acme"]).unwrap().matches(&doc));
        assert!(!Filter::parse(&["brand=Acme"]).unwrap().matches(&doc));
        assert!(Filter::from_json(&json!({"category": ["Hats", "Shoes"]})).unwrap().matches(&doc));
    }

    #[test]
    fn numbers_compare_with_strings() {
        let doc = json!({"year": 2024, "price": "12.5", "active": true});
        assert!(Filter::parse(&["year=2024", "price<13", "active=true"]).unwrap().matches(&doc));
    }

    #[test]
    fn malformed_filters_are_typed_errors() {
        for bad in ["price", "=3", "price<cheap", "price>=", "{price: 3}", r#"{"price": {"between": 3}}"#] {
            let err = Filter::parse(&[bad]).unwrap_err();
            assert!(matches!(err, IndexError::InvalidFilter { .. }), "{bad}: {err}");
        }
        assert!(Filter::from_json(&json!({"price": {"between": [1, 2]}})).is_err());
        assert!(Filter::from_json(&json!([1])).is_err());
    }
}
