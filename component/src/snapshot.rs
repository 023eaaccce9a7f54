//! Snapshot planning: which listed entries become manifest entries, and why the others do not.
//!
//! The host lists the root without following symlinks (one native call; WASI would cost a
//! thread hand-off per file under wasmtime's C API). This module decides, so the rules live
//! in the component:
//! - regular files are included, dotfiles and dot-directories too;
//! - a symlink is followed when its target is a regular file inside the root (the entry keeps
//!   the link's path and takes the target's size and mtime, as the official code does); a link
//!   to a directory, out of the root, or to nothing is skipped, and counted by reason;
//! - special files (FIFOs, sockets, devices) and empty directories are skipped and counted
//!   (a v2023-03-03 manifest cannot hold them);
//! - a name a manifest cannot hold on every platform (a backslash, or a first segment that
//!   reads as a drive letter such as `c:x`) is skipped and counted;
//! - `include` patterns, when given, keep only matching paths; `exclude` patterns then drop
//!   matching ones (see `glob` for the syntax); dropped files are counted.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;

use crate::error::{Error, Result};
use crate::glob::Glob;
use crate::json::{self, Value};
use crate::relpath;

/// What the host's listing says an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

/// One entry of the host's listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub path: Vec<u16>,
    pub kind: Kind,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

/// What a symlink leads to, as the sandbox resolves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    File { size: u64, mtime_ns: i64, ctime_ns: i64 },
    Dir,
    Outside,
    Missing,
    Other,
}

#[derive(Debug, Default)]
pub struct Options {
    include: Vec<Glob>,
    exclude: Vec<Glob>,
}

/// Why an entry is not in the manifest; the names appear in the plan's `skipped` object.
const SYMLINK_TO_DIR: &str = "symlink-to-directory";
const SYMLINK_OUTSIDE: &str = "symlink-outside-root";
const BROKEN_SYMLINK: &str = "broken-symlink";
const SPECIAL: &str = "special-file";
const EMPTY_DIR: &str = "empty-directory";
const UNSUPPORTED_NAME: &str = "unsupported-name";

/// A file to hash and put in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub path: Vec<u16>,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl Planned {
    /// The manifest's mtime: nanoseconds divided by 1000, rounded down (before 1970 too), as
    /// the official `st_mtime_ns // 1000`.
    pub fn mtime_us(&self) -> i64 {
        self.mtime_ns.div_euclid(1000)
    }
}

#[derive(Debug, Default)]
pub struct Plan {
    pub files: Vec<Planned>,
    pub skipped: BTreeMap<&'static str, Vec<Vec<u16>>>,
    pub excluded: usize,
}

impl Options {
    /// Reads `{"include": [...], "exclude": [...]}`; both optional.
    pub fn from_json(text: &str) -> Result<Options> {
        let Value::Object(members) = json::parse(text)? else {
            return Err(Error::invalid("snapshot options must be a JSON object"));
        };
        let mut options = Options::default();
        for (name, value) in members {
            let globs = match name.as_str() {
                "include" => &mut options.include,
                "exclude" => &mut options.exclude,
                other => return Err(Error::invalid(format!("unknown snapshot option {other:?}"))),
            };
            let Value::Array(items) = value else {
                return Err(Error::invalid(format!("snapshot option {name} must be a list")));
            };
            for item in items {
                match item {
                    Value::String(u) if !u.is_empty() => {
                        globs.push(Glob::new(&String::from_utf16_lossy(&u)));
                    }
                    _ => {
                        return Err(Error::invalid(format!(
                            "{name} patterns must be non-empty strings"
                        )))
                    }
                }
            }
        }
        Ok(options)
    }

    fn keeps(&self, path: &[u16]) -> bool {
        (self.include.is_empty() || self.include.iter().any(|g| g.matches(path)))
            && !self.exclude.iter().any(|g| g.matches(path))
    }
}

/// Reads the host's listing: `[[path, kind, size, mtime_ns, ctime_ns], ...]`, kind one of
/// `"f"`, `"d"`, `"l"` (symlink) or `"o"` (anything else).
pub fn parse_listing(text: &str) -> Result<Vec<Listed>> {
    let bad = || Error::invalid("the host's listing is malformed");
    let Value::Array(rows) = json::parse(text)? else { return Err(bad()) };
    rows.into_iter()
        .map(|row| {
            let Value::Array(cols) = row else { return Err(bad()) };
            let [Value::String(path), Value::String(kind), Value::Number(size), Value::Number(m), Value::Number(c)] =
                <[Value; 5]>::try_from(cols).map_err(|_| bad())?
            else {
                return Err(bad());
            };
            let kind = match kind.as_slice() {
                [0x66] => Kind::File,
                [0x64] => Kind::Dir,
                [0x6c] => Kind::Symlink,
                _ => Kind::Other,
            };
            Ok(Listed {
                path,
                kind,
                size: size.parse().map_err(|_| bad())?,
                mtime_ns: m.parse().map_err(|_| bad())?,
                ctime_ns: c.parse().map_err(|_| bad())?,
            })
        })
        .collect()
}

