//! Both manifest formats behind one interface: decoding whichever a document is, encoding,
//! lossless conversion, and the format-independent view of entries that hosts read.

use std::fmt::Write;

use crate::error::{Error, Result};
use crate::json::{self, Value};
use crate::manifest::{self as v2023, Entry};
use crate::manifest_v2025::{self as v2025, Content, Dir, File};

pub const V2023: &str = "v2023-03-03";
pub const V2025_SNAPSHOT: &str = "v2025-12-snapshot";
pub const V2025_DIFF: &str = "v2025-12-diff";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyManifest {
    V2023(v2023::Manifest),
    V2025(v2025::Manifest),
}

/// The most bytes a manifest may take, as given and in its canonical encoding: 120 MiB, about a
/// million files of 60-character paths (a v2023-03-03 entry takes about 60 bytes and its path).
///
/// The engine takes a manifest and gives it back whole, and what one call gives back is
/// bounded by wasmtime's hostcall fuel: 128 MiB a call, the default, which wasmtime-py cannot
/// change (its C API has no setting for it). 8 MiB are left for the rest of a result.
pub const MAX_BYTES: usize = 120 << 20;

/// Refuses a manifest of `len` bytes over [`MAX_BYTES`]; `what` says which (`is`, `would
/// be`).
pub fn check_size(len: usize, what: &str) -> Result<()> {
    if len <= MAX_BYTES {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "the manifest {what} {len} bytes, over the limit of {MAX_BYTES} bytes (120 MiB, about a \
         million files) a manifest may take: the engine handles a manifest whole, and a call \
         gives back at most 128 MiB; split the files over several jobs or asset roots"
    )))
}

/// Decodes a manifest of either format, told apart by `manifestVersion` (v2023-03-03) or
/// `specificationVersion` (the newer one). A text over [`MAX_BYTES`] is refused unread.
pub fn decode(text: &str) -> Result<AnyManifest> {
    check_size(text.len(), "is")?;
    if text.contains("\"specificationVersion\"") && !text.contains("\"manifestVersion\"") {
        v2025::decode(text).map(AnyManifest::V2025)
    } else {
        v2023::decode(text).map(AnyManifest::V2023)
    }
}

/// Decodes a manifest for the operations defined on v2023-03-03 only (diff, merge, outputs),
/// saying so plainly when the document is of the newer format.
pub fn decode_v2023(text: &str) -> Result<v2023::Manifest> {
    match decode(text)? {
        AnyManifest::V2023(m) => Ok(m),
        other => Err(Error::invalid(format!(
            "this takes v2023-03-03 manifests, not {} (convert it first where that is lossless)",
            other.format()
        ))),
    }
}

