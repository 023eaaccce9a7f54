//! Whether a destination can hold what a download would write there, decided before anything
//! is written: every refused entry is named with its reason, and the download does not start.
//!
//! Names. Manifests carry every name a POSIX file system holds (see `relpath`); destinations
//! differ in what they take:
//! - **linux** (and any POSIX system but macOS): a name is bytes, so only NUL and `/` are
//!   impossible (`relpath` refuses a NUL; `/` separates). A name is written as the bytes its
//!   UTF-16 units stand for under Python's `surrogateescape`, as the official downloader
//!   writes it: characters as UTF-8, a lone surrogate U+DC80-U+DCFF as the byte it escapes.
//!   Refused: any other lone surrogate (it stands for no byte), escapes of bytes that together
//!   are UTF-8 (`\udcc3\udca9` is `é`, which the official encoder writes as `\u00e9`: two
//!   entries would be one file), and a segment over 255 bytes (ext4, XFS and Btrfs `NAME_MAX`).
//! - **macos**: APFS and HFS+ hold only UTF-8 names, so any lone surrogate is refused; a
//!   segment holds at most 255 bytes of UTF-8. Their usual variants match names without regard
//!   to case and to Unicode normalization, so two names of one folder that are the same under
//!   Unicode's canonical caseless match (NFD, case folding, NFD: Unicode 3.13, D145) are
//!   refused, both of them, and everything below them.
//! - **windows**: refused are `\`, `:`, `*`, `?`, `"`, `<`, `>`, `|` and the control
//!   characters U+0001-U+001F; a name ending in `.` or space (Windows drops them); the
//!   reserved device names CON, PRN, AUX, NUL, COM1-COM9, COM¹-COM³, LPT1-LPT9, LPT¹-LPT³,
//!   CONIN$ and CONOUT$, in any case, alone or before an extension (`nul.txt`, `Com1 .tar.gz`):
//!   Microsoft's "Naming Files, Paths, and Namespaces", and the rule of CPython 3.13's
//!   `ntpath.isreserved`; a lone surrogate (a POSIX byte that is not UTF-8 has no Windows
//!   spelling); a segment over 255 UTF-16 units (NTFS). NTFS matches names without regard to
//!   case (its upcase table: each character's simple uppercase), so two names of one folder
//!   that are the same uppercased are refused, both of them, and everything below them.
//!
//! Times. A download sets each file's mtime to the manifest's microseconds; a time the
//! destination cannot store would be changed silently, and every later download would see a
//! conflict with the tool's own output. The range accepted is where the platform's usual file
//! system stores the time exactly at microsecond precision, within what a signed 64-bit count
//! of nanoseconds since 1970 holds (1677-09-21T00:12:43.145225Z to 2262-04-11T23:47:16.854775Z):
//! hosts set and read times as such (`utimensat` and `st_mtime_ns` through Python's
//! `os.utime(ns=...)`, and the time types of Rust and Go).
//! - **linux**: ext4's range with 256-byte inodes, from -2^31 s (1901-12-13T20:45:52Z) to
//!   2^34 - 2^31 - 1 s (2446-05-10T22:38:55Z; Linux's Documentation/filesystems/ext4/inodes.rst,
//!   "Inode Timestamps"), so from 1901-12-13T20:45:52Z to the 64-bit limit. XFS without
//!   `bigtime` and ext4 with 128-byte inodes stop at 2038-01-19T03:14:07Z; those are not told
//!   apart here.
//! - **macos**: APFS counts nanoseconds since 1970 in an unsigned 64-bit field (Apple File
//!   System Reference, `j_inode_val_t.mod_time`), so from 1970-01-01T00:00:00Z to the 64-bit
//!   limit.
//! - **windows**: NTFS counts 100 ns since 1601 (`FILETIME`), which covers the whole 64-bit
//!   range.
//!
//! Lengths. The host gives the facts of the destination's file system (`Destination`): its
//! root's length as the system counts it, and `PATH_MAX` and `NAME_MAX` as `pathconf` answers
//! them (or, on Windows, whether the root has the `\\?\` long-path prefix). Lengths count
//! the bytes a name is written as (UTF-16 units on Windows). Refused:
//! - a name longer than `NAME_MAX` (255 where the host does not know it: ext4, XFS, Btrfs,
//!   APFS and NTFS);
//! - a path, with the root and the separator after it, of `PATH_MAX` or more (`PATH_MAX`
//!   counts the terminating NUL). Where the host does not know it: Linux's 4,096, macOS's
//!   1,024, on Windows `MAX_PATH`, 260, or 32,767 below a root given with the long-path
//!   prefix;
//! - a path more than [`MAX_DEPTH`] levels below the root. The systems set no such limit, but
//!   deeper trees break the tools that walk them: Python's `Path.mkdir(parents=True)`, which
//!   the official downloader uses, recurses once a level and fails near 1,000.

use std::collections::hash_map::Entry as Slot;
use std::collections::{HashMap, HashSet};

