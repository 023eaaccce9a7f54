//! A download's plan: what each destination holds against the manifest landing there, by the
//! facts the host found through its handles, and what the download then does.
//!
//! A file stands as the manifest has it when it is a regular file of the manifest's size and
//! mtime (microseconds) whose digest is the manifest's; a symlink, even to the right content,
//! is not the input. Missing files are downloaded; files that differ are conflicts, which the
//! policy overwrites, skips, refuses, or keeps while putting the manifest's content beside
//! them under a copy's name. Each distinct content of a destination is downloaded
//! once and put at every path that has it, in path order, the last place taking the staged
//! file itself and the others a copy.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use crate::error::{Error, Result};
use crate::json::{self, Value};
use crate::manifest::{Entry, Manifest};
use crate::portable;

/// What to do with a local file that exists and differs from the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Overwrite,
    Skip,
    Error,
    /// Keep the local file and put the manifest's content beside it ([`copy_name`]).
    CreateCopy,
}

/// What the host found at a manifest's path: whether it is a regular file, its size, its
/// mtime in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub regular: bool,
    pub size: u64,
    pub mtime_us: i64,
}

/// One destination: the merged manifest landing there, what stands there, the digests of
/// the files `to_hash` names (in its order; `None` before they are known), and the prefix
/// that makes a manifest path the path people are shown (the folder and a separator).
pub struct Destination {
    pub manifest: Manifest,
    pub found: BTreeMap<Vec<u16>, Found>,
    pub digests: Option<Vec<String>>,
    pub shown: Vec<u16>,
}

/// `[[path, kind, size, mtime-us]]` as the host found them (`kind` as `host-files.list-tree`
/// writes it: `"f"` a regular file, anything else not).
pub fn parse_found(text: &str) -> Result<BTreeMap<Vec<u16>, Found>> {
    let bad = || Error::invalid("found must be a list of [path, kind, size, mtime_us]");
    let Value::Array(rows) = json::parse(text)? else { return Err(bad()) };
    let mut out = BTreeMap::new();
    for row in rows {
        let Value::Array(cols) = row else { return Err(bad()) };
        let [Value::String(path), Value::String(kind), Value::Number(size), Value::Number(mtime)] =
            <[Value; 4]>::try_from(cols).map_err(|_| bad())?
        else {
            return Err(bad());
        };
        let found = Found {
            regular: kind == [u16::from(b'f')],
            size: size.parse().map_err(|_| bad())?,
            mtime_us: mtime.parse().map_err(|_| bad())?,
        };
        out.insert(path, found);
    }
    Ok(out)
}

/// The shown prefix, a JSON string (so that any host path crosses: a byte that is not UTF-8
/// as the lone surrogate `\udcXX`, as manifests spell such names).
pub fn parse_shown(text: &str) -> Result<Vec<u16>> {
    match json::parse(text)? {
        Value::String(units) => Ok(units),
        _ => Err(Error::invalid("shown must be a JSON string")),
    }
}

/// A JSON array of digests.
pub fn parse_digests(text: &str) -> Result<Vec<String>> {
    let bad = || Error::invalid("digests must be a list of strings");
    let Value::Array(items) = json::parse(text)? else { return Err(bad()) };
    items
        .into_iter()
        .map(|v| match v {
            Value::String(u) => String::from_utf16(&u).map_err(|_| bad()),
            _ => Err(bad()),
        })
        .collect()
}

/// The entries whose digest decides: regular files of the manifest's size and mtime.
fn same_stat<'a>(d: &'a Destination) -> impl Iterator<Item = &'a Entry> + 'a {
    d.manifest.entries().iter().filter(|e| {
        d.found.get(&e.path).is_some_and(|f| f.regular && f.size == e.size && f.mtime_us == e.mtime)
    })
}

/// What the host hashes in a destination before the plan can be made: `[[path, size]]`, the
/// form `hashing.hash-files` takes.
pub fn to_hash_json(d: &Destination) -> String {
    let mut out = String::from("[");
    for (i, e) in same_stat(d).enumerate() {
        out.push_str(if i > 0 { ",[" } else { "[" });
        json::write_string(&mut out, &e.path);
        let _ = write!(out, ",{}]", e.size);
    }
    out.push(']');
    out
}

/// Where one content goes: its path, digest, mtime and whether it takes a copy of the staged
/// file (another place takes the file itself).
#[derive(Debug, PartialEq, Eq)]
pub struct Place<'a> {
    pub path: &'a [u16],
    pub digest: &'a str,
    pub mtime_us: i64,
    pub copy: bool,
    /// A file that differs stands at `path` and is kept: the content goes to the first free
    /// [`copy_name`] instead.
    pub beside: bool,
}

