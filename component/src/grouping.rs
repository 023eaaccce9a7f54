//! Grouping a job's paths into asset roots, as the official submitter does.
//!
//! Each input, output and referenced path is absolute. Paths under a SHARED file-system
//! location are left out (the workers see them already). Under a LOCAL location, paths group
//! by the longest location containing them, and the group takes its name. Other paths group by
//! their top directory (`/`, or a Windows drive). A group's root is the common path of all its
//! paths, or the parent of that path when it is an input file. Windows paths compare without
//! regard to case, as `os.path.normcase` makes them.
//!
//! Paths may hold lone surrogates (a POSIX name's bytes that are not UTF-8, as Python spells
//! them); they are grouped in a lossless spelling of their own (`Spelled`) and written back.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::abspath::{common, AbsPath, Style};
use crate::error::{Error, Result};
use crate::json::{self, Value};

#[derive(Default)]
struct Group {
    location: Option<String>,
    inputs: Vec<AbsPath>,
    outputs: Vec<AbsPath>,
    references: Vec<AbsPath>,
}

/// A file-system location: its name, absolute path, and whether it is SHARED (seen by the
/// workers already) rather than LOCAL.
#[derive(Debug, Clone)]
pub struct Location {
    pub name: String,
    pub path: String,
    pub shared: bool,
}

/// Groups a job's `paths` (`{"inputs": [[path, kind]], "outputs": [path], "references":
/// [path]}`; see `submit.group` in `wit/engine.wit`).
pub fn group(
    style: Style,
    paths: &str,
    locations: &[Location],
    require_exist: bool,
) -> Result<String> {
    let Value::Object(members) = json::parse(paths)? else {
        return Err(Error::invalid("a job's paths must be a JSON object"));
    };
    let mut req: BTreeMap<String, Value> = members.into_iter().collect();
    let strings = |v: Option<Value>, what: &str| -> Result<Vec<String>> {
        match v {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|i| match i {
                    Value::String(u) => Ok(spell(&u)),
                    _ => Err(Error::invalid(format!("{what} must be a list of paths"))),
                })
                .collect(),
            Some(_) => Err(Error::invalid(format!("{what} must be a list of paths"))),
        }
    };
    let (mut files, mut missing, mut directories) = (Vec::new(), Vec::new(), Vec::new());
    let mut too_long = Vec::new();
    let Value::Array(inputs) = req.remove("inputs").unwrap_or(Value::Array(Vec::new())) else {
        return Err(Error::invalid("inputs must be a list of [path, kind]"));
    };
    for item in inputs {
        let pair = strings(Some(item), "an input")?;
        let [path, kind] = <[String; 2]>::try_from(pair).map_err(|_| {
            Error::invalid("an input is [path, \"file\"|\"directory\"|\"missing\"|\"too-long\"]")
        })?;
        match kind.as_str() {
            "file" => files.push(path),
            "missing" => missing.push(path),
            "directory" => directories.push(path),
            "too-long" => too_long.push(path),
            other => return Err(Error::invalid(format!("input kind {other:?} is unknown"))),
        }
    }
    let mut problems = String::new();
    if require_exist && !missing.is_empty() {
        let _ = write!(problems, "missing input files: {}", shown(&missing));
    }
    if !directories.is_empty() {
        let sep = if problems.is_empty() { "" } else { "; " };
        let _ = write!(problems, "{sep}directories given as input files: {}", shown(&directories));
    }
    if !too_long.is_empty() {
        // The system refused to look them up: nothing could read, or download, them.
        let sep = if problems.is_empty() { "" } else { "; " };
        let _ = write!(
            problems,
            "{sep}inputs too long for this system to look up (shorten them): {}",
            shown(&too_long)
        );
    }
    if !problems.is_empty() {
        return Err(Error::invalid(format!("the job's inputs are not all usable: {problems}")));
    }
    let outputs = strings(req.remove("outputs"), "outputs")?;
    // Inputs that do not exist (allowed here) stay as references, as the official tools do.
    let references = [strings(req.remove("references"), "references")?, missing.clone()].concat();
    let mut local: Vec<(AbsPath, String)> = Vec::new();
    let mut shared: Vec<AbsPath> = Vec::new();
    for loc in locations {
        // Spelled as the job's paths are, to compare with them.
        let units: Vec<u16> = loc.path.encode_utf16().collect();
        let path = AbsPath::parse(&spell(&units), style)?.normalized();
        if loc.shared {
            shared.push(path);
        } else {
            local.push((path, loc.name.clone()));
        }
    }
    if let Some(k) = req.keys().next() {
        return Err(Error::invalid(format!("unknown grouping field {k:?}")));
    }

    let mut groups: Vec<(AbsPath, Group)> = Vec::new();
    let mut skipped_shared = 0usize;
    let mut file_keys = Vec::new();
    for (list, texts) in [(0, &files), (1, &outputs), (2, &references)] {
        for text in texts.iter() {
            let path = AbsPath::parse(text, style)?.normalized();
            if shared.iter().any(|s| path.starts_with(s, style)) {
                skipped_shared += 1;
                continue;
            }
            let by_location = local
                .iter()
                .filter(|(root, _)| path.starts_with(root, style))
                .max_by_key(|(root, _)| root.render(style).len());
            let (key, location) = match by_location {
                Some((root, name)) => (root.clone(), Some(name.clone())),
                None => (AbsPath { anchor: path.anchor.clone(), parts: Vec::new() }, None),
            };
            let at = match groups
                .iter()
                .position(|(k, g)| k.key(style) == key.key(style) && g.location == location)
            {
                Some(i) => i,
                None => {
                    groups.push((key, Group { location, ..Group::default() }));
                    groups.len() - 1
                }
            };
            let group = &mut groups[at].1;
            if list == 0 {
                file_keys.push(path.key(style));
            }
            match list {
                0 => group.inputs.push(path),
                1 => group.outputs.push(path),
                _ => group.references.push(path),
            }
        }
    }

    let mut out: Vec<(String, String)> = Vec::new();
    for (_, g) in groups {
        let all: Vec<&AbsPath> = g.inputs.iter().chain(&g.outputs).chain(&g.references).collect();
        let mut root = common(&all, style);
        if file_keys.contains(&root.key(style)) {
            root.parts.pop(); // the common path is an input file: its directory is the root
        }
        let rel = |paths: &[AbsPath]| -> Vec<String> {
            let mut v: Vec<String> = paths.iter().map(|p| p.relative_to(&root, style)).collect();
            v.sort();
            v.dedup();
            v
        };
        let mut entry = String::from("{\"root\":");
        json::write_string(&mut entry, &unspell(&root.render(style)));
        entry.push_str(",\"location\":");
        match &g.location {
            Some(name) => json::write_str(&mut entry, name),
            None => entry.push_str("null"),
        }
        for (name, paths) in
            [("inputs", &g.inputs), ("outputs", &g.outputs), ("references", &g.references)]
        {
            let _ = write!(entry, ",\"{name}\":[");
            for (i, p) in rel(paths).iter().enumerate() {
                if i > 0 {
                    entry.push(',');
                }
                json::write_string(&mut entry, &unspell(p));
            }
            entry.push(']');
        }
        entry.push('}');
        out.push((root.render(style), entry));
    }
    out.sort();
    let body: Vec<String> = out.into_iter().map(|(_, e)| e).collect();
    let mut doc = format!("{{\"groups\":[{}],\"missing\":[", body.join(","));
    for (i, m) in missing.iter().enumerate() {
        if i > 0 {
            doc.push(',');
        }
        json::write_string(&mut doc, &unspell(m));
    }
    let _ = write!(doc, "],\"skipped_shared\":{skipped_shared}}}");
    Ok(doc)
}

