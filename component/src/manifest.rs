//! Manifests in the v2023-03-03 format of Deadline Cloud job attachments, byte for byte.
//!
//! The official encoder is `json.dumps(m, sort_keys=True, separators=(",", ":"),
//! ensure_ascii=True)` over paths sorted by their UTF-16 code units (DESIGN §4). Paths are
//! kept as UTF-16 units here, which makes both that order and Python's escaping (surrogate
//! pairs, lone surrogates for names that are not UTF-8) fall out directly.

use std::fmt::Write;

use crate::error::{Error, Result};
use crate::hash::Hasher;
use crate::json::{self, Value};
use crate::relpath;

pub const VERSION: &str = "2023-03-03";
pub const HASH_ALG: &str = "xxh128";

/// One file of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the manifest's root, `/`-separated, as UTF-16 code units.
    pub path: Vec<u16>,
    /// xxh3-128 of the content, 32 lowercase hex digits.
    pub hash: String,
    pub size: u64,
    /// Modification time in integer microseconds since the epoch.
    pub mtime: i64,
}

/// A validated manifest: entries sorted by path, no path twice, none leaving the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    entries: Vec<Entry>,
}

impl Manifest {
    /// Validates and sorts `entries`.
    pub fn new(mut entries: Vec<Entry>) -> Result<Self> {
        for (i, e) in entries.iter().enumerate() {
            relpath::check_units(&e.path).map_err(|err| err.within(&format!("paths[{i}].path")))?;
            check_hash(&e.hash).map_err(|err| err.within(&format!("paths[{i}].hash")))?;
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        if let Some(w) = entries.windows(2).find(|w| w[0].path == w[1].path) {
            let path = String::from_utf16_lossy(&w[0].path);
            return Err(Error::invalid(format!("path {path:?} appears more than once")).at(&path));
        }
        check_no_file_is_a_directory(&entries)?;
        Ok(Manifest { entries })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn total_size(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }

    /// The exact bytes the official encoder writes: pure ASCII, no trailing newline.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(64 + self.entries.len() * 100);
        out.push_str(HEAD);
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, r#"{{"hash":"{}","mtime":{},"path":"#, e.hash, e.mtime);
            json::write_string(&mut out, &e.path);
            let _ = write!(out, r#","size":{}}}"#, e.size);
        }
        let _ = write!(out, r#"],"totalSize":{}}}"#, self.total_size());
        out
    }
}

const HEAD: &str = r#"{"hashAlg":"xxh128","manifestVersion":"2023-03-03","paths":["#;

/// The length of [`Manifest::encode`] for entries of these paths, sizes and mtimes, known
/// without encoding them.
pub fn encoded_len<'a>(entries: impl Iterator<Item = (&'a [u16], u64, i64)>) -> usize {
    let (mut len, mut total, mut n) = (0usize, 0u64, 0usize);
    for (path, size, mtime) in entries {
        // {"hash":"<32>","mtime":<m>,"path":<p>,"size":<s>}
        len += 68 + json::escaped_len(path) + digits(mtime.unsigned_abs()) + digits(size);
        len += usize::from(mtime < 0);
        total = total.saturating_add(size);
        n += 1;
    }
    HEAD.len() + len + n.saturating_sub(1) + r#"],"totalSize":}"#.len() + digits(total)
}

fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Refuses a file that is also the directory of another (`a` and `a/b`): no tree holds both,
/// and writing one would fail halfway through a download. `entries` are sorted, so the paths
/// below `p/` follow one another from where `p/` would be.
fn check_no_file_is_a_directory(entries: &[Entry]) -> Result<()> {
    let mut dir: Vec<u16> = Vec::new();
    for e in entries {
        dir.clear();
        dir.extend_from_slice(&e.path);
        dir.push(u16::from(b'/'));
        let i = entries.partition_point(|x| x.path < dir);
        if let Some(below) = entries.get(i).filter(|x| x.path.starts_with(&dir)) {
            let (path, below) =
                (String::from_utf16_lossy(&e.path), String::from_utf16_lossy(&below.path));
            let why = format!("path {path:?} is a file and also the directory of {below:?}");
            return Err(Error::invalid(why).at(&path));
        }
    }
    Ok(())
}