/// One destination's part of the plan.
#[derive(Debug, Default)]
pub struct DestinationPlan<'a> {
    /// Each distinct content to download once, `(digest, size)`, in the order first needed.
    pub contents: Vec<(&'a str, u64)>,
    /// Every file to put in place, in path order (each folder opened once).
    pub places: Vec<Place<'a>>,
}

/// The counters of a download as planned.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub files: u64,
    pub bytes: u64,
    pub unchanged_files: u64,
    pub downloaded_files: u64,
    pub downloaded_bytes: u64,
    /// Distinct contents to download over all destinations, and their bytes.
    pub contents: u64,
    pub content_bytes: u64,
}

#[derive(Debug, Default)]
pub struct Plan<'a> {
    pub totals: Totals,
    /// The shown paths of the files that differed, under the outcome (`overwritten` or
    /// `skipped`), as UTF-16 units (a host path may hold a lone surrogate); empty when none
    /// differed.
    pub conflicts: Vec<Vec<u16>>,
    pub outcome: &'static str,
    pub destinations: Vec<DestinationPlan<'a>>,
}

/// What a download needs next: the digests of some destinations' files, or its plan.
pub enum Outcome<'a> {
    /// Per destination, the files to hash ([`to_hash_json`]), then to plan again with.
    Hash(Vec<String>),
    Planned(Plan<'a>),
}

/// The plan, once every destination that has files whose digest decides has their digests.
pub fn plan_or_hash(dests: &[Destination], policy: Policy) -> Result<Outcome<'_>> {
    if dests.iter().any(|d| d.digests.is_none() && same_stat(d).next().is_some()) {
        return Ok(Outcome::Hash(dests.iter().map(to_hash_json).collect()));
    }
    plan(dests, policy).map(Outcome::Planned)
}

/// Plans the download to every destination (see the module's doc); refused, naming every
/// file of the first destination that has any, when files differ under [`Policy::Error`].
pub fn plan(dests: &[Destination], policy: Policy) -> Result<Plan<'_>> {
    let mut out = Plan {
        outcome: match policy {
            Policy::Overwrite => "overwritten",
            Policy::CreateCopy => "copied",
            Policy::Skip | Policy::Error => "skipped",
        },
        ..Plan::default()
    };
    for d in dests {
        let entries = d.manifest.entries();
        out.totals.files += entries.len() as u64;
        out.totals.bytes += entries.iter().map(|e| e.size).sum::<u64>();
        let checked: Vec<&Entry> = same_stat(d).collect();
        let digests = d.digests.as_deref().unwrap_or_default();
        if checked.len() != digests.len() {
            return Err(Error::invalid(format!(
                "a destination has {} digests for the {} files its plan hashes",
                digests.len(),
                checked.len()
            )));
        }
        let mut missing = vec![];
        let mut differing = vec![];
        for e in entries {
            match d.found.get(&e.path) {
                None => missing.push(e),
                Some(f) if f.regular && f.size == e.size && f.mtime_us == e.mtime => {}
                Some(_) => differing.push(e),
            }
        }
        for (e, digest) in checked.into_iter().zip(digests) {
            if *digest == e.hash {
                out.totals.unchanged_files += 1;
            } else {
                differing.push(e);
            }
        }
        let shown: Vec<Vec<u16>> =
            differing.iter().map(|e| [&d.shown[..], &e.path].concat()).collect();
        if !differing.is_empty() && policy == Policy::Error {
            // a lone surrogate as U+FFFD: an error's message is a WIT string
            let named: Vec<String> = shown.iter().map(|p| String::from_utf16_lossy(p)).collect();
            return Err(Error::invalid(format!(
                "local files differ from the job's inputs: {}",
                named.join(", ")
            )));
        }
        out.conflicts.extend(shown);
        let mut todo: Vec<(&Entry, bool)> = missing.into_iter().map(|e| (e, false)).collect();
        match policy {
            Policy::Overwrite => todo.extend(differing.into_iter().map(|e| (e, false))),
            Policy::CreateCopy => todo.extend(differing.into_iter().map(|e| (e, true))),
            Policy::Skip | Policy::Error => {}
        }
        out.destinations.push(destination_plan(&todo, &mut out.totals));
    }
    Ok(out)
}

