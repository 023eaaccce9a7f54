//! Path mapping rules, as the worker applies them to a job's roots: the rule with the longest
//! source path that contains the path wins; Windows sources compare without regard to case.

use std::fmt::Write;

use crate::abspath::{AbsPath, Style};
use crate::error::{Error, Result};

/// A rule: paths below `source` (spelled in `style`) map to `destination`.
#[derive(Debug, Clone)]
pub struct PathRule {
    pub style: Style,
    pub source: String,
    pub destination: String,
}

struct Rule {
    source: AbsPath,
    destination: String,
}

/// Maps `path` by `rules` (one source format for all rules), joining the rest of the path to
/// the destination with `separator`. Returns None when no rule applies.
pub fn map_path(given: &[PathRule], path: &str, separator: &str) -> Result<Option<String>> {
    let mut style = None;
    let mut rules = Vec::new();
    for r in given {
        if style.is_some_and(|prev| prev != r.style) {
            return Err(Error::invalid("the rules mix source path formats; only one is permitted"));
        }
        style = Some(r.style);
        let source = AbsPath::parse(&r.source, r.style)?;
        rules.push(Rule { source, destination: r.destination.clone() });
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
    use super::{map_path, PathRule, Style};

    fn rules_of(given: &[(Style, &str, &str)]) -> Vec<PathRule> {
        given
            .iter()
            .map(|(style, s, d)| PathRule {
                style: *style,
                source: s.to_string(),
                destination: d.to_string(),
            })
            .collect()
    }

    #[test]
    fn the_longest_rule_wins() {
        let rules = &rules_of(&[
            (Style::Posix, "/mnt/Projects", "X:\\Projects"),
            (Style::Posix, "/mnt/Projects/Special", "Y:\\"),
        ]);
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
        let rules = &rules_of(&[(Style::Windows, "C:\\Show", "/mnt/show")]);
        assert_eq!(map_path(rules, "c:/SHOW/a/b.exr", "/").unwrap().unwrap(), "/mnt/show/a/b.exr");
        assert_eq!(map_path(rules, "C:\\Show", "/").unwrap().unwrap(), "/mnt/show");
    }

    #[test]
    fn a_path_that_climbs_out_of_the_source_is_not_mapped() {
        let rules = &rules_of(&[(Style::Posix, "/mnt/proj", "/local/proj")]);
        assert_eq!(map_path(rules, "/mnt/proj/../../etc", "/").unwrap(), None);
        assert_eq!(map_path(rules, "/mnt/proj/..", "/").unwrap(), None);
        assert_eq!(map_path(rules, "/mnt/proj/a/../b", "/").unwrap().unwrap(), "/local/proj/b");
        let rules = &rules_of(&[(Style::Windows, "C:\\proj", "/local/proj")]);
        assert_eq!(map_path(rules, "C:\\proj\\..\\etc", "/").unwrap(), None);
    }

    #[test]
    fn mixed_formats_are_refused() {
        let rules = &rules_of(&[(Style::Windows, "C:\\a", "/a"), (Style::Posix, "/b", "/c")]);
        assert!(map_path(rules, "/b/x", "/").is_err());
    }
}