use caseless::Caseless;
use unicode_normalization::UnicodeNormalization;

use crate::attachments::iso_time;
use crate::error::{Error, Result};
use crate::relpath;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Linux,
    MacOs,
    Windows,
}

/// The latest mtime, in microseconds, whose nanoseconds fit a signed 64-bit count.
const LAST_US: i64 = i64::MAX / 1000;
/// The earliest one.
const FIRST_US: i64 = i64::MIN / 1000;
/// ext4's earliest time, -2^31 seconds.
const EXT4_FIRST_US: i64 = -(1 << 31) * 1_000_000;
/// The longest name, in bytes (POSIX) or UTF-16 units (Windows), where the host does not
/// know it.
const NAME_MAX: usize = 255;
/// Levels a path may have below its root: one more breaks the tools that walk a tree.
pub const MAX_DEPTH: usize = 1_000;

impl Platform {
    fn label(self) -> &'static str {
        match self {
            Platform::Linux => "Linux",
            Platform::MacOs => "macOS",
            Platform::Windows => "Windows",
        }
    }

    /// `PATH_MAX` where the host does not know it (`long_paths`: the Windows root has the
    /// `\\?\` prefix).
    fn usual_path_max(self, long_paths: bool) -> usize {
        match self {
            Platform::Linux => 4_096,
            Platform::MacOs => 1_024,
            Platform::Windows if long_paths => 32_767,
            Platform::Windows => 260,
        }
    }

    /// What lengths count: bytes of a name as written, or UTF-16 units on Windows.
    fn unit(self) -> &'static str {
        match self {
            Platform::Linux => "bytes",
            Platform::MacOs => "bytes of UTF-8",
            Platform::Windows => "UTF-16 units",
        }
    }

    /// The length of `units` (a name or a path) as the platform counts it. A lone surrogate
    /// counts as the byte it escapes, or, where it stands for none (a name refused anyway),
    /// as the three bytes of its UTF-8 form.
    fn length(self, units: &[u16]) -> usize {
        if self == Platform::Windows || units.iter().all(|&u| u < 0x80) {
            return units.len();
        }
        char::decode_utf16(units.iter().copied())
            .map(|c| match c {
                Ok(c) => c.len_utf8(),
                Err(e) if (0xdc80..=0xdcff).contains(&e.unpaired_surrogate()) => 1,
                Err(_) => 3,
            })
            .sum()
    }

    /// The mtimes, in microseconds since 1970, the platform's file systems store exactly.
    pub fn mtime_range(self) -> (i64, i64) {
        match self {
            Platform::Linux => (EXT4_FIRST_US, LAST_US),
            Platform::MacOs => (0, LAST_US),
            Platform::Windows => (FIRST_US, LAST_US),
        }
    }
}

/// One thing a download would write: its root-relative path and, for a file, its mtime.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub path: &'a [u16],
    pub mtime_us: Option<i64>,
}

/// Where a download writes, as the host knows its file system.
#[derive(Debug, Clone, Copy)]
pub struct Destination {
    pub platform: Platform,
    /// The root's length as the system counts it (see [`Platform::length`]).
    pub root_len: usize,
    /// A path with the root and a separator must be shorter (`PATH_MAX` counts the NUL).
    pub path_max: usize,
    pub name_max: usize,
    /// A Windows root given with the `\\?\` long-path prefix.
    pub long_paths: bool,
    /// The paths are this system's own (a submission's): their names and times are not
    /// checked, only lengths and depth.
    pub lengths_only: bool,
}

impl Destination {
    /// A root of no length on `platform`, with its usual limits.
    pub fn usual(platform: Platform) -> Destination {
        Destination {
            platform,
            root_len: 0,
            path_max: platform.usual_path_max(false),
            name_max: NAME_MAX,
            long_paths: false,
            lengths_only: false,
        }
    }

    /// The facts the host gives: `path_max` and `name_max` as `pathconf` answers them,
    /// None where it does not (the usual limit stands), any count below 1 where the system
    /// sets none. See `sync.destination` in `wit/engine.wit`.
    pub fn given(
        platform: Platform,
        root_len: u64,
        path_max: Option<i64>,
        name_max: Option<i64>,
        long_paths: bool,
        lengths_only: bool,
    ) -> Destination {
        let limit = |n: i64| usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(usize::MAX);
        Destination {
            platform,
            root_len: usize::try_from(root_len).unwrap_or(usize::MAX),
            path_max: path_max.map_or(platform.usual_path_max(long_paths), limit),
            name_max: name_max.map_or(NAME_MAX, limit),
            long_paths,
            lengths_only,
        }
    }
}

