//! Snapshot planning: which listed entries become manifest entries, and why the others do not.
//!
//! The host lists the root without following symlinks (one native call; WASI would cost a
//! thread hand-off per file under wasmtime's C API). This module decides, so the rules live
//! in the component:
//! - regular files are included, dotfiles and dot-directories too;
//! - a symlink is followed when its target is a regular file inside the root (the entry keeps
//!   the link's path and takes the target's size and mtime, as the official code does); a link
//!   to a directory, out of the root, or to nothing is skipped, and counted by reason. The
//!   sandbox refuses absolute targets, so one naming a place below the root's path on the host
//!   (the `host_roots` option) is translated to the root-relative path it means and followed
//!   from there, up to `MAX_LINKS` links in a row;
//! - special files (FIFOs, sockets, devices) and empty directories are skipped and counted
//!   (a v2023-03-03 manifest cannot hold them);
//! - every name the file system lists is kept as the official encoder keeps it on POSIX: a
//!   backslash, a colon, control characters, any Unicode, and bytes that are not UTF-8 (as
//!   lone surrogates, Python's `surrogateescape`). Whether a destination can hold a name is
//!   decided when a download is planned (`portable`); only a path no root can hold (see
//!   `relpath`), which no file system lists, is skipped and counted as an unsupported name;
//! - `include` patterns, when given, keep only matching paths; `exclude` patterns then drop
//!   matching ones (see `glob` for the syntax); dropped files are counted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;

use crate::error::{Error, Result};
use crate::glob::Filter;
use crate::json::{self, Value};
use crate::manifest_v2025 as v2025;
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
    /// An execute permission bit is set.
    pub executable: bool,
    /// A symlink's target as written, when the host read it (the sandbox refuses to tell an
    /// absolute one).
    pub target: Option<Vec<u16>>,
    /// The ctime of the file a symlink leads to, as the host's system reports it (the
    /// sandbox's stat gives a birth time instead, which a rewrite does not change).
    pub target_ctime_ns: Option<i64>,
    /// The mtime of the file a symlink leads to, as the host's system reports it (WASI's
    /// datetime has no time before 1970).
    pub target_mtime_ns: Option<i64>,
}

/// How the plan looks at symlinks, inside the sandbox.
pub trait Links {
    /// Follows the symlink `path` and says what it leads to.
    fn resolve(&mut self, path: &[u16]) -> Target;
    /// The symlink's target as written, if it can be read.
    fn read_link(&mut self, path: &[u16]) -> Option<Vec<u16>>;
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
    filter: Filter,
    /// Plan for the newer manifest format (symlinks, directories, runnable, chunks).
    v2025: bool,
    /// The root's absolute paths on the host (as given, and resolved), without a trailing
    /// `/`: what absolute symlink targets inside the root begin with.
    host_roots: Vec<Vec<u16>>,
}

/// Symlinks followed in a row before a chain counts as leading nowhere.
const MAX_LINKS: usize = 8;

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
    /// Recorded as runnable (newer format only).
    pub runnable: bool,
    /// Hash in chunks of this many bytes (newer format, large files), or 0 for one digest.
    pub chunk: u64,
    /// Where to read the content, when not at `path`: the root-relative file an absolute
    /// symlink leads to (the sandbox does not follow those).
    pub source: Option<Vec<u16>>,
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
    /// Symlinks kept as symlinks (newer format): path and root-relative target.
    pub symlinks: Vec<(Vec<u16>, Vec<u16>)>,
    /// Directories listed (newer format).
    pub dirs: Vec<Vec<u16>>,
    pub skipped: BTreeMap<&'static str, Vec<Vec<u16>>>,
    pub excluded: usize,
}