fn destination_plan<'a>(todo: &[(&'a Entry, bool)], totals: &mut Totals) -> DestinationPlan<'a> {
    let mut plan = DestinationPlan::default();
    let mut left: HashMap<&str, usize> = HashMap::new();
    for (e, _) in todo {
        let n = left.entry(e.hash.as_str()).or_insert(0);
        if *n == 0 {
            plan.contents.push((&e.hash, e.size));
            totals.contents += 1;
            totals.content_bytes += e.size;
        }
        *n += 1;
        totals.downloaded_files += 1;
        totals.downloaded_bytes += e.size;
    }
    let mut sorted = todo.to_vec();
    sorted.sort_by_cached_key(|(e, _)| code_points(&e.path));
    for (e, beside) in sorted {
        let n = left.get_mut(e.hash.as_str()).expect("counted above");
        *n -= 1;
        plan.places.push(Place {
            path: &e.path,
            digest: &e.hash,
            mtime_us: e.mtime,
            copy: *n > 0,
            beside,
        });
    }
    plan
}

/// The `n`th name (from 1) for the copy of `path` a download keeps beside a file that
/// differs, as the official downloader names it: `stem (n)suffix`, the suffix being the name
/// from its last `.` unless that begins or ends the name (Python's `PurePath.suffix`:
/// `a.tar (1).gz`, `.bashrc (1)`). The stem, then the suffix, is shortened a character at a
/// time from its end until the name fits the destination's name limit and the path its path
/// limit; refused when even ` (n)` alone does not fit.
pub fn copy_name(dest: &portable::Destination, path: &[u16], n: u32) -> Result<Vec<u16>> {
    let leaf_at = path.iter().rposition(|&u| u == SLASH).map_or(0, |i| i + 1);
    let (folder, leaf) = path.split_at(leaf_at);
    let dot = leaf.iter().rposition(|&u| u == DOT).filter(|&i| i > 0 && i + 1 < leaf.len());
    let (stem, suffix) = leaf.split_at(dot.unwrap_or(leaf.len()));
    let (mut stem, mut suffix) = (chars(stem), chars(suffix));
    let number: Vec<u16> = format!(" ({n})").encode_utf16().collect();
    loop {
        let name: Vec<u16> =
            stem.iter().flatten().chain(&number).chain(suffix.iter().flatten()).copied().collect();
        let whole = [folder, &name].concat();
        if crate::portable::fits(dest, &whole) {
            return Ok(whole);
        }
        if stem.pop().is_none() && suffix.pop().is_none() {
            return Err(Error::invalid(format!(
                "no name for a copy of {:?} fits the destination",
                String::from_utf16_lossy(path)
            )));
        }
    }
}

/// `units` as its characters' units (a lone surrogate alone), so that shortening never
/// splits a pair.
fn chars(units: &[u16]) -> Vec<Vec<u16>> {
    let mut out: Vec<Vec<u16>> = Vec::new();
    let mut i = 0;
    while i < units.len() {
        let pair = (0xd800..0xdc00).contains(&units[i])
            && units.get(i + 1).is_some_and(|u| (0xdc00..0xe000).contains(u));
        let width = if pair { 2 } else { 1 };
        out.push(units[i..i + width].to_vec());
        i += width;
    }
    out
}

const SLASH: u16 = b'/' as u16;
const DOT: u16 = b'.' as u16;

/// A path's order as people's tools sort names: by code point (a lone surrogate by its own
/// value), not by UTF-16 unit as manifests sort them.
fn code_points(path: &[u16]) -> Vec<u32> {
    char::decode_utf16(path.iter().copied())
        .map(|c| c.map_or_else(|e| u32::from(e.unpaired_surrogate()), u32::from))
        .collect()
}