/// [`refused`] for the `sync.refused-entries` export: `entries` a manifest of either format (its files, symlinks and directories; not
/// what a diff deletes) or a JSON array of `[path, mtime-us]` rows (mtime null where there is
/// none). Returns `[[path, reason], ...]`, pure ASCII.
pub fn refused_json(destination: &Destination, entries: &str) -> Result<String> {
    let owned = owned_entries(entries)?;
    let listed: Vec<Entry> =
        owned.iter().map(|(path, mtime_us)| Entry { path, mtime_us: *mtime_us }).collect();
    let mut out = String::from("[");
    for (n, (i, why)) in refused(destination, &listed).into_iter().enumerate() {
        out.push_str(if n > 0 { ",[" } else { "[" });
        crate::json::write_string(&mut out, listed[i].path);
        out.push(',');
        crate::json::write_str(&mut out, &why);
        out.push(']');
    }
    out.push(']');
    Ok(out)
}

fn owned_entries(text: &str) -> Result<Vec<(Vec<u16>, Option<i64>)>> {
    use crate::formats::{decode, AnyManifest};
    use crate::json::{Parser, Value};
    if Parser::new(text).peek() != Some(b'[') {
        return Ok(match decode(text)? {
            AnyManifest::V2023(m) => {
                m.entries().iter().map(|e| (e.path.clone(), Some(e.mtime))).collect()
            }
            AnyManifest::V2025(m) => {
                let dirs = m.dirs.into_iter().filter(|d| !d.deleted).map(|d| (d.path, None));
                let files = m
                    .files
                    .into_iter()
                    .filter(|f| f.content != crate::manifest_v2025::Content::Deleted)
                    .map(|f| (f.path, f.mtime));
                dirs.chain(files).collect()
            }
        });
    }
    let bad = || Error::invalid("entries must be a manifest or a list of [path, mtime-us]");
    let Value::Array(rows) = crate::json::parse(text)? else { return Err(bad()) };
    rows.into_iter()
        .map(|row| match row {
            Value::Array(cols) => match <[Value; 2]>::try_from(cols) {
                Ok([Value::String(path), Value::Null]) => Ok((path, None)),
                Ok([Value::String(path), Value::Number(m)]) => {
                    Ok((path, Some(m.parse().map_err(|_| bad())?)))
                }
                _ => Err(bad()),
            },
            _ => Err(bad()),
        })
        .collect()
}

/// Whether `dest` holds a path of this length and depth (a name made here, such as a copy's).
pub fn fits(dest: &Destination, path: &[u16]) -> bool {
    let dest = Destination { lengths_only: true, ..*dest };
    refused(&dest, &[Entry { path, mtime_us: None }]).is_empty()
}

/// The entries `dest` cannot hold, as (index into `entries`, reason), in the order given;
/// each refused entry appears once, with the first rule it breaks: names, then lengths, then
/// times.
pub fn refused(dest: &Destination, entries: &[Entry]) -> Vec<(usize, String)> {
    let clashes = if dest.platform == Platform::Linux || dest.lengths_only {
        HashMap::new()
    } else {
        clashes(dest.platform, entries)
    };
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if let Some(why) = refusal(dest, e, &clashes) {
            out.push((i, why));
        }
    }
    out
}

fn refusal(dest: &Destination, e: &Entry, clashes: &HashMap<&[u16], &[u16]>) -> Option<String> {
    let platform = dest.platform;
    if let Err(err) = relpath::check_units(e.path) {
        return Some(err.message);
    }
    let (mut length, mut levels) = (0, 0);
    for segment in e.path.split(|&u| u == SLASH) {
        let len = platform.length(segment);
        let spelling = if dest.lengths_only { None } else { name_refusal(platform, segment) };
        let long = || {
            (len > dest.name_max).then(|| {
                let max = dest.name_max;
                format!(
                    "is {len} {} long; the destination holds names of up to {max}",
                    platform.unit()
                )
            })
        };
        if let Some(why) = spelling.or_else(long) {
            // The segment is named where the path is more than it.
            let whole = segment.len() == e.path.len();
            return Some(if whole { why } else { format!("{}: {why}", shown(segment)) });
        }
        length += len;
        levels += 1;
    }
    let mut end = 0;
    for segment in e.path.split(|&u| u == SLASH) {
        end += segment.len();
        if let Some(other) = clashes.get(&e.path[..end]) {
            let why = match platform {
                Platform::Windows => "differ only in case",
                _ => "differ only in case or in Unicode normalization (NFC and NFD)",
            };
            return Some(format!(
                "{} and {} {why}: {} holds them as one name",
                shown(&e.path[..end]),
                shown(other),
                platform.label()
            ));
        }
        end += 1;
    }
    // The root, a separator, the path's names and the separators between them.
    let length = dest.root_len.saturating_add(length + levels);
    if length >= dest.path_max {
        let prefix = if platform == Platform::Windows && !dest.long_paths {
            "give the root with the \\\\?\\ long-path prefix, "
        } else {
            ""
        };
        return Some(format!(
            "is too long for this system: {length} {} with the destination's root, where a path \
             must be shorter than {}; {prefix}map the root to a shorter place, or shorten the path",
            platform.unit(),
            dest.path_max
        ));
    }
    if levels > MAX_DEPTH {
        return Some(format!(
            "is too deep for this system: {levels} levels below the destination's root, where \
             tools that walk a tree (the official downloader among them) fail past {MAX_DEPTH}"
        ));
    }
    let (first, last) = platform.mtime_range();
    match e.mtime_us {
        Some(m) if !dest.lengths_only && !(first..=last).contains(&m) => Some(format!(
            "its mtime {m} µs ({}) is outside what {} file systems store exactly, {} to {}",
            iso_time(m),
            platform.label(),
            iso_time(first),
            iso_time(last)
        )),
        _ => None,
    }
}