impl Options {
    /// The options `snapshot.options` gives: globs (each non-empty), the newer format or
    /// not, and the root's absolute paths on the host.
    pub fn new(
        include: &[String],
        exclude: &[String],
        v2025: bool,
        host_roots: &[String],
    ) -> Result<Options> {
        let mut roots = Vec::new();
        for r in host_roots {
            let mut u: Vec<u16> = r.encode_utf16().collect();
            if u.first() != Some(&SLASH) {
                return Err(Error::invalid("host-roots must be absolute paths"));
            }
            while u.len() > 1 && u.last() == Some(&SLASH) {
                u.pop();
            }
            roots.push(u);
        }
        Ok(Options { filter: Filter::new(include, exclude)?, v2025, host_roots: roots })
    }

    /// Reads `{"include": [...], "exclude": [...], "format", "host_roots"}`; all optional.
    #[cfg(test)]
    pub fn from_json(text: &str) -> Result<Options> {
        let Value::Object(members) = json::parse(text)? else {
            return Err(Error::invalid("snapshot options must be a JSON object"));
        };
        let strings = |v: Value| match v {
            Value::Array(items) => items
                .into_iter()
                .map(|i| match i {
                    Value::String(u) => Ok(String::from_utf16_lossy(&u)),
                    _ => Err(Error::invalid("options hold strings")),
                })
                .collect::<Result<Vec<_>>>(),
            Value::String(u) => Ok(vec![String::from_utf16_lossy(&u)]),
            _ => Err(Error::invalid("options hold strings")),
        };
        let (mut lists, mut v2025) = ([Vec::new(), Vec::new(), Vec::new()], false);
        for (name, value) in members {
            let i = match name.as_str() {
                "include" => 0,
                "exclude" => 1,
                "host_roots" => 2,
                "format" => {
                    v2025 = match strings(value)?.as_slice() {
                        [f] if f == "v2023-03-03" => false,
                        [f] if f == "v2025-12-snapshot" => true,
                        _ => return Err(Error::invalid("format is unknown")),
                    };
                    continue;
                }
                other => return Err(Error::invalid(format!("unknown snapshot option {other:?}"))),
            };
            lists[i] = strings(value)?;
        }
        Options::new(&lists[0], &lists[1], v2025, &lists[2])
    }

    fn keeps(&self, path: &[u16]) -> bool {
        self.filter.keeps(path)
    }
}

/// Reads the host's listing: `[[path, kind, size, mtime_ns, ctime_ns, executable], ...]`,
/// the times strings of digits,
/// a symlink's row ending with its target as written, then its target's ctime and mtime,
/// when the host could read them;
/// kind one of `"f"`, `"d"`, `"l"` (symlink) or `"o"` (anything else).
pub fn parse_listing(text: &str) -> Result<Vec<Listed>> {
    let bad = || Error::invalid("the host's listing is malformed");
    let Value::Array(rows) = json::parse(text)? else { return Err(bad()) };
    rows.into_iter()
        .map(|row| {
            let Value::Array(mut cols) = row else { return Err(bad()) };
            let target_mtime_ns = match cols.len() {
                9 => match cols.pop() {
                    Some(Value::String(n)) => Some(nanoseconds(&n).ok_or_else(bad)?),
                    _ => return Err(bad()),
                },
                _ => None,
            };
            let target_ctime_ns = match cols.len() {
                8 => match cols.pop() {
                    Some(Value::String(n)) => Some(nanoseconds(&n).ok_or_else(bad)?),
                    _ => return Err(bad()),
                },
                _ => None,
            };
            let target = match cols.len() {
                7 => match cols.pop() {
                    Some(Value::String(t)) => Some(t),
                    _ => return Err(bad()),
                },
                _ => None,
            };
            let [Value::String(path), Value::String(kind), Value::Number(size), Value::String(m), Value::String(c), Value::Bool(executable)] =
                <[Value; 6]>::try_from(cols).map_err(|_| bad())?
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
                mtime_ns: nanoseconds(&m).ok_or_else(bad)?,
                ctime_ns: nanoseconds(&c).ok_or_else(bad)?,
                executable,
                target,
                target_ctime_ns,
                target_mtime_ns,
            })
        })
        .collect()
}