impl AnyManifest {
    pub fn format(&self) -> &'static str {
        match self {
            AnyManifest::V2023(_) => V2023,
            AnyManifest::V2025(m) if m.parent.is_some() => V2025_DIFF,
            AnyManifest::V2025(_) => V2025_SNAPSHOT,
        }
    }

    pub fn encode(&self) -> String {
        match self {
            AnyManifest::V2023(m) => m.encode(),
            AnyManifest::V2025(m) => m.encode(),
        }
    }

    /// `{"parent": hash|null, "dirs": [[path, deleted]], "files": [{"path", "hash"?,
    /// "chunkhashes"?, "symlink"?, "size"?, "mtime"?, "runnable"?, "deleted"?}]}` with full
    /// paths, every directory the manifest lists, and only the fields an entry has.
    pub fn view(&self) -> String {
        let (dirs, files, parent) = match self {
            AnyManifest::V2023(m) => (Vec::new(), m.entries().iter().map(file_of).collect(), None),
            AnyManifest::V2025(m) => (m.dirs.clone(), m.files.clone(), m.parent.clone()),
        };
        let mut out = String::from(r#"{"parent":"#);
        match parent {
            Some(p) => {
                let _ = write!(out, r#""{p}""#);
            }
            None => out.push_str("null"),
        }
        out.push_str(r#","dirs":["#);
        for (i, d) in dirs.iter().enumerate() {
            out.push_str(if i > 0 { ",[" } else { "[" });
            json::write_string(&mut out, &d.path);
            let _ = write!(out, ",{}]", d.deleted);
        }
        out.push_str(r#"],"files":["#);
        for (i, f) in files.iter().enumerate() {
            out.push_str(if i > 0 { r#",{"path":"# } else { r#"{"path":"# });
            json::write_string(&mut out, &f.path);
            match &f.content {
                Content::Hash(h) => {
                    let _ = write!(out, r#","hash":"{h}""#);
                }
                Content::Chunks(c) => {
                    let list: Vec<String> = c.iter().map(|h| format!("\"{h}\"")).collect();
                    let _ = write!(out, r#","chunkhashes":[{}]"#, list.join(","));
                }
                Content::Symlink(t) => {
                    out.push_str(r#","symlink":"#);
                    json::write_string(&mut out, t);
                }
                Content::Deleted => out.push_str(r#","deleted":true"#),
            }
            if let Some(s) = f.size {
                let _ = write!(out, r#","size":{s}"#);
            }
            if let Some(m) = f.mtime {
                let _ = write!(out, r#","mtime":{m}"#);
            }
            if f.runnable {
                out.push_str(r#","runnable":true"#);
            }
            out.push('}');
        }
        out.push_str("]}");
        out
    }

    /// The same manifest in `format`, when nothing is lost on the way.
    pub fn convert(self, format: &str) -> Result<AnyManifest> {
        match (self, format) {
            (m, f) if m.format() == f => Ok(m),
            (AnyManifest::V2023(m), V2025_SNAPSHOT) => {
                let files = m.entries().iter().map(file_of).collect::<Vec<_>>();
                if let Some(big) = files.iter().find(|f| f.size.unwrap_or(0) > v2025::CHUNK_SIZE) {
                    return Err(lossy(
                        big,
                        "is over 256 MiB: the newer format needs its chunk hashes",
                    ));
                }
                Ok(AnyManifest::V2025(v2025::Manifest::new(Vec::new(), files, None)?))
            }
            (AnyManifest::V2025(m), V2023) => {
                if m.parent.is_some() {
                    return Err(Error::invalid("a diff manifest has no v2023-03-03 form"));
                }
                let parents: std::collections::BTreeSet<&[u16]> = m
                    .files
                    .iter()
                    .flat_map(|f| {
                        let p = f.path.as_slice();
                        p.iter()
                            .enumerate()
                            .filter(|(_, &u)| u == b'/' as u16)
                            .map(move |(i, _)| &p[..i])
                    })
                    .collect();
                if let Some(d) = m.dirs.iter().find(|d| !parents.contains(d.path.as_slice())) {
                    let p = String::from_utf16_lossy(&d.path);
                    return Err(Error::invalid(format!(
                        "cannot convert losslessly: directory {p:?} holds no file, and v2023-03-03 lists only files"
                    )));
                }
                let entries = m
                    .files
                    .iter()
                    .map(|f| match (&f.content, f.runnable) {
                        (Content::Hash(h), false) => Ok(Entry {
                            path: f.path.clone(),
                            hash: h.clone(),
                            size: f.size.unwrap_or(0),
                            mtime: f.mtime.unwrap_or(0),
                        }),
                        (_, true) => Err(lossy(f, "is runnable, which v2023-03-03 cannot say")),
                        (Content::Symlink(_), _) => Err(lossy(f, "is a symlink")),
                        _ => Err(lossy(f, "has chunk hashes")),
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(AnyManifest::V2023(v2023::Manifest::new(entries)?))
            }
            (_, f) => Err(Error::invalid(format!("cannot convert to {f:?}"))),
        }
    }
}

fn lossy(f: &File, why: &str) -> Error {
    let p = String::from_utf16_lossy(&f.path);
    Error::invalid(format!("cannot convert losslessly: {p:?} {why}")).at(&p)
}

fn file_of(e: &Entry) -> File {
    File {
        path: e.path.clone(),
        content: Content::Hash(e.hash.clone()),
        size: Some(e.size),
        mtime: Some(e.mtime),
        runnable: false,
    }
}

/// Builds a manifest of `format` from a view (as [`AnyManifest::view`] writes it).
pub fn build(format: &str, view: &str) -> Result<AnyManifest> {
    let bad = |why: &str| Error::invalid(format!("entries: {why}"));
    let Value::Object(top) = json::parse(view)? else { return Err(bad("must be an object")) };
    let (mut dirs, mut files, mut parent) = (Vec::new(), Vec::new(), None);
    for (key, value) in top {
        match (key.as_str(), value) {
            ("parent", Value::Null) => {}
            ("parent", Value::String(p)) => parent = Some(String::from_utf16_lossy(&p)),
            ("dirs", Value::Array(items)) => {
                for item in items {
                    match item {
                        Value::Array(pair) => match <[Value; 2]>::try_from(pair) {
                            Ok([Value::String(path), Value::Bool(deleted)]) => {
                                dirs.push(Dir { path, deleted })
                            }
                            _ => return Err(bad("a directory is [path, deleted]")),
                        },
                        _ => return Err(bad("a directory is [path, deleted]")),
                    }
                }
            }
            ("files", Value::Array(items)) => {
                for item in items {
                    files.push(file_from_view(item)?);
                }
            }
            (k, _) => return Err(bad(&format!("unexpected or mistyped {k:?}"))),
        }
    }
    match format {
        V2023 => {
            if !dirs.is_empty() || parent.is_some() {
                return Err(bad("v2023-03-03 has no directories and no parent"));
            }
            let entries = files
                .into_iter()
                .map(|f| match (f.content, f.size, f.mtime, f.runnable) {
                    (Content::Hash(hash), Some(size), Some(mtime), false) => {
                        Ok(Entry { path: f.path, hash, size, mtime })
                    }
                    _ => Err(bad("a v2023-03-03 entry has exactly path, hash, size and mtime")),
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(AnyManifest::V2023(v2023::Manifest::new(entries)?))
        }
        V2025_SNAPSHOT | V2025_DIFF => {
            if parent.is_some() != (format == V2025_DIFF) {
                return Err(bad("a diff manifest, and only a diff, has a parent"));
            }
            Ok(AnyManifest::V2025(v2025::Manifest::new(dirs, files, parent)?))
        }
        other => Err(Error::invalid(format!("unknown manifest format {other:?}"))),
    }
}

fn file_from_view(item: Value) -> Result<File> {
    let bad = || Error::invalid("entries: a file is an object with a path and its fields");
    let Value::Object(members) = item else { return Err(bad()) };
    let mut f = File {
        path: Vec::new(),
        content: Content::Deleted,
        size: None,
        mtime: None,
        runnable: false,
    };
    let mut content = None;
    for (key, value) in members {
        match (key.as_str(), value) {
            ("path", Value::String(p)) => f.path = p,
            ("hash", Value::String(h)) => {
                content = Some(Content::Hash(String::from_utf16_lossy(&h)))
            }
            ("chunkhashes", Value::Array(c)) => {
                let hashes = c
                    .into_iter()
                    .map(|h| match h {
                        Value::String(h) => Ok(String::from_utf16_lossy(&h)),
                        _ => Err(bad()),
                    })
                    .collect::<Result<Vec<_>>>()?;
                content = Some(Content::Chunks(hashes));
            }
            ("symlink", Value::String(t)) => content = Some(Content::Symlink(t)),
            ("deleted", Value::Bool(true)) => content = Some(Content::Deleted),
            ("size", Value::Number(n)) => f.size = Some(n.parse().map_err(|_| bad())?),
            ("mtime", Value::Number(n)) => f.mtime = Some(n.parse().map_err(|_| bad())?),
            ("runnable", Value::Bool(r)) => f.runnable = r,
            _ => return Err(bad()),
        }
    }
    f.content = content.ok_or_else(bad)?;
    Ok(f)
}