const SLASH: u16 = b'/' as u16;

/// A name for a message, as JSON spells it (escapes for what is not printable ASCII).
fn shown(units: &[u16]) -> String {
    let mut out = String::new();
    crate::json::write_string(&mut out, units);
    out
}

/// Why `platform` cannot spell the one segment `name`, if it cannot (its length is another
/// rule).
fn name_refusal(platform: Platform, name: &[u16]) -> Option<String> {
    if platform != Platform::Windows && name.iter().all(|&u| u < 0x80) {
        return None; // ASCII, most names: a POSIX system holds every one but NUL and `/`
    }
    let lone = char::decode_utf16(name.iter().copied()).find_map(|c| c.err());
    let lone = lone.map(|e| e.unpaired_surrogate());
    match platform {
        Platform::Linux => {
            let bytes = match posix_bytes(name) {
                Ok(bytes) => bytes,
                Err(unit) => {
                    return Some(format!(
                        "holds U+{unit:04X}, a lone surrogate that stands for no byte of a name"
                    ))
                }
            };
            (decode_posix(&bytes) != name).then(|| {
                "escapes bytes that together are UTF-8: the official encoder writes that name \
                 as its characters, so two entries could be one file"
                    .to_string()
            })
        }
        Platform::MacOs => lone.map(|unit| {
            format!("holds U+{unit:04X}, a byte that is not UTF-8: macOS holds UTF-8 names only")
        }),
        Platform::Windows => {
            if let Some(unit) = lone {
                return Some(format!(
                    "holds U+{unit:04X}, a byte that is not UTF-8, which has no Windows spelling"
                ));
            }
            if let Some(&u) = name.iter().find(|&&u| u < 0x20) {
                return Some(format!("holds the control character U+{u:04X}"));
            }
            if let Some(&u) = name.iter().find(|&&u| WINDOWS_FORBIDDEN.contains(&u)) {
                let c = char::from(u as u8);
                return Some(format!("holds {c:?}, which a Windows name cannot"));
            }
            if let Some(&u) = name.last().filter(|&&u| u == u16::from(b'.') || u == u16::from(b' '))
            {
                let c = char::from(u as u8);
                return Some(format!("ends with {c:?}, which Windows drops from a name"));
            }
            reserved_device(name)
                .map(|device| format!("{device} is a device name Windows reserves"))
        }
    }
}

const WINDOWS_FORBIDDEN: [u16; 8] = [0x5c, 0x3a, 0x2a, 0x3f, 0x22, 0x3c, 0x3e, 0x7c];

/// The reserved device name `name` stands for, if any: what precedes its first `.`, less
/// trailing spaces, compared without regard to case (CPython 3.13's `ntpath.isreserved`).
fn reserved_device(name: &[u16]) -> Option<String> {
    let base = name.split(|&u| u == u16::from(b'.')).next().unwrap_or_default();
    let end = base.iter().rposition(|&u| u != u16::from(b' ')).map_or(0, |i| i + 1);
    let base: String = char::decode_utf16(base[..end].iter().copied())
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER).to_ascii_uppercase())
        .collect();
    let numbered = |prefix: &str| {
        base.strip_prefix(prefix).is_some_and(|n| {
            matches!(n, "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "¹" | "²" | "³")
        })
    };
    let plain = ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"].contains(&base.as_str());
    (plain || numbered("COM") || numbered("LPT")).then_some(base)
}

/// The bytes a POSIX name is written as (Python's `os.fsencode`, `surrogateescape`), or the
/// lone surrogate that stands for no byte.
pub fn posix_bytes(name: &[u16]) -> std::result::Result<Vec<u8>, u16> {
    let mut out = Vec::with_capacity(name.len());
    for c in char::decode_utf16(name.iter().copied()) {
        match c {
            Ok(c) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            Err(e) => match e.unpaired_surrogate() {
                u @ 0xdc80..=0xdcff => out.push((u - 0xdc00) as u8),
                u => return Err(u),
            },
        }
    }
    Ok(out)
}

/// A POSIX name's bytes as the official encoder reads them (`os.fsdecode`): UTF-8, each byte
/// of what is not as a lone surrogate U+DC80-U+DCFF.
pub fn decode_posix(bytes: &[u8]) -> Vec<u16> {
    let mut out = Vec::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.extend(chunk.valid().encode_utf16());
        out.extend(chunk.invalid().iter().map(|&b| 0xdc00 | u16::from(b)));
    }
    out
}