/// A time in nanoseconds as JSON carries it: a string of decimal digits, `-` before 1970.
fn nanoseconds(units: &[u16]) -> Option<i64> {
    String::from_utf16(units).ok()?.parse().ok()
}

/// Decides every listed entry; `links` looks at symlinks inside the sandbox.
pub fn plan(listing: Vec<Listed>, options: &Options, links: &mut impl Links) -> Plan {
    let mut plan = Plan::default();
    let not_dirs: HashSet<&[u16]> =
        listing.iter().filter(|e| e.kind != Kind::Dir).map(|e| e.path.as_slice()).collect();
    let listed = listing.iter().filter_map(|e| Some((e.path.as_slice(), e.target.as_deref()?)));
    let mut texts = LinkTexts { links, listed: listed.collect() };
    let parents: HashSet<&[u16]> = listing
        .iter()
        .filter_map(|e| e.path.iter().rposition(|&u| u == SLASH).map(|i| &e.path[..i]))
        .collect();
    let skip = |plan: &mut Plan, why: &'static str, path: &[u16]| {
        plan.skipped.entry(why).or_default().push(path.to_vec());
    };
    for e in &listing {
        if e.kind == Kind::Dir {
            if options.v2025 && options.keeps(&e.path) && relpath::check_units(&e.path).is_ok() {
                plan.dirs.push(e.path.clone());
            } else if !options.v2025 && !parents.contains(e.path.as_slice()) {
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
        let mut source = None;
        let (size, mtime_ns, ctime_ns) = match e.kind {
            Kind::File => (e.size, e.mtime_ns, e.ctime_ns),
            Kind::Symlink if options.v2025 => {
                let target =
                    texts.read_link(&e.path).and_then(|t| options.target(&e.path, &t, &not_dirs));
                match target {
                    // Through a file: it leads nowhere, and no manifest could hold it (its
                    // target's parents are directories in the newer format).
                    Some(t) if through_a_file(&t, &not_dirs) => {
                        skip(&mut plan, BROKEN_SYMLINK, &e.path)
                    }
                    Some(target) => plan.symlinks.push((e.path.clone(), target)),
                    None => skip(&mut plan, SYMLINK_OUTSIDE, &e.path),
                }
                continue;
            }
            Kind::Symlink => match follow(&mut texts, &e.path, options) {
                (Target::File { size, mtime_ns, ctime_ns }, at) => {
                    source = at;
                    let mtime_ns = e.target_mtime_ns.unwrap_or(mtime_ns);
                    (size, mtime_ns, e.target_ctime_ns.unwrap_or(ctime_ns))
                }
                (Target::Dir, _) => {
                    skip(&mut plan, SYMLINK_TO_DIR, &e.path);
                    continue;
                }
                (Target::Outside, _) => {
                    skip(&mut plan, SYMLINK_OUTSIDE, &e.path);
                    continue;
                }
                (Target::Missing, _) => {
                    skip(&mut plan, BROKEN_SYMLINK, &e.path);
                    continue;
                }
                (Target::Other, _) => {
                    skip(&mut plan, SPECIAL, &e.path);
                    continue;
                }
            },
            Kind::Other | Kind::Dir => {
                skip(&mut plan, SPECIAL, &e.path);
                continue;
            }
        };
        let big = options.v2025 && size > v2025::CHUNK_SIZE;
        plan.files.push(Planned {
            path: e.path.clone(),
            size,
            mtime_ns,
            ctime_ns,
            runnable: options.v2025 && e.executable && e.kind == Kind::File,
            chunk: if big { v2025::CHUNK_SIZE } else { 0 },
            source,
        });
    }
    // In path order, whatever order the host listed in: every host gives the same plan.
    plan.files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    plan.symlinks.sort_unstable();
    plan.dirs.sort_unstable();
    plan.skipped.values_mut().for_each(|paths| paths.sort_unstable());
    plan
}

const SLASH: u16 = b'/' as u16;

/// The sandbox's view of symlinks, with the texts the host listed: it reads absolute ones.
struct LinkTexts<'a, L: Links> {
    links: &'a mut L,
    listed: HashMap<&'a [u16], &'a [u16]>,
}