/// Decides every listed entry; `resolve` follows a symlink inside the sandbox.
pub fn plan(
    listing: Vec<Listed>,
    options: &Options,
    mut resolve: impl FnMut(&[u16]) -> Target,
) -> Plan {
    let mut plan = Plan::default();
    let parents: HashSet<&[u16]> = listing
        .iter()
        .filter_map(|e| e.path.iter().rposition(|&u| u == b'/' as u16).map(|i| &e.path[..i]))
        .collect();
    let skip = |plan: &mut Plan, why: &'static str, path: &[u16]| {
        plan.skipped.entry(why).or_default().push(path.to_vec());
    };
    for e in &listing {
        if e.kind == Kind::Dir {
            if !parents.contains(e.path.as_slice()) {
                skip(&mut plan, EMPTY_DIR, &e.path);
            }
            continue;
        }
        if !options.keeps(&e.path) {
            plan.excluded += 1;
            continue;
        }
        if relpath::check_units(&e.path).is_err() {
            skip(&mut plan, UNSUPPORTED_NAME, &e.path);
            continue;
        }
        let (size, mtime_ns, ctime_ns) = match e.kind {
            Kind::File => (e.size, e.mtime_ns, e.ctime_ns),
            Kind::Symlink => match resolve(&e.path) {
                Target::File { size, mtime_ns, ctime_ns } => (size, mtime_ns, ctime_ns),
                Target::Dir => {
                    skip(&mut plan, SYMLINK_TO_DIR, &e.path);
                    continue;
                }
                Target::Outside => {
                    skip(&mut plan, SYMLINK_OUTSIDE, &e.path);
                    continue;
                }
                Target::Missing => {
                    skip(&mut plan, BROKEN_SYMLINK, &e.path);
                    continue;
                }
                Target::Other => {
                    skip(&mut plan, SPECIAL, &e.path);
                    continue;
                }
            },
            Kind::Other | Kind::Dir => {
                skip(&mut plan, SPECIAL, &e.path);
                continue;
            }
        };
        plan.files.push(Planned { path: e.path.clone(), size, mtime_ns, ctime_ns });
    }
    plan
}

impl Plan {
    /// `{"files": [[path, size, mtime_us, mtime_ns, ctime_ns], ...], "skipped": {reason:
    /// [path, ...]}, "excluded": n}`, pure ASCII; `mtime_us` is [`Planned::mtime_us`].
    pub fn to_json(&self) -> String {
        let mut out = String::from(r#"{"files":["#);
        for (i, f) in self.files.iter().enumerate() {
            out.push_str(if i > 0 { ",[" } else { "[" });
            json::write_string(&mut out, &f.path);
            let _ = write!(out, ",{},{},{},{}]", f.size, f.mtime_us(), f.mtime_ns, f.ctime_ns);
        }
        out.push_str(r#"],"skipped":{"#);
        for (i, (why, paths)) in self.skipped.iter().enumerate() {
            let _ = write!(out, r#"{}"{why}":["#, if i > 0 { "," } else { "" });
            for (j, p) in paths.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                json::write_string(&mut out, p);
            }
            out.push(']');
        }
        let _ = write!(out, r#"}},"excluded":{}}}"#, self.excluded);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    fn listed(path: &str, kind: Kind) -> Listed {
        Listed { path: u(path), kind, size: 3, mtime_ns: -1_500, ctime_ns: 7 }
    }

    #[test]
    fn decides_every_kind_of_entry() {
        let listing = vec![
            listed("a.txt", Kind::File),
            listed(".hidden", Kind::Dir),
            listed(".hidden/x", Kind::File),
            listed("empty", Kind::Dir),
            listed("fifo", Kind::Other),
            listed("in", Kind::Symlink),
            listed("out", Kind::Symlink),
            listed("gone", Kind::Symlink),
            listed("dirlink", Kind::Symlink),
            listed("skip.tmp", Kind::File),
            listed("back\\slash", Kind::File),
        ];
        let options = Options::from_json(r#"{"exclude": ["*.tmp"]}"#).unwrap();
        let plan = plan(listing, &options, |p| match String::from_utf16_lossy(p).as_str() {
            "in" => Target::File { size: 9, mtime_ns: 5_000, ctime_ns: 6 },
            "out" => Target::Outside,
            "gone" => Target::Missing,
            _ => Target::Dir,
        });
        let names: Vec<String> =
            plan.files.iter().map(|f| String::from_utf16_lossy(&f.path)).collect();
        assert_eq!(names, ["a.txt", ".hidden/x", "in"]);
        assert_eq!(plan.files[2].size, 9);
        assert_eq!(plan.excluded, 1);
        let skipped: Vec<(&str, usize)> = plan.skipped.iter().map(|(k, v)| (*k, v.len())).collect();
        assert_eq!(
            skipped,
            [
                (BROKEN_SYMLINK, 1),
                (EMPTY_DIR, 1),
                (SPECIAL, 1),
                (SYMLINK_OUTSIDE, 1),
                (SYMLINK_TO_DIR, 1),
                (UNSUPPORTED_NAME, 1)
            ]
        );
        assert!(plan.to_json().starts_with(r#"{"files":[["a.txt",3,-2,-1500,7],"#));
    }

    #[test]
    fn include_then_exclude() {
        let listing = vec![
            listed("a/x.exr", Kind::File),
            listed("a/y.txt", Kind::File),
            listed("b/z.exr", Kind::File),
        ];
        let options = Options::from_json(r#"{"include": ["*.exr"], "exclude": ["b/**"]}"#).unwrap();
        let plan = plan(listing, &options, |_| Target::Missing);
        assert_eq!(plan.files.len(), 1);
        assert_eq!(plan.excluded, 2);
    }

    #[test]
    fn listing_and_options_are_validated() {
        assert!(parse_listing(r#"[["a","f",1,2,3]]"#).is_ok());
        assert!(parse_listing(r#"[["a","f",1,2]]"#).is_err());
        assert!(parse_listing(r#"[["a","f",-1,2,3]]"#).is_err());
        assert!(Options::from_json(r#"{"inclde": []}"#).is_err());
        assert!(Options::from_json(r#"{"include": [""]}"#).is_err());
    }
}