/// The name `name` is held as, for matching names of one folder; None where the name itself
/// is refused (a lone surrogate on macOS).
fn folded(platform: Platform, name: &[u16]) -> Option<Vec<u16>> {
    if name.iter().all(|&u| u < 0x80) {
        // ASCII, most names: what the rules below make of it, without their tables.
        let ascii = name.iter().map(|&u| u as u8);
        return Some(match platform {
            Platform::Windows => ascii.map(|b| u16::from(b.to_ascii_uppercase())).collect(),
            _ => ascii.map(|b| u16::from(b.to_ascii_lowercase())).collect(),
        });
    }
    match platform {
        Platform::Windows => Some(
            char::decode_utf16(name.iter().copied())
                .map(|c| c.map_or(char::REPLACEMENT_CHARACTER, simple_upper))
                .collect::<String>()
                .encode_utf16()
                .collect(),
        ),
        _ => {
            let text = String::from_utf16(name).ok()?;
            Some(
                text.chars()
                    .nfd()
                    .default_case_fold()
                    .nfd()
                    .collect::<String>()
                    .encode_utf16()
                    .collect(),
            )
        }
    }
}

/// A character's simple uppercase (one character for one), as NTFS's upcase table maps it.
fn simple_upper(c: char) -> char {
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// Paths (an entry's, or a folder above it) that another of the same folder would be held as
/// on `platform`, with that other one.
fn clashes<'a>(platform: Platform, entries: &[Entry<'a>]) -> HashMap<&'a [u16], &'a [u16]> {
    let mut seen: HashSet<&[u16]> = HashSet::new();
    let mut by_name: HashMap<(&[u16], Vec<u16>), &[u16]> = HashMap::new();
    let mut out = HashMap::new();
    for e in entries {
        let mut start = 0;
        for segment in e.path.split(|&u| u == SLASH) {
            let path = &e.path[..start + segment.len()];
            let folder = &e.path[..start.saturating_sub(1)];
            start += segment.len() + 1;
            if !seen.insert(path) {
                continue;
            }
            let Some(name) = folded(platform, segment) else { continue };
            match by_name.entry((folder, name)) {
                Slot::Occupied(first) => {
                    out.insert(path, *first.get());
                    out.entry(*first.get()).or_insert(path);
                }
                Slot::Vacant(slot) => {
                    slot.insert(path);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    /// The reasons `platform` gives for each of `paths` (files of mtime 0), by path.
    fn refusals(platform: Platform, paths: &[Vec<u16>]) -> Vec<(String, String)> {
        let entries: Vec<Entry> =
            paths.iter().map(|p| Entry { path: p, mtime_us: Some(0) }).collect();
        refused(&Destination::usual(platform), &entries)
            .into_iter()
            .map(|(i, why)| (String::from_utf16_lossy(&paths[i]), why))
            .collect()
    }

    fn refused_names(platform: Platform, paths: &[&str]) -> Vec<String> {
        let paths: Vec<Vec<u16>> = paths.iter().map(|p| u(p)).collect();
        refusals(platform, &paths).into_iter().map(|(p, _)| p).collect()
    }

    const NAMES: [&str; 10] = [
        "back\\slash.txt",
        "c:x",
        "tab\there",
        "what?.txt",
        "trailing.",
        "trailing ",
        "CON",
        "dir/nul.tar.gz",
        "lpt\u{b9}",
        "caf\u{e9}.txt",
    ];

    #[test]
    fn linux_holds_every_name_a_manifest_carries() {
        assert!(refused_names(Platform::Linux, &NAMES).is_empty());
        let bad_byte: Vec<u16> = u("bad-").into_iter().chain([0xdcff]).collect();
        assert!(refusals(Platform::Linux, &[bad_byte]).is_empty());
    }

    #[test]
    fn linux_refuses_surrogates_that_stand_for_no_name() {
        let lone_high: Vec<u16> = u("x").into_iter().chain([0xd800]).collect();
        let low_ascii: Vec<u16> = vec![0x61, 0xdc41]; // would be the byte 0x41, 'A' itself
        let utf8_escaped: Vec<u16> = vec![0xdcc3, 0xdca9]; // the bytes of "é"
        let paths = [lone_high, low_ascii, utf8_escaped, u(&"n".repeat(256)), u(&"é".repeat(128))];
        let found = refusals(Platform::Linux, &paths);
        assert_eq!(found.len(), 5, "{found:?}");
        assert!(found[0].1.contains("U+D800, a lone surrogate"));
        assert!(found[2].1.contains("together are UTF-8"));
        assert!(found[3].1.contains("256 bytes long"));
        assert!(found[4].1.contains("256 bytes long"));
        assert!(refusals(Platform::Linux, &[u(&"n".repeat(255))]).is_empty());
    }

    #[test]
    fn posix_bytes_are_what_python_writes() {
        let units: Vec<u16> = u("é-").into_iter().chain([0xdcff]).collect();
        assert_eq!(posix_bytes(&units).unwrap(), b"\xc3\xa9-\xff");
        assert_eq!(decode_posix(b"\xc3\xa9-\xff"), units);
        assert_eq!(decode_posix(b"\xe2\x82"), [0xdce2, 0xdc82]); // a truncated sequence
        assert_eq!(posix_bytes(&[0xd83d]), Err(0xd83d));
    }

    #[test]
    fn windows_refuses_what_win32_cannot_name() {
        let refused = refused_names(Platform::Windows, &NAMES);
        assert_eq!(refused, NAMES[..9]);
        let more = [
            "a<b",
            "a>b",
            "a|b",
            "a\"b",
            "a*b",
            "Com3.txt",
            "aux .c",
            "conin$",
            "CONOUT$.x",
            "prn",
            "x/LPT9/y",
            "COM\u{b2}",
        ];
        assert_eq!(refused_names(Platform::Windows, &more), more);
        let fine = ["COM0", "COM10", "LPT", "console", "nul_", "a.con", "CON_x", "x.y", "é"];
        assert!(refused_names(Platform::Windows, &fine).is_empty());
        let bad_byte: Vec<u16> = vec![0x61, 0xdcff];
        let found = refusals(Platform::Windows, &[bad_byte, u(&"n".repeat(256))]);
        assert!(found[0].1.contains("no Windows spelling"));
        assert!(found[1].1.contains("256 UTF-16 units"));
        let reasons = refusals(Platform::Windows, &[u("x/back\\slash.txt"), u("aux.txt")]);
        assert_eq!(reasons[0].1, r#""back\\slash.txt": holds '\\', which a Windows name cannot"#);
        assert_eq!(reasons[1].1, "AUX is a device name Windows reserves");
    }

    #[test]
    fn windows_refuses_names_of_one_folder_that_differ_only_in_case() {
        let paths =
            ["Shot/a.exr", "shot/b.exr", "other/A.exr", "other/a.exr", "x/Straße", "x/STRASSE"];
        let found = refusals(Platform::Windows, &paths.map(u));
        let names: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        // NTFS uppercases one character for one: ß stays ß, so Straße is not STRASSE.
        assert_eq!(names, paths[..4]);
        assert_eq!(
            found[0].1,
            r#""Shot" and "shot" differ only in case: Windows holds them as one name"#
        );
        assert!(found[3].1.starts_with(r#""other/a.exr" and "other/A.exr""#));
        assert!(refused_names(Platform::Windows, &["a/x", "b/X", "é", "É/y"]).len() == 2);
        // Long s uppercases to an ASCII S: the two are one name.
        assert_eq!(refused_names(Platform::Windows, &["\u{17f}", "s"]).len(), 2);
        assert!(refused_names(Platform::Linux, &paths).is_empty());
    }

    #[test]
    fn macos_refuses_case_and_normalization_collisions() {
        let nfc = "caf\u{e9}.txt";
        let nfd = "cafe\u{301}.txt";
        let paths = [nfc, nfd, "A/x", "a/y", "Stra\u{df}e", "STRASSE", "plain", "other/\u{c5}"];
        let found = refused_names(Platform::MacOs, &paths);
        assert_eq!(found, paths[..6]);
        let why = &refusals(Platform::MacOs, &[u(nfc), u(nfd)])[0].1;
        assert!(why.contains("Unicode normalization"), "{why}");
        assert!(refused_names(Platform::Windows, &[nfc, nfd]).is_empty()); // NTFS keeps both
        let bad_byte: Vec<u16> = vec![0x61, 0xdcff];
        let found = refusals(Platform::MacOs, &[bad_byte, u(&"é".repeat(128))]);
        assert!(found[0].1.contains("UTF-8 names only"));
        assert!(found[1].1.contains("256 bytes of UTF-8"));
        // Windows names are fine on macOS; its colon is a POSIX name's.
        assert!(refused_names(Platform::MacOs, &["CON", "a:b", "trailing."]).is_empty());
    }

    #[test]
    fn mtimes_outside_what_the_destination_stores_are_refused() {
        let path = u("f");
        let at = |mtime: i64| [Entry { path: &path, mtime_us: Some(mtime) }];
        for (platform, fine, outside) in [
            (Platform::Linux, -(1i64 << 31) * 1_000_000, -(1i64 << 31) * 1_000_000 - 1),
            (Platform::Linux, LAST_US, LAST_US + 1),
            (Platform::MacOs, 0, -1),
            (Platform::MacOs, LAST_US, i64::MAX),
            (Platform::Windows, FIRST_US, FIRST_US - 1),
            (Platform::Windows, LAST_US, LAST_US + 1),
        ] {
            assert!(
                refused(&Destination::usual(platform), &at(fine)).is_empty(),
                "{platform:?} {fine}"
            );
            let found = refused(&Destination::usual(platform), &at(outside));
            assert_eq!(found.len(), 1, "{platform:?} {outside}");
            assert!(found[0].1.contains("outside what"), "{}", found[0].1);
        }
        assert_eq!(iso_time(LAST_US), "2262-04-11T23:47:16.854775Z");
        assert_eq!(iso_time(EXT4_FIRST_US), "1901-12-13T20:45:52.000000Z");
        let none = [Entry { path: &path, mtime_us: None }];
        assert!(refused(&Destination::usual(Platform::MacOs), &none).is_empty());
    }

    #[test]
    fn manifests_and_listings_are_checked_whole() {
        let manifest = r#"{"hashAlg":"xxh128","manifestVersion":"2023-03-03","paths":[{"hash":"00000000000000000000000000000001","mtime":-1,"path":"a\\b","size":1},{"hash":"00000000000000000000000000000001","mtime":5,"path":"ok","size":1}],"totalSize":2}"#;
        assert_eq!(refused_json(&Destination::usual(Platform::Linux), manifest).unwrap(), "[]");
        let mac = refused_json(&Destination::usual(Platform::MacOs), manifest).unwrap();
        assert!(
            mac.starts_with(
                r#"[["a\\b","its mtime -1 \u00b5s (1969-12-31T23:59:59.999999Z) is outside"#
            ),
            "{mac}"
        );
        let win = refused_json(&Destination::usual(Platform::Windows), manifest).unwrap();
        assert!(
            win.starts_with(r#"[["a\\b","holds '\\\\', which a Windows name cannot"]"#),
            "{win}"
        );
        let newer = r#"{"dirs":[{"name":"Dir"},{"name":"dir"}],"files":[],"hashAlg":"xxh128","specificationVersion":"relative-manifest-snapshot-beta-2025-12","totalSize":0}"#;
        let found = refused_json(&Destination::usual(Platform::Windows), newer).unwrap();
        assert!(
            found.starts_with(r#"[["Dir","\"Dir\" and \"dir\" differ only in case"#),
            "{found}"
        );
        let rows = r#"[["x/CON.txt", 1], ["fine", null], ["late", 9223372036854775807]]"#;
        let found = refused_json(&Destination::usual(Platform::Windows), rows).unwrap();
        assert!(found.starts_with(r#"[["x/CON.txt","#) && found.contains(r#"["late","#), "{found}");
        assert!(!found.contains(r#"["fine""#));
        assert!(refused_json(&Destination::usual(Platform::Windows), r#"[["x"]]"#).is_err());
    }

    #[test]
    fn every_refused_entry_is_named_once_with_its_first_reason() {
        let paths = ["ok", "a:b/c", "a:b/C", "fine/x"].map(u);
        let found = refusals(Platform::Windows, &paths);
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|(_, why)| why.contains("holds ':'")));
    }

    /// The reasons `dest` gives for `paths` (files of mtime 0), by index.
    fn refused_at(dest: &Destination, paths: &[Vec<u16>]) -> Vec<(usize, String)> {
        let entries: Vec<Entry> =
            paths.iter().map(|p| Entry { path: p, mtime_us: Some(0) }).collect();
        refused(dest, &entries)
    }

    /// A path of `n` ASCII units, in names of at most 201.
    fn of_length(n: usize) -> Vec<u16> {
        let mut path = String::new();
        while n - path.len() > 201 {
            path.push_str(&"x".repeat(200));
            path.push('/');
        }
        path.push_str(&"y".repeat(n - path.len()));
        u(&path)
    }

    #[test]
    fn a_path_as_long_as_path_max_with_the_root_is_refused_on_every_platform() {
        for (platform, usual) in
            [(Platform::Linux, 4_096), (Platform::MacOs, 1_024), (Platform::Windows, 260)]
        {
            let dest = Destination { root_len: 20, ..Destination::usual(platform) };
            assert_eq!(dest.path_max, usual);
            // 20 for the root, 1 for the separator: the longest path that fits is one shorter.
            let (fits, over) = (of_length(usual - 22), of_length(usual - 21));
            assert_eq!((fits.len(), over.len()), (usual - 22, usual - 21));
            let found = refused_at(&dest, &[fits, over]);
            assert_eq!(found.len(), 1, "{platform:?} {found:?}");
            assert_eq!(found[0].0, 1);
            assert!(found[0].1.starts_with("is too long for this system: "), "{}", found[0].1);
            assert!(found[0].1.contains(&format!("shorter than {usual};")), "{}", found[0].1);
        }
        let linux = Destination::usual(Platform::Linux);
        let why = &refused_at(&linux, &[of_length(4_095)])[0].1;
        assert_eq!(
            why,
            "is too long for this system: 4096 bytes with the destination's root, where a path \
             must be shorter than 4096; map the root to a shorter place, or shorten the path"
        );
        let windows = Destination::usual(Platform::Windows);
        let why = &refused_at(&windows, &[of_length(259)])[0].1;
        assert!(why.contains(r"give the root with the \\?\ long-path prefix"), "{why}");
    }

    #[test]
    fn lengths_count_what_the_platform_counts() {
        // The longest path that fits below a root of no length, with the separator after it.
        let longest = |platform, path: &[u16]| {
            let fits = |path_max| {
                let dest = Destination { path_max, ..Destination::usual(platform) };
                refused(&dest, &[Entry { path, mtime_us: None }]).is_empty()
            };
            (1..).find(|&n| fits(n)).map(|n| n - 2)
        };
        // é is two bytes on POSIX, one UTF-16 unit on Windows; a byte that is not UTF-8 is one.
        let e = u(&("é/".repeat(99) + "é"));
        assert_eq!(longest(Platform::Windows, &e), Some(199));
        assert_eq!(longest(Platform::MacOs, &e), Some(299));
        assert_eq!(longest(Platform::Linux, &[0x61, 0xdcff].repeat(10)), Some(20));
        assert_eq!(Platform::Linux.length(&[0xd800]), 3); // stands for no byte: refused anyway
        assert_eq!(Platform::MacOs.length(&u("\u{1f600}")), 4);
        assert_eq!(Platform::Windows.length(&u("\u{1f600}")), 2);
    }

    #[test]
    fn a_name_longer_than_name_max_is_refused_as_the_host_says() {
        let dest = Destination { name_max: 143, ..Destination::usual(Platform::Linux) };
        let found = refused_at(&dest, &[u(&"n".repeat(143)), u(&format!("d/{}", "n".repeat(144)))]);
        assert_eq!(found.len(), 1);
        assert!(found[0]
            .1
            .ends_with("is 144 bytes long; the destination holds names of up to 143"));
        for platform in [Platform::Linux, Platform::MacOs, Platform::Windows] {
            assert_eq!(Destination::usual(platform).name_max, 255);
        }
    }

    #[test]
    fn a_path_over_the_depth_limit_is_refused_on_every_platform() {
        let deepest = u(&("a/".repeat(MAX_DEPTH - 1) + "f"));
        let deeper = u(&("a/".repeat(MAX_DEPTH) + "f"));
        for platform in [Platform::Linux, Platform::MacOs, Platform::Windows] {
            let dest = Destination { long_paths: true, ..Destination::usual(platform) };
            let dest = Destination { path_max: 32_767, ..dest };
            let found = refused_at(&dest, &[deepest.clone(), deeper.clone()]);
            assert_eq!(found.len(), 1, "{platform:?}");
            assert_eq!(found[0].0, 1);
            assert!(found[0].1.starts_with("is too deep for this system: 1001 levels"));
        }
    }

    #[test]
    fn the_host_gives_the_limits_and_the_usual_ones_stand_where_it_cannot() {
        let given = Destination::given(Platform::Linux, 30, Some(1024), Some(143), false, false);
        assert_eq!((given.root_len, given.path_max, given.name_max), (30, 1024, 143));
        let unknown = Destination::given(Platform::MacOs, 0, None, None, false, false);
        assert_eq!((unknown.root_len, unknown.path_max, unknown.name_max), (0, 1024, 255));
        // pathconf's -1: the system sets no limit.
        let none = Destination::given(Platform::Linux, 0, Some(-1), Some(-1), false, false);
        assert_eq!((none.path_max, none.name_max), (usize::MAX, usize::MAX));
        assert!(refused_at(&none, &[u(&"n".repeat(100_000))]).is_empty());
        let long = Destination::given(Platform::Windows, 0, None, None, true, false);
        assert_eq!(long.path_max, 32_767);
        assert!(refused_at(&long, &[of_length(5_000)]).is_empty());
    }

    #[test]
    fn a_submissions_own_paths_are_checked_for_lengths_only() {
        let own = Destination { lengths_only: true, ..Destination::usual(Platform::MacOs) };
        let paths = [u("Shot"), u("shot"), vec![0x61, 0xdcff], u(&"n".repeat(256))];
        let entries: Vec<Entry> =
            paths.iter().map(|p| Entry { path: p, mtime_us: Some(-1) }).collect();
        let found = refused(&own, &entries);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, 3);
        assert!(found[0].1.contains("256 bytes of UTF-8 long"));
        let deep = u(&("a/".repeat(MAX_DEPTH) + "f"));
        assert_eq!(refused_at(&own, &[deep]).len(), 1);
        let text = Destination { lengths_only: true, ..Destination::usual(Platform::Windows) };
        assert_eq!(refused_json(&text, r#"[["CON", null], ["a:b", null]]"#).unwrap(), "[]");
    }

    #[test]
    fn names_are_checked_before_lengths_and_lengths_before_times() {
        let dest = Destination { path_max: 10, ..Destination::usual(Platform::Windows) };
        let paths = [u("aux/long-enough"), u("long-enough")];
        let entries: Vec<Entry> =
            paths.iter().map(|p| Entry { path: p, mtime_us: Some(i64::MAX) }).collect();
        let found = refused(&dest, &entries);
        assert!(found[0].1.contains("device name"), "{}", found[0].1);
        assert!(found[1].1.starts_with("is too long"), "{}", found[1].1);
    }
}