/// xxh3-128 of an encoded manifest: its `inputManifestHash`.
pub fn hash_encoded(encoded: &str) -> String {
    let mut h = Hasher::new();
    h.update(encoded.as_bytes());
    h.finish_hex()
}

/// Decodes and validates a v2023-03-03 manifest. Errors name the field that is wrong.
pub fn decode(text: &str) -> Result<Manifest> {
    let mut p = json::Parser::new(text);
    if p.peek() != Some(b'{') {
        p.any()?; // a malformed document says so first
        return Err(Error::invalid("a manifest must be a JSON object"));
    }
    let (mut version, mut alg, mut total, mut entries) = (None, None, None, None);
    let mut first = true;
    p.open(b'{')?;
    while let Some(key) = p.next_key(&mut first)? {
        let name = format!("manifest.{}", String::from_utf16_lossy(&key));
        let at = || name.clone();
        match name.as_str() {
            "manifest.manifestVersion" => once(&mut version, read_string(&mut p, at)?, at)?,
            "manifest.hashAlg" => once(&mut alg, read_string(&mut p, at)?, at)?,
            "manifest.totalSize" => once(&mut total, read_unsigned(&mut p, at)?, at)?,
            "manifest.paths" => once(&mut entries, read_entries(&mut p)?, at)?,
            _ => return Err(Error::invalid(format!("{name} is not a known field"))),
        }
    }
    p.finish()?;
    let version = required(version, || "manifest.manifestVersion".to_string())?;
    if version != VERSION {
        return Err(Error::invalid(format!(
            "manifestVersion {version:?} is not supported (expected {VERSION:?})"
        )));
    }
    let alg = required(alg, || "manifest.hashAlg".to_string())?;
    if alg != HASH_ALG {
        return Err(Error::invalid(format!(
            "hashAlg {alg:?} is not supported (expected {HASH_ALG:?})"
        )));
    }
    let total = required(total, || "manifest.totalSize".to_string())?;
    let manifest = Manifest::new(required(entries, || "manifest.paths".to_string())?)?;
    let sum = manifest.entries.iter().try_fold(0u64, |acc, e| acc.checked_add(e.size));
    if sum != Some(total) {
        return Err(Error::invalid(format!(
            "totalSize is {total} but the sizes of the paths add up to {}",
            sum.map_or_else(|| "more than 2^64".to_string(), |s| s.to_string())
        )));
    }
    Ok(manifest)
}

fn read_entries(p: &mut json::Parser) -> Result<Vec<Entry>> {
    if p.peek() != Some(b'[') {
        return Err(wrong("manifest.paths", "an array", &p.any()?));
    }
    p.open(b'[')?;
    let mut entries = Vec::new();
    let mut first = true;
    while p.next_item(&mut first)? {
        let i = entries.len();
        // Locations are spelled out only when there is an error to report.
        let at = |field: &str| format!("paths[{i}]{field}");
        if p.peek() != Some(b'{') {
            return Err(wrong(&at(""), "an object", &p.any()?));
        }
        let (mut path, mut hash, mut size, mut mtime) = (None, None, None, None);
        let mut first_key = true;
        p.open(b'{')?;
        while let Some(key) = p.next_key(&mut first_key)? {
            match key.as_slice() {
                [0x70, 0x61, 0x74, 0x68] => {
                    once(&mut path, read_units(p, || at(".path"))?, || at(".path"))?
                }
                [0x68, 0x61, 0x73, 0x68] => {
                    once(&mut hash, read_string(p, || at(".hash"))?, || at(".hash"))?
                }
                [0x73, 0x69, 0x7a, 0x65] => {
                    once(&mut size, read_unsigned(p, || at(".size"))?, || at(".size"))?
                }
                [0x6d, 0x74, 0x69, 0x6d, 0x65] => {
                    once(&mut mtime, read_signed(p, || at(".mtime"))?, || at(".mtime"))?
                }
                _ => {
                    let field = at(&format!(".{}", String::from_utf16_lossy(&key)));
                    return Err(Error::invalid(format!("{field} is not a known field")));
                }
            }
        }
        entries.push(Entry {
            path: required(path, || at(".path"))?,
            hash: required(hash, || at(".hash"))?,
            size: required(size, || at(".size"))?,
            mtime: required(mtime, || at(".mtime"))?,
        });
    }
    Ok(entries)
}