impl<L: Links> Links for LinkTexts<'_, L> {
    fn resolve(&mut self, path: &[u16]) -> Target {
        self.links.resolve(path)
    }

    fn read_link(&mut self, path: &[u16]) -> Option<Vec<u16>> {
        match self.listed.get(path) {
            Some(text) => Some(text.to_vec()),
            None => self.links.read_link(path),
        }
    }
}

/// Follows the symlink `path`: through the sandbox, and where the sandbox refuses (an absolute
/// target, or a chain through one), link by link by the targets' text. Returns what it leads
/// to and, when that is not what the sandbox found at `path`, the root-relative path reached.
fn follow(links: &mut impl Links, path: &[u16], options: &Options) -> (Target, Option<Vec<u16>>) {
    let mut at = path.to_vec();
    for _ in 0..MAX_LINKS {
        match links.resolve(&at) {
            Target::Outside => {}
            found => return (found, (at != path).then_some(at)),
        }
        let next = links.read_link(&at).and_then(|text| options.hop(&at, &text));
        match next {
            Some(next) => at = next,
            None => break,
        }
    }
    (Target::Outside, None)
}

impl Options {
    /// The root-relative path the symlink `link` with target `text` names, if it stays in
    /// the root: relative to the link's directory (see `inside_root`), or absolute below one
    /// of `host_roots`.
    fn target(&self, link: &[u16], text: &[u16], not_dirs: &HashSet<&[u16]>) -> Option<Vec<u16>> {
        if text.first() != Some(&SLASH) {
            return inside_root(link, text, not_dirs);
        }
        self.below_host_root(text)
    }

    /// The next link of a chain the sandbox would not follow: like `target`, but only for a
    /// plain text (see `plain`), so the path reached is the one the system reaches.
    fn hop(&self, link: &[u16], text: &[u16]) -> Option<Vec<u16>> {
        if text.first() == Some(&SLASH) {
            return self.below_host_root(text);
        }
        let dir = link.iter().rposition(|&u| u == SLASH).map_or(&link[..0], |i| &link[..=i]);
        plain(text).then(|| [dir, text].concat())
    }

    /// An absolute target below one of `host_roots`, as a root-relative path, when plain.
    fn below_host_root(&self, text: &[u16]) -> Option<Vec<u16>> {
        self.host_roots.iter().find_map(|root| {
            let rest = text.strip_prefix(root.as_slice())?.strip_prefix(&[SLASH])?;
            plain(rest).then(|| rest.to_vec())
        })
    }
}

/// Whether a parent of the root-relative `path` is listed as something other than a directory.
fn through_a_file(path: &[u16], not_dirs: &HashSet<&[u16]>) -> bool {
    let slashes = path.iter().enumerate().filter(|(_, &u)| u == SLASH);
    slashes.map(|(i, _)| &path[..i]).any(|parent| not_dirs.contains(parent))
}

/// A relative path without `.`, `..` or empty segments. Only such a path is followed by its
/// text: folding `a/../b` by text could reach another file than the system, which follows
/// `a` first (a symlink to elsewhere, say).
fn plain(path: &[u16]) -> bool {
    !path.is_empty()
        && path.split(|&u| u == SLASH).all(|s| !matches!(s, [] | [0x2e] | [0x2e, 0x2e]))
}