/// Stands before a lone surrogate's spelling, and before itself when the path holds it.
const MARK: char = '\u{ffff}';

/// `units` as a `String` that keeps lone surrogates: U+FFFF then the character 0x10000 above
/// the surrogate (no separator, and without case), U+FFFF itself doubled.
fn spell(units: &[u16]) -> String {
    let mut out = String::with_capacity(units.len());
    for c in char::decode_utf16(units.iter().copied()) {
        match c {
            Ok(MARK) => out.extend([MARK, MARK]),
            Ok(c) => out.push(c),
            Err(e) => {
                out.push(MARK);
                out.push(
                    char::from_u32(0x10000 + u32::from(e.unpaired_surrogate())).unwrap_or(MARK),
                );
            }
        }
    }
    out
}

/// The units [`spell`] spelled.
fn unspell(text: &str) -> Vec<u16> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (c, c == MARK) {
            (_, true) => match chars.next() {
                Some(MARK) | None => out.push(0xffff),
                Some(s) => out.push((u32::from(s) - 0x10000) as u16),
            },
            (c, false) => out.extend_from_slice(c.encode_utf16(&mut [0; 2])),
        }
    }
    out
}

/// Paths for a message, lone surrogates as JSON spells them.
fn shown(paths: &[String]) -> String {
    let shown: Vec<String> = paths
        .iter()
        .map(|p| {
            let units = unspell(p);
            String::from_utf16(&units).unwrap_or_else(|_| {
                let mut quoted = String::new();
                json::write_string(&mut quoted, &units);
                quoted
            })
        })
        .collect();
    shown.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posix(paths: &str) -> Result<String> {
        group(Style::Posix, paths, &[], false)
    }

    fn required(paths: &str) -> Result<String> {
        group(Style::Posix, paths, &[], true)
    }

    fn groups(doc: Result<String>) -> Vec<(String, Option<String>, Vec<String>)> {
        let Value::Object(doc) = json::parse(&doc.unwrap()).unwrap() else { panic!() };
        let Value::Array(gs) = doc.into_iter().find(|(k, _)| k == "groups").unwrap().1 else {
            panic!()
        };
        gs.into_iter()
            .map(|g| {
                let Value::Object(m) = g else { panic!() };
                let get = |k: &str| m.iter().find(|(n, _)| n == k).unwrap().1.clone();
                let s = |v: Value| match v {
                    Value::String(u) => String::from_utf16(&u).unwrap(),
                    _ => panic!(),
                };
                let Value::Array(inputs) = get("inputs") else { panic!() };
                let loc = match get("location") {
                    Value::Null => None,
                    v => Some(s(v)),
                };
                (s(get("root")), loc, inputs.into_iter().map(s).collect())
            })
            .collect()
    }

    #[test]
    fn posix_paths_group_by_common_root_and_locations() {
        let req = r#"{
            "inputs":[["/show/a/x.exr","file"],["/show/a/b/y.exr","file"],["/proj/tex/t.tx","file"],
                      ["/mnt/shared/lib.abc","file"],["/show/a/../a/z.exr","file"]],
            "outputs":["/show/a/renders"]}"#;
        let locations = [
            Location { name: "Proj".into(), path: "/proj".into(), shared: false },
            Location { name: "Lib".into(), path: "/mnt/shared".into(), shared: true },
        ];
        assert_eq!(
            groups(group(Style::Posix, req, &locations, false)),
            [
                // A location names the group; its root is still the common path of its files.
                ("/proj/tex".to_string(), Some("Proj".to_string()), vec!["t.tx".to_string()]),
                (
                    "/show/a".to_string(),
                    None,
                    vec!["b/y.exr".to_string(), "x.exr".to_string(), "z.exr".to_string()]
                ),
            ]
        );
    }

    #[test]
    fn a_single_file_roots_at_its_directory() {
        let req = r#"{"inputs":[["/show/a/x.exr","file"]]}"#;
        assert_eq!(groups(posix(req)), [("/show/a".to_string(), None, vec!["x.exr".to_string()])]);
    }

    #[test]
    fn windows_paths_group_per_drive_without_regard_to_case() {
        let req = r#"{"inputs":[["C:\\Show\\a.exr","file"],["c:/show/B.exr","file"],["D:\\x\\y.exr","file"]]}"#;
        let g = groups(group(Style::Windows, req, &[], false));
        assert_eq!(
            g[0],
            ("C:\\Show".to_string(), None, vec!["B.exr".to_string(), "a.exr".to_string()])
        );
        assert_eq!(g[1], ("D:\\x".to_string(), None, vec!["y.exr".to_string()]));
    }

    #[test]
    fn names_that_are_not_utf8_group_and_come_back_as_they_were() {
        let req = r#"{"inputs":[["/show/bad-\udcff/x","file"],["/show/\uffff\udcfe","file"],["/show/\ud83d\ude00","file"]]}"#;
        let doc = posix(req).unwrap();
        let inputs = r#""inputs":["bad-\udcff/x","\uffff\udcfe","\ud83d\ude00"]"#;
        assert!(
            doc.contains(r#"{"root":"/show","location":null,"#) && doc.contains(inputs),
            "{doc}"
        );
        let missing = r#"{"inputs":[["/a/\udcff","missing"]]}"#;
        assert!(required(missing).unwrap_err().message.ends_with(r#""/a/\udcff""#));
    }

    #[test]
    fn bad_requests_are_refused() {
        assert!(posix(r#"{"inputs":[["relative/x","file"]]}"#).is_err());
        let missing = r#"{"inputs":[["/a/x","missing"],["/a/y","missing"]]}"#;
        assert!(required(missing).unwrap_err().message.contains("missing input files: /a/x, /a/y"));
        assert!(posix(missing).unwrap().contains(r#""missing":["/a/x","/a/y"]"#));
        let dir = r#"{"inputs":[["/a","directory"]]}"#;
        assert!(posix(dir).unwrap_err().message.contains("directories given as input files: /a"));
        let long = r#"{"inputs":[["/a","directory"],["/l/o/n/g","too-long"]]}"#;
        assert!(posix(long).unwrap_err().message.ends_with(
            "input files: /a; inputs too long for this system to look up (shorten them): /l/o/n/g"
        ));
        let relative = [Location { name: "n".into(), path: "p".into(), shared: false }];
        assert!(group(Style::Posix, "{}", &relative, false).is_err());
        assert!(posix(r#"{"extra":1}"#).is_err());
        assert!(posix("[]").is_err());
    }
}