fn once<T>(slot: &mut Option<T>, value: T, at: impl Fn() -> String) -> Result<()> {
    if slot.replace(value).is_some() {
        return Err(Error::invalid(format!("{} appears twice", at())));
    }
    Ok(())
}

fn required<T>(slot: Option<T>, at: impl Fn() -> String) -> Result<T> {
    slot.ok_or_else(|| Error::invalid(format!("{} is missing", at())))
}

fn read_units(p: &mut json::Parser, at: impl Fn() -> String) -> Result<Vec<u16>> {
    if p.peek() == Some(b'"') {
        p.string_units()
    } else {
        Err(wrong(&at(), "a string", &p.any()?))
    }
}

fn read_string(p: &mut json::Parser, at: impl Fn() -> String) -> Result<String> {
    let units = read_units(p, &at)?;
    String::from_utf16(&units).map_err(|_| Error::invalid(format!("{} is not valid Unicode", at())))
}

fn read_integer<'a>(
    p: &mut json::Parser<'a>,
    at: impl Fn() -> String,
    signed: bool,
) -> Result<&'a str> {
    let want = if signed { "an integer" } else { "a non-negative integer" };
    if !matches!(p.peek(), Some(b'-' | b'0'..=b'9')) {
        return Err(wrong(&at(), want, &p.any()?));
    }
    let n = p.number_text()?;
    let digits = n.strip_prefix('-').filter(|_| signed).unwrap_or(n);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid(format!("{} must be {want}, not {n}", at())));
    }
    Ok(n)
}

fn read_unsigned(p: &mut json::Parser, at: impl Fn() -> String) -> Result<u64> {
    let n = read_integer(p, &at, false)?;
    n.parse().map_err(|_| Error::invalid(format!("{} is out of range: {n}", at())))
}

fn read_signed(p: &mut json::Parser, at: impl Fn() -> String) -> Result<i64> {
    let n = read_integer(p, &at, true)?;
    n.parse().map_err(|_| Error::invalid(format!("{} is out of range: {n}", at())))
}

fn wrong(at: &str, want: &str, got: &Value) -> Error {
    match got {
        Value::Number(n) => Error::invalid(format!("{at} must be {want}, not {n}")),
        _ => Error::invalid(format!("{at} must be {want}, not {}", got.type_name())),
    }
}