impl Plan<'_> {
    /// `{"conflicts": {outcome: [shown path]}, "destinations": [{"contents": [[digest,
    /// size]], "places": [[path, digest, mtime-us, copy]]}]}` (schema:
    /// `wit/schemas/download-plan.schema.json`); `conflicts` is empty when none differed.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\"conflicts\":{");
        if !self.conflicts.is_empty() {
            let _ = write!(out, "\"{}\":[", self.outcome);
            for (i, p) in self.conflicts.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json::write_string(&mut out, p);
            }
            out.push(']');
        }
        out.push_str("},\"destinations\":[");
        for (i, d) in self.destinations.iter().enumerate() {
            out.push_str(if i > 0 { ",{\"contents\":[" } else { "{\"contents\":[" });
            for (j, (digest, size)) in d.contents.iter().enumerate() {
                let _ = write!(out, "{}[\"{digest}\",{size}]", if j > 0 { "," } else { "" });
            }
            out.push_str("],\"places\":[");
            for (j, p) in d.places.iter().enumerate() {
                out.push_str(if j > 0 { ",[" } else { "[" });
                json::write_string(&mut out, p.path);
                let _ = write!(out, ",\"{}\",{},{},{}]", p.digest, p.mtime_us, p.copy, p.beside);
            }
            out.push_str("]}");
        }
        out.push_str("]}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(rows: &[(&str, &str, u64, i64)]) -> Manifest {
        let entries = rows
            .iter()
            .map(|&(p, h, size, mtime)| Entry {
                path: p.encode_utf16().collect(),
                hash: h.to_string(),
                size,
                mtime,
            })
            .collect();
        Manifest::new(entries).unwrap()
    }

    fn dest(m: Manifest, found: &str, digests: &[&str]) -> Destination {
        Destination {
            manifest: m,
            found: parse_found(found).unwrap(),
            digests: Some(digests.iter().map(|d| d.to_string()).collect()),
            shown: "/dest/".encode_utf16().collect(),
        }
    }

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn sample() -> Manifest {
        manifest(&[
            ("missing", A, 1, 10),
            ("same", B, 2, 20),
            ("edited", B, 2, 20),
            ("bigger", A, 1, 10),
            ("link", A, 1, 10),
        ])
    }

    const FOUND: &str = r#"[["same","f",2,20],["edited","f",2,20],["bigger","f",5,10],
                           ["link","l",1,10]]"#;

    #[test]
    fn only_regular_files_of_the_manifests_size_and_mtime_are_hashed() {
        let d = dest(sample(), FOUND, &[]);
        assert_eq!(to_hash_json(&d), r#"[["edited",2],["same",2]]"#);
    }

    #[test]
    fn the_policy_decides_what_happens_to_files_that_differ() {
        let d = [dest(sample(), FOUND, &[A, B])];
        let over = plan(&d, Policy::Overwrite).unwrap();
        // differing by stat first, then by digest, each in manifest order
        let conflicts: Vec<String> =
            over.conflicts.iter().map(|p| String::from_utf16_lossy(p)).collect();
        assert_eq!(conflicts, ["/dest/bigger", "/dest/link", "/dest/edited"]);
        assert_eq!(over.outcome, "overwritten");
        let places: Vec<_> = over.destinations[0]
            .places
            .iter()
            .map(|p| (String::from_utf16_lossy(p.path), p.copy))
            .collect();
        let want = [("bigger", true), ("edited", false), ("link", true), ("missing", false)];
        assert_eq!(places, want.map(|(p, c)| (p.to_string(), c)));
        assert_eq!(over.destinations[0].contents, [(A, 1), (B, 2)]);
        let t = &over.totals;
        assert_eq!((t.files, t.bytes, t.unchanged_files), (5, 7, 1));
        assert_eq!(
            (t.downloaded_files, t.downloaded_bytes, t.contents, t.content_bytes),
            (4, 5, 2, 3)
        );

        let skip = plan(&d, Policy::Skip).unwrap();
        assert_eq!(skip.outcome, "skipped");
        assert_eq!(skip.conflicts.len(), 3);
        assert_eq!(skip.destinations[0].places.len(), 1);
        assert_eq!(skip.totals.downloaded_files, 1);

        let err = plan(&d, Policy::Error).unwrap_err();
        assert_eq!(
            err.message,
            "local files differ from the job's inputs: /dest/bigger, /dest/link, /dest/edited"
        );
    }

    #[test]
    fn create_copy_keeps_what_differs_and_puts_the_content_beside_it() {
        let d = [dest(sample(), FOUND, &[A, B])];
        let p = plan(&d, Policy::CreateCopy).unwrap();
        assert_eq!(p.outcome, "copied");
        assert_eq!(p.conflicts.len(), 3);
        let places: Vec<_> = p.destinations[0]
            .places
            .iter()
            .map(|p| (String::from_utf16_lossy(p.path), p.beside))
            .collect();
        let want = [("bigger", true), ("edited", true), ("link", true), ("missing", false)];
        assert_eq!(places, want.map(|(p, b)| (p.to_string(), b)));
        assert_eq!(p.totals.downloaded_files, 4);
    }

    fn copy(path: &str, n: u32, dest: &portable::Destination) -> String {
        let units: Vec<u16> = path.encode_utf16().collect();
        String::from_utf16(&copy_name(dest, &units, n).unwrap()).unwrap()
    }

    #[test]
    fn copies_are_named_as_the_official_downloader_names_them() {
        let linux = portable::Destination::usual(portable::Platform::Linux);
        assert_eq!(copy("a/b/shot.exr", 1, &linux), "a/b/shot (1).exr");
        assert_eq!(copy("scene.tar.gz", 2, &linux), "scene.tar (2).gz");
        assert_eq!(copy(".bashrc", 1, &linux), ".bashrc (1)");
        assert_eq!(copy("trailing.", 1, &linux), "trailing. (1)");
        assert_eq!(copy("noext", 12, &linux), "noext (12)");
    }

    #[test]
    fn a_copys_name_is_shortened_to_fit_the_limits() {
        let linux = portable::Destination::usual(portable::Platform::Linux);
        let long = format!("{}.exr", "é".repeat(125)); // 254 bytes
        let got = copy(&long, 1, &linux);
        assert!(got.len() <= 255, "{} bytes", got.len());
        assert!(got.ends_with("é (1).exr"));
        let windows = portable::Destination::given(
            portable::Platform::Windows,
            240,
            None,
            None,
            false,
            false,
        );
        let got = copy("folder/a-long-name.exr", 3, &windows);
        assert_eq!(got, "folder/a-l (3).exr"); // 240, a separator and 18: under MAX_PATH
        let tight =
            portable::Destination::given(portable::Platform::Linux, 0, None, Some(3), false, false);
        let units: Vec<u16> = "name".encode_utf16().collect();
        assert!(copy_name(&tight, &units, 1).is_err());
    }

    #[test]
    fn content_is_downloaded_once_per_destination_and_counted_over_all() {
        let m = || manifest(&[("x/1", A, 4, 1), ("x/2", A, 4, 1), ("y", A, 4, 1)]);
        let d = [dest(m(), "[]", &[]), dest(m(), "[]", &[])];
        let p = plan(&d, Policy::Overwrite).unwrap();
        for part in &p.destinations {
            assert_eq!(part.contents, [(A, 4)]);
            assert_eq!(part.places.iter().map(|p| p.copy).collect::<Vec<_>>(), [true, true, false]);
        }
        assert_eq!((p.totals.contents, p.totals.content_bytes), (2, 8));
        assert_eq!(p.totals.downloaded_files, 6);
        assert!(p.conflicts.is_empty());
        assert_eq!(
            p.to_json(),
            format!(
                r#"{{"conflicts":{{}},"destinations":[{d},{d}]}}"#,
                d = format!(
                    r#"{{"contents":[["{A}",4]],"places":[["x/1","{A}",1,true,false],["x/2","{A}",1,true,false],["y","{A}",1,false,false]]}}"#
                )
            )
        );
    }

    #[test]
    fn places_go_in_code_point_order() {
        // U+FF5E sorts after U+1F600 by UTF-16 unit (0xD83D) but before it by code point.
        let m = manifest(&[("\u{1F600}", A, 1, 1), ("\u{FF5E}", B, 1, 1)]);
        let d = [dest(m, "[]", &[])];
        let p = plan(&d, Policy::Overwrite).unwrap();
        let order: Vec<_> =
            p.destinations[0].places.iter().map(|p| String::from_utf16_lossy(p.path)).collect();
        assert_eq!(order, ["\u{FF5E}", "\u{1F600}"]);
    }

    #[test]
    fn digests_are_asked_for_only_where_they_decide() {
        let mut d = [dest(sample(), FOUND, &[]), dest(sample(), "[]", &[])];
        d[0].digests = None;
        d[1].digests = None;
        match plan_or_hash(&d, Policy::Skip).unwrap() {
            Outcome::Hash(rows) => assert_eq!(rows, [r#"[["edited",2],["same",2]]"#, "[]"]),
            Outcome::Planned(_) => panic!("planned without the digests that decide"),
        }
        let mut empty = [dest(sample(), "[]", &[])];
        empty[0].digests = None; // nothing stands there: nothing to hash
        assert!(matches!(plan_or_hash(&empty, Policy::Skip).unwrap(), Outcome::Planned(_)));
    }

    #[test]
    fn digests_must_match_what_the_plan_hashes() {
        let err = plan(&[dest(sample(), FOUND, &[A])], Policy::Skip).unwrap_err();
        assert!(err.message.contains("1 digests for the 2 files"), "{}", err.message);
        assert!(parse_found(r#"[["a","f",-1,0]]"#).is_err());
        assert!(parse_digests("[1]").is_err());
    }
}
