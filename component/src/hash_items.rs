//! The items a host asks to hash (`schemas/hash-items.schema.json`): a relative path, `[path,
//! size]` (exactly `size` bytes, no `stat`), or `[path, size, chunk]` (the digests of each
//! `chunk` bytes, the newer format's `chunkhashes`; 0 for one digest). Every path is checked
//! by the relative-path rules before anything is read.

use crate::error::{Error, Result};
use crate::json::{self, Value};
use crate::relpath;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// UTF-16 units; a lone surrogate stands for a name byte that is not UTF-8.
    pub path: Vec<u16>,
    pub size: Option<u64>,
    pub chunk: u64,
}

/// The items of `items_json`, in order; the first malformed item or refused path is an error.
pub fn parse(items_json: &str) -> Result<Vec<Item>> {
    let bad = || {
        Error::invalid("paths must be a JSON array of paths, [path, size] or [path, size, chunk]")
    };
    let Value::Array(values) = json::parse(items_json).map_err(|_| bad())? else {
        return Err(bad());
    };
    let number = |v: &Value| match v {
        Value::Number(n) => n.parse::<u64>().map_err(|_| bad()),
        _ => Err(bad()),
    };
    let mut items = Vec::with_capacity(values.len());
    for value in values {
        let item = match value {
            Value::String(path) => Item { path, size: None, chunk: 0 },
            Value::Array(mut parts) if (2..=3).contains(&parts.len()) => {
                let chunk = if parts.len() == 3 { number(&parts[2])? } else { 0 };
                let size = Some(number(&parts[1])?);
                let Value::String(path) = parts.swap_remove(0) else { return Err(bad()) };
                Item { path, size, chunk }
            }
            _ => return Err(bad()),
        };
        relpath::check_units(&item.path)?;
        items.push(item);
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn reads_the_three_forms() {
        let items = parse(r#"["a", ["b/c", 5], ["d", 9, 4]]"#).unwrap();
        assert_eq!(items[0], Item { path: units("a"), size: None, chunk: 0 });
        assert_eq!(items[1], Item { path: units("b/c"), size: Some(5), chunk: 0 });
        assert_eq!(items[2], Item { path: units("d"), size: Some(9), chunk: 4 });
    }

    #[test]
    fn refuses_bad_shapes_and_paths() {
        for bad in [r#"{"a": 1}"#, r#"[["a"]]"#, r#"[["a", -1]]"#, r#"[1]"#, r#"["../x"]"#] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let err = parse(r#"["ok", "a//b"]"#).unwrap_err();
        assert_eq!(err.path.as_deref(), Some("a//b"));
    }
}