/// Checks that `h` is spelled as manifests spell a digest: 32 lowercase hex digits.
pub(crate) fn check_hash(h: &str) -> Result<()> {
    if h.len() == 32 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(())
    } else {
        Err(Error::invalid(format!("{h:?} is not 32 lowercase hex digits")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hex;

    fn entry(path: &str, size: u64) -> Entry {
        Entry { path: path.encode_utf16().collect(), hash: hex(size as u128), size, mtime: -1 }
    }

    #[test]
    fn encodes_sorted_by_utf16_units() {
        let m = Manifest::new(vec![
            entry("a0.txt", 1),
            entry("a/x.txt", 2),
            entry("a.txt", 3),
            entry("a-b.txt", 4),
        ])
        .unwrap();
        let order: Vec<String> =
            m.entries().iter().map(|e| String::from_utf16_lossy(&e.path)).collect();
        assert_eq!(order, ["a-b.txt", "a.txt", "a/x.txt", "a0.txt"]);
        assert!(m.encode().starts_with(r#"{"hashAlg":"xxh128","manifestVersion":"2023-03-03","paths":[{"hash":"00000000000000000000000000000004","mtime":-1,"path":"a-b.txt","size":4}"#));
        assert!(m.encode().ends_with(r#"],"totalSize":10}"#));
        assert_eq!(decode(&m.encode()).unwrap(), m);
        let sized = |m: &Manifest| {
            encoded_len(m.entries().iter().map(|e| (e.path.as_slice(), e.size, e.mtime)))
        };
        assert_eq!(sized(&m), m.encode().len());
        let odd = vec![
            Entry { mtime: i64::MIN, size: u64::MAX / 2, ..entry("\u{1}é\"😀", 0) },
            Entry { mtime: 0, size: 0, ..entry("x", 0) },
        ];
        let odd = Manifest::new(odd).unwrap();
        assert_eq!(sized(&odd), odd.encode().len());
        assert_eq!(
            sized(&Manifest::new(vec![]).unwrap()),
            Manifest::new(vec![]).unwrap().encode().len()
        );
    }

    #[test]
    fn refuses_what_breaks_the_rules() {
        let ok = r#"{"hashAlg":"xxh128","manifestVersion":"2023-03-03","paths":[{"hash":"00000000000000000000000000000001","mtime":5,"path":"a","size":1}],"totalSize":1}"#;
        assert!(decode(ok).is_ok());
        for (from, to, why) in [
            (r#""size":1"#, r#""size":-1"#, "non-negative"),
            (r#""size":1"#, r#""size":1.0"#, "non-negative integer"),
            (r#""totalSize":1"#, r#""totalSize":2"#, "add up"),
            (r#""path":"a""#, r#""path":"../a""#, "'..'"),
            (r#""path":"a""#, r#""path":"/a""#, "absolute"),
            (r#""path":"a""#, r#""path":"a\u0000""#, "NUL"),
            (r#""hashAlg":"xxh128""#, r#""hashAlg":"sha256""#, "hashAlg"),
            (r#""2023-03-03""#, r#""2025-12-04-beta""#, "manifestVersion"),
            (r#""mtime":5,"#, "", "mtime is missing"),
            (r#""mtime":5,"#, r#""mtime":5,"extra":1,"#, "extra is not a known field"),
            (r#""hash":"00000000000000000000000000000001""#, r#""hash":"XYZ""#, "hex"),
        ] {
            let bad = ok.replacen(from, to, 1);
            let err = decode(&bad).unwrap_err();
            assert!(err.message.contains(why), "{bad}: {}", err.message);
        }
        let dup = ok.replace(r#"{"hash""#, r#"{"hash":"00000000000000000000000000000001","mtime":5,"path":"a","size":1},{"hash""#).replace(r#""totalSize":1"#, r#""totalSize":2"#);
        assert!(decode(&dup).unwrap_err().message.contains("more than once"));
    }

    #[test]
    fn every_name_a_posix_file_system_holds_round_trips() {
        // The official encoder's bytes for a backslash, a colon first, control characters
        // and a name byte that is not UTF-8.
        let text = r#"{"hashAlg":"xxh128","manifestVersion":"2023-03-03","paths":[{"hash":"00000000000000000000000000000001","mtime":5,"path":"C:x\\back\\slash\t\n\u0001\u007f\udcff","size":1}],"totalSize":1}"#;
        let m = decode(text).unwrap();
        let units: Vec<u16> =
            "C:x\\back\\slash\t\n\u{1}\u{7f}".encode_utf16().chain([0xdcff]).collect();
        assert_eq!(m.entries()[0].path, units);
        assert_eq!(m.encode(), text);
    }

    #[test]
    fn refuses_a_file_that_is_also_a_directory() {
        // "a!" sorts between "a" and "a/b", so the check cannot look at neighbours only.
        let clash = Manifest::new(vec![entry("a", 1), entry("a!", 2), entry("a/b", 3)]);
        let err = clash.unwrap_err();
        assert!(err.message.contains(r#""a" is a file and also the directory of "a/b""#));
        assert_eq!(err.path.as_deref(), Some("a"));
        assert!(Manifest::new(vec![entry("a", 1), entry("ab/c", 2), entry("a.b/c", 3)]).is_ok());
    }
}