/// The root-relative path a symlink at `link` with target `target` names, if it stays in
/// the root (resolved by its text: `.` and `..` segments, relative to the link's directory).
/// None too where a `..` climbs out of a path listed as something other than a directory
/// (`d/..`, `d` a symlink): the system follows `d` first, so the text is not where it leads.
fn inside_root(link: &[u16], target: &[u16], not_dirs: &HashSet<&[u16]>) -> Option<Vec<u16>> {
    if target.first() == Some(&SLASH) {
        return None; // absolute: see `Options::target`
    }
    let mut parts: Vec<&[u16]> = link.split(|&u| u == SLASH).collect();
    parts.pop(); // the link's own name (or the one empty part of a link at the root's top)
    for segment in target.split(|&u| u == SLASH) {
        match segment {
            [] | [0x2e] => {}
            [0x2e, 0x2e] => {
                if not_dirs.contains(parts.join(&SLASH).as_slice()) {
                    return None;
                }
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join(&SLASH);
    relpath::check_units(&joined).ok().map(|()| joined)
}

impl Plan {
    /// How long a v2023-03-03 manifest of the planned files would be (the newer format's is
    /// about as long), to refuse a snapshot over the limit before anything is hashed.
    pub fn manifest_len(&self) -> usize {
        crate::manifest::encoded_len(
            self.files.iter().map(|f| (f.path.as_slice(), f.size, f.mtime_us())),
        )
    }

    /// `{"files": [[path, size, mtime_us, mtime_ns, ctime_ns, runnable, chunk, source], ...],
    /// "symlinks": [[path, target]], "dirs": [path], "skipped": {reason: [path, ...]},
    /// "excluded": n}`, pure ASCII; `mtime_us` is [`Planned::mtime_us`], the nanosecond
    /// times strings of digits (over 2^53, more than some JSON readers hold).
    pub fn to_json(&self) -> String {
        let mut out = String::from(r#"{"files":["#);
        for (i, f) in self.files.iter().enumerate() {
            out.push_str(if i > 0 { ",[" } else { "[" });
            json::write_string(&mut out, &f.path);
            let _ = write!(
                out,
                ",{},{},\"{}\",\"{}\",{},{},",
                f.size,
                f.mtime_us(),
                f.mtime_ns,
                f.ctime_ns,
                f.runnable,
                f.chunk
            );
            match &f.source {
                Some(source) => json::write_string(&mut out, source),
                None => out.push_str("null"),
            }
            out.push(']');
        }
        out.push_str(r#"],"symlinks":["#);
        for (i, (path, target)) in self.symlinks.iter().enumerate() {
            out.push_str(if i > 0 { ",[" } else { "[" });
            json::write_string(&mut out, path);
            out.push(',');
            json::write_string(&mut out, target);
            out.push(']');
        }
        out.push_str(r#"],"dirs":["#);
        for (i, d) in self.dirs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json::write_string(&mut out, d);
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
        Listed {
            path: u(path),
            kind,
            size: 3,
            mtime_ns: -1_500,
            ctime_ns: 7,
            executable: true,
            target: None,
            target_ctime_ns: None,
            target_mtime_ns: None,
        }
    }

    /// Symlinks as a test tree has them: name -> (what it resolves to, its text).
    struct FakeLinks;

    impl Links for FakeLinks {
        fn resolve(&mut self, path: &[u16]) -> Target {
            match String::from_utf16_lossy(path).as_str() {
                "in" => Target::File { size: 9, mtime_ns: 5_000, ctime_ns: 6 },
                "out" => Target::Outside,
                "gone" => Target::Missing,
                _ => Target::Dir,
            }
        }

        fn read_link(&mut self, path: &[u16]) -> Option<Vec<u16>> {
            let target = match String::from_utf16_lossy(path).as_str() {
                "in" => "a.txt",
                "out" => "../../etc/passwd",
                "gone" => "nowhere",
                "sub/up" => "../a.txt",
                _ => "/abs",
            };
            Some(u(target))
        }
    }

    fn sample() -> Vec<Listed> {
        vec![
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
            listed("a//b", Kind::File), // no file system lists this
        ]
    }

    fn names(paths: impl Iterator<Item = Vec<u16>>) -> Vec<String> {
        paths.map(|p| String::from_utf16_lossy(&p)).collect()
    }

    #[test]
    fn decides_every_kind_of_entry() {
        let options = Options::from_json(r#"{"exclude": ["*.tmp"]}"#).unwrap();
        let plan = plan(sample(), &options, &mut FakeLinks);
        // In path order, not the listing's.
        let kept = [".hidden/x", "a.txt", "back\\slash", "in"];
        assert_eq!(names(plan.files.iter().map(|f| f.path.clone())), kept);
        assert_eq!(plan.files[3].size, 9);
        assert!(plan.files.iter().all(|f| !f.runnable && f.chunk == 0));
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
                (UNSUPPORTED_NAME, 1),
            ]
        );
        assert!(plan.to_json().contains(r#"["a.txt",3,-2,"-1500","7",false,0,null],"#));
    }

    #[test]
    fn the_newer_format_skips_a_link_through_a_file() {
        let listing = vec![
            listed("a", Kind::File),
            Listed { target: Some(u("a/x")), ..listed("l", Kind::Symlink) },
        ];
        let options = Options::from_json(r#"{"format": "v2025-12-snapshot"}"#).unwrap();
        let plan = plan(listing, &options, &mut FakeLinks);
        assert!(plan.symlinks.is_empty());
        assert_eq!(names(plan.skipped[BROKEN_SYMLINK].iter().cloned()), ["l"]);
    }

    #[test]
    fn the_newer_format_does_not_fold_dot_dot_after_a_link() {
        let listing = vec![
            listed("f.txt", Kind::File),
            listed("a", Kind::Dir),
            listed("a/b", Kind::Dir),
            listed("a/f.txt", Kind::File),
            Listed { target: Some(u("a/b")), ..listed("d", Kind::Symlink) },
            Listed { target: Some(u("d/../f.txt")), ..listed("l", Kind::Symlink) },
            Listed { target: Some(u("a/b/../f.txt")), ..listed("ok", Kind::Symlink) },
        ];
        let options = Options::from_json(r#"{"format": "v2025-12-snapshot"}"#).unwrap();
        let plan = plan(listing, &options, &mut FakeLinks);
        // `d/..` is `a` to the system, not the root: "l" is left out; a plain `..` is folded.
        let kept: Vec<(String, String)> = plan
            .symlinks
            .iter()
            .map(|(p, t)| (String::from_utf16_lossy(p), String::from_utf16_lossy(t)))
            .collect();
        assert_eq!(kept, [("d".to_string(), "a/b".to_string()), ("ok".into(), "a/f.txt".into())]);
        assert_eq!(names(plan.skipped[SYMLINK_OUTSIDE].iter().cloned()), ["l"]);
    }

    /// A sandbox that follows no absolute target and will not even read one, over a root that
    /// is `/host/root` (resolved: `/real/root`) on the host.
    struct AbsoluteLinks;

    impl Links for AbsoluteLinks {
        fn resolve(&mut self, path: &[u16]) -> Target {
            match String::from_utf16_lossy(path).as_str() {
                "a.txt" => Target::File { size: 3, mtime_ns: 1_000, ctime_ns: 2 },
                _ => Target::Outside, // every link below leads to an absolute one
            }
        }

        fn read_link(&mut self, _: &[u16]) -> Option<Vec<u16>> {
            None
        }
    }

    #[test]
    fn absolute_symlinks_below_the_root_are_followed_where_they_lead() {
        let links = [
            ("abs", "/host/root/a.txt"),
            ("dots", "/host/root/sub/../a.txt"), // `sub` could be a link: not by its text
            ("real", "/real/root/a.txt"),
            ("rel", "abs"),
            ("out", "/host/rootless/a.txt"),
            ("up", "/host/root/../a.txt"),
            ("loop", "/host/root/loop"),
        ];
        let listing = links
            .iter()
            .map(|(name, text)| Listed { target: Some(u(text)), ..listed(name, Kind::Symlink) })
            .collect();
        let roots = r#"{"host_roots": ["/host/root/", "/real/root"]}"#;
        let plan = plan(listing, &Options::from_json(roots).unwrap(), &mut AbsoluteLinks);
        let files: Vec<(String, Option<String>)> = plan
            .files
            .iter()
            .map(|f| {
                (
                    String::from_utf16_lossy(&f.path),
                    f.source.as_deref().map(String::from_utf16_lossy),
                )
            })
            .collect();
        let followed = ["abs", "real", "rel"].map(|n| (n.to_string(), Some("a.txt".to_string())));
        assert_eq!(files, followed);
        assert!(plan.files.iter().all(|f| (f.size, f.mtime_ns) == (3, 1_000)));
        let outside = ["dots", "loop", "out", "up"];
        assert_eq!(names(plan.skipped[SYMLINK_OUTSIDE].iter().cloned()), outside);
        assert!(Options::from_json(r#"{"host_roots": ["relative"]}"#).is_err());
    }

    #[test]
    fn the_newer_format_keeps_symlinks_directories_and_runnable_bits() {
        let mut listing = sample();
        listing.push(listed("sub", Kind::Dir));
        listing.push(listed("sub/up", Kind::Symlink));
        let mut big = listed("huge.bin", Kind::File);
        big.size = v2025::CHUNK_SIZE + 1;
        listing.push(big);
        let options = Options::from_json(r#"{"format": "v2025-12-snapshot"}"#).unwrap();
        let plan = plan(listing, &options, &mut FakeLinks);
        let links: Vec<(String, String)> = plan
            .symlinks
            .iter()
            .map(|(p, t)| (String::from_utf16_lossy(p), String::from_utf16_lossy(t)))
            .collect();
        let expected = [("gone", "nowhere"), ("in", "a.txt"), ("sub/up", "a.txt")];
        assert_eq!(links, expected.map(|(a, b)| (a.to_string(), b.to_string())));
        assert_eq!(names(plan.skipped[SYMLINK_OUTSIDE].iter().cloned()), ["dirlink", "out"]);
        assert_eq!(names(plan.dirs.iter().cloned()), [".hidden", "empty", "sub"]);
        assert!(plan.files.iter().all(|f| f.runnable));
        let huge = plan.files.iter().find(|f| f.size > v2025::CHUNK_SIZE).unwrap();
        assert_eq!(huge.chunk, v2025::CHUNK_SIZE);
    }

    #[test]
    fn include_then_exclude() {
        let listing = vec![
            listed("a/x.exr", Kind::File),
            listed("a/y.txt", Kind::File),
            listed("b/z.exr", Kind::File),
        ];
        let options = Options::from_json(r#"{"include": ["*.exr"], "exclude": ["b/**"]}"#).unwrap();
        let plan = plan(listing, &options, &mut FakeLinks);
        assert_eq!(plan.files.len(), 1);
        assert_eq!(plan.excluded, 2);
    }

    #[test]
    fn listing_and_options_are_validated() {
        assert!(parse_listing(r#"[["a","f",1,"2","3",false]]"#).is_ok());
        assert!(parse_listing(r#"[["a","f",1,"2","3"]]"#).is_err());
        assert!(parse_listing(r#"[["a","f",-1,"2","3",true]]"#).is_err());
        // Nanoseconds are strings of digits: a JSON number there is refused.
        assert!(parse_listing(r#"[["a","f",1,2,3,false]]"#).is_err());
        let late = parse_listing(r#"[["a","f",1,"1700000010000042001","-5",false]]"#).unwrap();
        assert_eq!((late[0].mtime_ns, late[0].ctime_ns), (1_700_000_010_000_042_001, -5));
        assert!(Options::from_json(r#"{"inclde": []}"#).is_err());
        assert!(Options::from_json(r#"{"include": [""]}"#).is_err());
        assert!(Options::from_json(r#"{"format": "v1"}"#).is_err());
    }
}
