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
        out.push_str(r#"{"hashAlg":"xxh128","manifestVersion":"2023-03-03","paths":["#);
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

/// xxh3-128 of an encoded manifest: its `inputManifestHash`.
pub fn hash_encoded(encoded: &str) -> String {
    let mut h = Hasher::new();
    h.update(encoded.as_bytes());
    h.finish_hex()
}

/// Decodes and validates a v2023-03-03 manifest. Errors name the field that is wrong.
pub fn decode(text: &str) -> Result<Manifest> {
    let Value::Object(members) = json::parse(text)? else {
        return Err(Error::invalid("a manifest must be a JSON object"));
    };
    let mut fields = Fields::new(members, "manifest");
    let version = fields.string("manifestVersion")?;
    if version != VERSION {
        return Err(Error::invalid(format!(
            "manifestVersion {version:?} is not supported (expected {VERSION:?})"
        )));
    }
    let alg = fields.string("hashAlg")?;
    if alg != HASH_ALG {
        return Err(Error::invalid(format!(
            "hashAlg {alg:?} is not supported (expected {HASH_ALG:?})"
        )));
    }
    let total: u64 = fields.unsigned("totalSize")?;
    let Value::Array(items) = fields.take("paths")? else {
        return Err(Error::invalid("paths must be an array"));
    };
    fields.finish()?;
    let mut entries = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let at = format!("paths[{i}]");
        let Value::Object(members) = item else {
            return Err(Error::invalid(format!("{at} must be an object")));
        };
        let mut f = Fields::new(members, &at);
        let Value::String(path) = f.take("path")? else {
            return Err(Error::invalid(format!("{at}.path must be a string")));
        };
        let entry = Entry {
            path,
            hash: f.string("hash")?,
            size: f.unsigned("size")?,
            mtime: f.signed("mtime")?,
        };
        f.finish()?;
        entries.push(entry);
    }
    let manifest = Manifest::new(entries)?;
    let sum = manifest.entries.iter().try_fold(0u64, |acc, e| acc.checked_add(e.size));
    if sum != Some(total) {
        return Err(Error::invalid(format!(
            "totalSize is {total} but the sizes of the paths add up to {}",
            sum.map_or_else(|| "more than 2^64".to_string(), |s| s.to_string())
        )));
    }
    Ok(manifest)
}

fn check_hash(h: &str) -> Result<()> {
    if h.len() == 32 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(())
    } else {
        Err(Error::invalid(format!("{h:?} is not 32 lowercase hex digits")))
    }
}

/// The members of one JSON object, taken one by one; leftovers are an error.
struct Fields {
    members: Vec<(String, Value)>,
    at: String,
}

impl Fields {
    fn new(members: Vec<(String, Value)>, at: &str) -> Self {
        Fields { members, at: at.to_string() }
    }

    fn take(&mut self, name: &str) -> Result<Value> {
        match self.members.iter().position(|(k, _)| k == name) {
            Some(i) => Ok(self.members.swap_remove(i).1),
            None => Err(Error::invalid(format!("{}.{name} is missing", self.at))),
        }
    }

    fn string(&mut self, name: &str) -> Result<String> {
        match self.take(name)? {
            Value::String(u) => String::from_utf16(&u)
                .map_err(|_| Error::invalid(format!("{}.{name} is not valid Unicode", self.at))),
            other => Err(self.wrong(name, "a string", &other)),
        }
    }

    fn integer(&mut self, name: &str, signed: bool) -> Result<String> {
        match self.take(name)? {
            Value::Number(n)
                if n.bytes()
                    .enumerate()
                    .all(|(i, b)| b.is_ascii_digit() || (signed && i == 0 && b == b'-')) =>
            {
                Ok(n)
            }
            other => {
                let want = if signed { "an integer" } else { "a non-negative integer" };
                Err(self.wrong(name, want, &other))
            }
        }
    }

    fn unsigned(&mut self, name: &str) -> Result<u64> {
        let n = self.integer(name, false)?;
        n.parse().map_err(|_| Error::invalid(format!("{}.{name} is out of range: {n}", self.at)))
    }

    fn signed(&mut self, name: &str) -> Result<i64> {
        let n = self.integer(name, true)?;
        n.parse().map_err(|_| Error::invalid(format!("{}.{name} is out of range: {n}", self.at)))
    }

    fn wrong(&self, name: &str, want: &str, got: &Value) -> Error {
        match got {
            Value::Number(n) => {
                Error::invalid(format!("{}.{name} must be {want}, not {n}", self.at))
            }
            _ => Error::invalid(format!(
                "{}.{name} must be {want}, not {}",
                self.at,
                got.type_name()
            )),
        }
    }

    fn finish(self) -> Result<()> {
        match self.members.first() {
            None => Ok(()),
            Some((k, _)) => Err(Error::invalid(format!("{}.{k} is not a known field", self.at))),
        }
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
            (r#""path":"a""#, r#""path":"a\\b""#, "backslash"),
            (r#""path":"a""#, r#""path":"C:a""#, "drive"),
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
}
