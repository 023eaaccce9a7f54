//! Path mapping rules, as the worker applies them to a job's roots: the rule with the longest
//! source path that contains the path wins; Windows sources compare without regard to case.

use std::fmt::Write;

use crate::abspath::{AbsPath, Style};
use crate::error::{Error, Result};
use crate::json::{self, Value};

struct Rule {
    source: AbsPath,
    destination: String,
}

fn style_of(name: &str) -> Result<Style> {
    match name {
        "posix" => Ok(Style::Posix),
        "windows" => Ok(Style::Windows),
        other => Err(Error::invalid(format!("path format {other:?} is not posix or windows"))),
    }
}

/// Maps `path` by `rules_json`, `[[source_path_format, source_path, destination_path]]`
/// (one source format for all rules), joining the rest of the path to the destination with
/// `separator`. Returns None when no rule applies.
pub fn map_path(rules_json: &str, path: &str, separator: &str) -> Result<Option<String>> {
    let Value::Array(items) = json::parse(rules_json)? else {
        return Err(Error::invalid("path mapping rules must be a list"));
    };
    let mut style = None;
    let mut rules = Vec::new();
    for item in items {
        let Value::Array(fields) = item else {
            return Err(Error::invalid("a rule is [source_path_format, source_path, destination]"));
        };
        let texts = fields
            .into_iter()
            .map(|v| match v {
                Value::String(u) => {
                    String::from_utf16(&u).map_err(|_| Error::invalid("a rule is not Unicode"))
                }
                _ => Err(Error::invalid("a rule holds strings")),
            })
            .collect::<Result<Vec<_>>>()?;
        let [format, source, destination] = <[String; 3]>::try_from(texts).map_err(|_| {
            Error::invalid("a rule is [source_path_format, source_path, destination]")
        })?;
        let s = style_of(&format)?;
        if style.is_some_and(|prev| prev != s) {
            return Err(Error::invalid("the rules mix source path formats; only one is permitted"));
        }
        style = Some(s);
        rules.push(Rule { source: AbsPath::parse(&source, s)?, destination });
    }
    let Some(style) = style else { return Ok(None) };
    // `..` applied first: a root that leaves the rule's source (`/mnt/proj/../../etc`) is not
    // under it, so it is never mapped to a place outside the rule's destination.
    let Ok(path) = AbsPath::parse(path, style).map(AbsPath::normalized) else { return Ok(None) };
    let best = rules
        .iter()
        .filter(|r| path.starts_with(&r.source, style))
        .max_by_key(|r| r.source.parts.len());
    Ok(best.map(|r| {
        let mut out = r.destination.trim_end_matches(separator).to_string();
        if out.is_empty() {
            out.push_str(separator); // a destination at the filesystem's root
        }
        for part in &path.parts[r.source.parts.len()..] {
            if !out.ends_with(separator) {
                out.push_str(separator);
            }
            let _ = write!(out, "{part}");
        }
        out
    }))
}

#[cfg(test)]
mod tests {
    use super::map_path;

    #[test]
    fn the_longest_rule_wins() {
        let rules = r#"[["posix","/mnt/Projects","X:\\Projects"],["posix","/mnt/Projects/Special","Y:\\"]]"#;
        assert_eq!(
            map_path(rules, "/mnt/Projects/Special/data.txt", "\\").unwrap().unwrap(),
            "Y:\\data.txt"
        );
        assert_eq!(
            map_path(rules, "/mnt/Projects/a/b.txt", "\\").unwrap().unwrap(),
            "X:\\Projects\\a\\b.txt"
        );
        assert_eq!(map_path(rules, "/elsewhere/x", "\\").unwrap(), None);
    }

    #[test]
    fn windows_sources_ignore_case() {
        let rules = r#"[["windows","C:\\Show","/mnt/show"]]"#;
        assert_eq!(map_path(rules, "c:/SHOW/a/b.exr", "/").unwrap().unwrap(), "/mnt/show/a/b.exr");
        assert_eq!(map_path(rules, "C:\\Show", "/").unwrap().unwrap(), "/mnt/show");
    }

    #[test]
    fn a_path_that_climbs_out_of_the_source_is_not_mapped() {
        let rules = r#"[["posix","/mnt/proj","/local/proj"]]"#;
        assert_eq!(map_path(rules, "/mnt/proj/../../etc", "/").unwrap(), None);
        assert_eq!(map_path(rules, "/mnt/proj/..", "/").unwrap(), None);
        assert_eq!(map_path(rules, "/mnt/proj/a/../b", "/").unwrap().unwrap(), "/local/proj/b");
        let rules = r#"[["windows","C:\\proj","/local/proj"]]"#;
        assert_eq!(map_path(rules, "C:\\proj\\..\\etc", "/").unwrap(), None);
    }

    #[test]
    fn mixed_formats_are_refused() {
        let rules = r#"[["windows","C:\\a","/a"],["posix","/b","/c"]]"#;
        assert!(map_path(rules, "/b/x", "/").is_err());
    }
}
