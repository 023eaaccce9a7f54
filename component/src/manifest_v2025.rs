//! The newer manifest format, as the experimental branch of the official code writes it
//! (`relative-manifest-{snapshot,diff}-beta-2025-12`). The rules are written down in
//! `docs/manifest-formats.md`; this module is their one implementation.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::error::{Error, Result};
use crate::json::{self, Value};
use crate::relpath;

pub const SPEC_SNAPSHOT: &str = "relative-manifest-snapshot-beta-2025-12";
pub const SPEC_DIFF: &str = "relative-manifest-diff-beta-2025-12";
/// Files larger than this are hashed in chunks of this size (`chunkhashes`).
pub const CHUNK_SIZE: u64 = 256 << 20;

/// What a file entry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Hash(String),
    Chunks(Vec<String>),
    /// A symlink, with its target as a root-relative path.
    Symlink(Vec<u16>),
    /// A deletion in a diff manifest.
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: Vec<u16>,
    pub content: Content,
    pub size: Option<u64>,
    pub mtime: Option<i64>,
    pub runnable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dir {
    pub path: Vec<u16>,
    pub deleted: bool,
}

/// A validated manifest of the newer format. `parent` is set for a diff manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub dirs: Vec<Dir>,
    pub files: Vec<File>,
    pub parent: Option<String>,
}

impl Manifest {
    /// Validates entries, adds every parent directory the encoding refers to, and sorts
    /// (directories by code point, files by UTF-16 unit, as the reference encoder does).
    pub fn new(dirs: Vec<Dir>, files: Vec<File>, parent: Option<String>) -> Result<Self> {
        let diff = parent.is_some();
        if let Some(p) = &parent {
            check_hash(p, "manifest.parentManifestHash")?;
        }
        let mut by_path: BTreeMap<Vec<u16>, bool> = BTreeMap::new();
        for d in &dirs {
            relpath::check_units(&d.path)?;
            if d.deleted && !diff {
                return Err(invalid(&d.path, "a snapshot manifest cannot delete a directory"));
            }
            if by_path.insert(d.path.clone(), d.deleted).is_some() {
                return Err(invalid(&d.path, "directory appears more than once"));
            }
        }
        let mut seen = BTreeSet::new();
        for f in &files {
            check_file(f, diff)?;
            if !seen.insert(f.path.clone()) {
                return Err(invalid(&f.path, "path appears more than once"));
            }
        }
        let mut needed: BTreeSet<Vec<u16>> = BTreeSet::new();
        let targets = files.iter().filter_map(|f| match &f.content {
            Content::Symlink(t) => Some(t),
            _ => None,
        });
        for p in files.iter().map(|f| &f.path).chain(targets).chain(by_path.keys()) {
            let mut end = p.len();
            while let Some(i) = p[..end].iter().rposition(|&u| u == SLASH) {
                needed.insert(p[..i].to_vec());
                end = i;
            }
        }
        for p in needed {
            by_path.entry(p).or_insert(false);
        }
        // A snapshot cannot hold a file that is also a directory (a diff may: one replaced
        // the other).
        if let Some(p) = seen.iter().find(|p| !diff && by_path.contains_key(*p)) {
            return Err(invalid(p, "is a file and also a directory"));
        }
        let mut dirs: Vec<Dir> =
            by_path.into_iter().map(|(path, deleted)| Dir { path, deleted }).collect();
        dirs.sort_by(|a, b| code_point_order(&a.path, &b.path));
        let mut files = files;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Manifest { dirs, files, parent })
    }

    pub fn total_size(&self) -> u64 {
        self.files.iter().filter_map(|f| f.size).sum()
    }

    /// The canonical encoding: `json.dumps(sort_keys=True, separators=(",", ":"),
    /// ensure_ascii=True)` of the reference encoder's document, `$N/` references included.
    pub fn encode(&self) -> String {
        let index: BTreeMap<&[u16], usize> =
            self.dirs.iter().enumerate().map(|(i, d)| (d.path.as_slice(), i)).collect();
        let mut out = String::from(r#"{"dirs":["#);
        for (i, d) in self.dirs.iter().enumerate() {
            out.push_str(if i > 0 { r#",{"# } else { "{" });
            if d.deleted {
                out.push_str(r#""delete":true,"#);
            }
            out.push_str(r#""name":"#);
            write_name(&mut out, &d.path, &index);
            out.push('}');
        }
        out.push_str(r#"],"files":["#);
        for (i, f) in self.files.iter().enumerate() {
            out.push_str(if i > 0 { ",{" } else { "{" });
            let mut fields: Vec<String> = Vec::new();
            match &f.content {
                Content::Chunks(c) => {
                    let list: Vec<String> = c.iter().map(|h| format!("\"{h}\"")).collect();
                    fields.push(format!(r#""chunkhashes":[{}]"#, list.join(",")));
                }
                Content::Deleted => fields.push(r#""delete":true"#.to_string()),
                Content::Hash(h) => fields.push(format!(r#""hash":"{h}""#)),
                Content::Symlink(_) => {}
            }
            if let Some(m) = f.mtime {
                fields.push(format!(r#""mtime":{m}"#));
            }
            let mut name = String::from(r#""name":"#);
            write_name(&mut name, &f.path, &index);
            fields.push(name);
            if f.runnable {
                fields.push(r#""runnable":true"#.to_string());
            }
            if let Some(s) = f.size {
                fields.push(format!(r#""size":{s}"#));
            }
            if let Content::Symlink(target) = &f.content {
                let mut s = String::from(r#""symlink":{"name":"#);
                write_name(&mut s, target, &index);
                s.push('}');
                fields.push(s);
            }
            out.push_str(&fields.join(","));
            out.push('}');
        }
        let _ = write!(out, r#"],"hashAlg":"xxh128","#);
        if let Some(p) = &self.parent {
            let _ = write!(out, r#""parentManifestHash":"{p}","#);
        }
        let spec = if self.parent.is_some() { SPEC_DIFF } else { SPEC_SNAPSHOT };
        let _ =
            write!(out, r#""specificationVersion":"{spec}","totalSize":{}}}"#, self.total_size());
        out
    }
}

const SLASH: u16 = b'/' as u16;

fn invalid(path: &[u16], why: &str) -> Error {
    let p = String::from_utf16_lossy(path);
    Error::invalid(format!("{p:?}: {why}")).at(&p)
}

fn check_hash(h: &str, at: &str) -> Result<()> {
    crate::manifest::check_hash(h).map_err(|e| e.within(at))
}

fn check_file(f: &File, diff: bool) -> Result<()> {
    relpath::check_units(&f.path)?;
    let at = String::from_utf16_lossy(&f.path);
    let metadata = f.size.is_some() || f.mtime.is_some() || f.runnable;
    match &f.content {
        Content::Deleted if !diff => {
            return Err(invalid(&f.path, "a snapshot manifest cannot delete a file"));
        }
        Content::Deleted | Content::Symlink(_) if metadata => {
            return Err(invalid(
                &f.path,
                "deletions and symlinks carry no size, mtime or runnable",
            ));
        }
        Content::Symlink(target) => relpath::check_units(target)
            .map_err(|e| e.within(&format!("{at:?}: symlink target")))?,
        Content::Hash(h) => {
            check_hash(h, &format!("{at:?}: hash"))?;
            let size = sized(f)?;
            if size > CHUNK_SIZE {
                return Err(invalid(
                    &f.path,
                    "a file over 256 MiB must have chunkhashes, not hash",
                ));
            }
        }
        Content::Chunks(c) => {
            for h in c {
                check_hash(h, &format!("{at:?}: chunkhashes"))?;
            }
            let size = sized(f)?;
            if size <= CHUNK_SIZE || c.len() as u64 != size.div_ceil(CHUNK_SIZE) {
                return Err(invalid(
                    &f.path,
                    "chunkhashes must hash each 256 MiB of a larger file",
                ));
            }
        }
        Content::Deleted => {}
    }
    Ok(())
}

fn sized(f: &File) -> Result<u64> {
    if f.mtime.is_none() {
        return Err(invalid(&f.path, "mtime is missing"));
    }
    f.size.ok_or_else(|| invalid(&f.path, "size is missing"))
}

/// Python's `str` order: by code point, a lone surrogate counting as its own value.
fn code_point_order(a: &[u16], b: &[u16]) -> Ordering {
    let points = |s: &[u16]| -> Vec<u32> {
        char::decode_utf16(s.iter().copied())
            .map(|c| c.map_or_else(|e| u32::from(e.unpaired_surrogate()), u32::from))
            .collect()
    };
    points(a).cmp(&points(b))
}

fn write_name(out: &mut String, path: &[u16], index: &BTreeMap<&[u16], usize>) {
    match path.iter().rposition(|&u| u == SLASH) {
        Some(i) => {
            let dir = index.get(&path[..i]).expect("every parent directory is listed");
            let mut name: Vec<u16> = format!("${dir}/").encode_utf16().collect();
            name.extend_from_slice(&path[i + 1..]);
            json::write_string(out, &name);
        }
        None => json::write_string(out, path),
    }
}

/// Decodes and validates a manifest of the newer format.
pub fn decode(text: &str) -> Result<Manifest> {
    let Value::Object(top) = json::parse(text)? else {
        return Err(Error::invalid("a manifest must be a JSON object"));
    };
    let mut top = Members::new(top, "manifest");
    let spec = top.string("specificationVersion")?;
    let diff = match spec.as_str() {
        SPEC_SNAPSHOT => false,
        SPEC_DIFF => true,
        s if s.starts_with("absolute-manifest-") => {
            return Err(Error::invalid(format!(
                "specificationVersion {s:?} is not supported: paths must be relative to a root"
            )))
        }
        s => return Err(Error::invalid(format!("specificationVersion {s:?} is not supported"))),
    };
    let alg = top.string("hashAlg")?;
    if alg != "xxh128" {
        return Err(Error::invalid(format!("hashAlg {alg:?} is not supported")));
    }
    let parent =
        top.optional("parentManifestHash")?.map(|v| top.as_string(v, "parentManifestHash"));
    let parent = parent.transpose()?;
    if parent.is_some() != diff {
        return Err(Error::invalid(
            "parentManifestHash is required in a diff manifest, and only there",
        ));
    }
    let total = top.unsigned("totalSize")?;
    let raw_dirs = top.array("dirs")?;
    let raw_files = top.array("files")?;
    top.finish()?;

    let mut dirs: Vec<Dir> = Vec::with_capacity(raw_dirs.len());
    for (i, v) in raw_dirs.into_iter().enumerate() {
        let mut m = Members::object(v, &format!("dirs[{i}]"))?;
        let name = m.units("name")?;
        let deleted = m.flag("delete")?;
        m.finish()?;
        let path = expand(&name, &dirs, &format!("dirs[{i}].name"))?;
        dirs.push(Dir { path, deleted });
    }
    let mut files = Vec::with_capacity(raw_files.len());
    for (i, v) in raw_files.into_iter().enumerate() {
        let at = format!("files[{i}]");
        let mut m = Members::object(v, &at)?;
        let path = expand(&m.units("name")?, &dirs, &format!("{at}.name"))?;
        let hash = m.optional("hash")?.map(|v| m.as_string(v, "hash")).transpose()?;
        let chunks = m.optional("chunkhashes")?.map(|v| m.strings(v, "chunkhashes")).transpose()?;
        let symlink = match m.optional("symlink")? {
            Some(v) => {
                let mut s = Members::object(v, &format!("{at}.symlink"))?;
                let target = s.units("name")?;
                s.finish()?;
                Some(expand(&target, &dirs, &format!("{at}.symlink.name"))?)
            }
            None => None,
        };
        let deleted = m.flag("delete")?;
        let size = m.optional("size")?.map(|v| m.as_unsigned(v, "size")).transpose()?;
        let mtime = m.optional("mtime")?.map(|v| m.as_signed(v, "mtime")).transpose()?;
        let runnable = m.flag("runnable")?;
        m.finish()?;
        let content = match (hash, chunks, symlink, deleted) {
            (Some(h), None, None, false) => Content::Hash(h),
            (None, Some(c), None, false) => Content::Chunks(c),
            (None, None, Some(t), false) => Content::Symlink(t),
            (None, None, None, true) => Content::Deleted,
            _ => {
                return Err(Error::invalid(format!(
                    "{at} must have exactly one of hash, chunkhashes, symlink or delete"
                )))
            }
        };
        files.push(File { path, content, size, mtime, runnable });
    }
    let manifest = Manifest::new(dirs, files, parent)?;
    if manifest.total_size() != total {
        return Err(Error::invalid(format!(
            "totalSize is {total} but the sizes of the files add up to {}",
            manifest.total_size()
        )));
    }
    Ok(manifest)
}

/// Expands a `$N/leaf` name against the directories decoded so far.
fn expand(name: &[u16], dirs: &[Dir], at: &str) -> Result<Vec<u16>> {
    let text = String::from_utf16_lossy(name);
    let bad = |why: &str| Error::invalid(format!("{at}: {text:?} {why}"));
    let Some(slash) = name.iter().position(|&u| u == SLASH) else {
        return Ok(name.to_vec());
    };
    if slash == 0 {
        return Ok(name.to_vec()); // an absolute path, which the path rules then refuse
    }
    if name[slash + 1..].contains(&SLASH) {
        return Err(bad("has more than one '/'; nested paths must use $N/ references"));
    }
    let reference =
        String::from_utf16(&name[..slash]).map_err(|_| bad("is not a $N/ reference"))?;
    let index: usize = reference
        .strip_prefix('$')
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| bad("must start with a $N/ reference"))?;
    let dir = dirs.get(index).ok_or_else(|| bad("refers to a directory not listed before it"))?;
    let mut path = dir.path.clone();
    path.push(SLASH);
    path.extend_from_slice(&name[slash + 1..]);
    Ok(path)
}

/// The members of a JSON object, taken by name; leftovers are unknown fields.
struct Members {
    members: Vec<(String, Value)>,
    at: String,
}

impl Members {
    fn new(members: Vec<(String, Value)>, at: &str) -> Self {
        Members { members, at: at.to_string() }
    }

    fn object(v: Value, at: &str) -> Result<Self> {
        match v {
            Value::Object(m) => Ok(Members::new(m, at)),
            other => {
                Err(Error::invalid(format!("{at} must be an object, not {}", other.type_name())))
            }
        }
    }

    fn optional(&mut self, name: &str) -> Result<Option<Value>> {
        Ok(self.members.iter().position(|(k, _)| k == name).map(|i| self.members.remove(i).1))
    }

    fn required(&mut self, name: &str) -> Result<Value> {
        self.optional(name)?.ok_or_else(|| Error::invalid(format!("{}.{name} is missing", self.at)))
    }

    fn wrong(&self, name: &str, want: &str, got: &Value) -> Error {
        Error::invalid(format!("{}.{name} must be {want}, not {}", self.at, got.type_name()))
    }

    fn units(&mut self, name: &str) -> Result<Vec<u16>> {
        match self.required(name)? {
            Value::String(u) => Ok(u),
            other => Err(self.wrong(name, "a string", &other)),
        }
    }

    fn as_string(&self, v: Value, name: &str) -> Result<String> {
        match v {
            Value::String(u) => String::from_utf16(&u)
                .map_err(|_| Error::invalid(format!("{}.{name} is not valid Unicode", self.at))),
            other => Err(self.wrong(name, "a string", &other)),
        }
    }

    fn string(&mut self, name: &str) -> Result<String> {
        let v = self.required(name)?;
        self.as_string(v, name)
    }

    fn strings(&self, v: Value, name: &str) -> Result<Vec<String>> {
        match v {
            Value::Array(items) => items.into_iter().map(|i| self.as_string(i, name)).collect(),
            other => Err(self.wrong(name, "a list of strings", &other)),
        }
    }

    fn array(&mut self, name: &str) -> Result<Vec<Value>> {
        match self.required(name)? {
            Value::Array(items) => Ok(items),
            other => Err(self.wrong(name, "a list", &other)),
        }
    }

    fn as_unsigned(&self, v: Value, name: &str) -> Result<u64> {
        match &v {
            Value::Number(n) if n.bytes().all(|b| b.is_ascii_digit()) => {
                n.parse().map_err(|_| Error::invalid(format!("{}.{name} is out of range", self.at)))
            }
            _ => Err(self.wrong(name, "a non-negative integer", &v)),
        }
    }

    fn as_signed(&self, v: Value, name: &str) -> Result<i64> {
        match &v {
            Value::Number(n)
                if n.strip_prefix('-').unwrap_or(n).bytes().all(|b| b.is_ascii_digit()) =>
            {
                n.parse().map_err(|_| Error::invalid(format!("{}.{name} is out of range", self.at)))
            }
            _ => Err(self.wrong(name, "an integer", &v)),
        }
    }

    fn unsigned(&mut self, name: &str) -> Result<u64> {
        let v = self.required(name)?;
        self.as_unsigned(v, name)
    }

    /// A flag that is `true` or absent (the reference writes no `false`).
    fn flag(&mut self, name: &str) -> Result<bool> {
        match self.optional(name)? {
            None => Ok(false),
            Some(Value::Bool(true)) => Ok(true),
            Some(other) => Err(self.wrong(name, "true (or be omitted)", &other)),
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

    fn u(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    fn h(n: u8) -> String {
        format!("{n:032x}")
    }

    fn file(path: &str, content: Content, size: Option<u64>, runnable: bool) -> File {
        let mtime = size.map(|s| s as i64 + 4);
        File { path: u(path), content, size, mtime, runnable }
    }

    fn sample() -> Manifest {
        let files = vec![
            file("dir/sub/b.bin", Content::Hash(h(2)), Some(2), true),
            file("a.txt", Content::Hash(h(1)), Some(1), false),
            file("dir/link", Content::Symlink(u("a.txt")), None, false),
        ];
        Manifest::new(vec![Dir { path: u("empty"), deleted: false }], files, None).unwrap()
    }

    #[test]
    fn encodes_as_the_reference_encoder() {
        let expected = concat!(
            r#"{"dirs":[{"name":"dir"},{"name":"$0/sub"},{"name":"empty"}],"files":["#,
            r#"{"hash":"00000000000000000000000000000001","mtime":5,"name":"a.txt","size":1},"#,
            r#"{"name":"$0/link","symlink":{"name":"a.txt"}},"#,
            r#"{"hash":"00000000000000000000000000000002","mtime":6,"name":"$1/b.bin","runnable":true,"size":2}],"#,
            r#""hashAlg":"xxh128","specificationVersion":"relative-manifest-snapshot-beta-2025-12","totalSize":3}"#
        );
        assert_eq!(sample().encode(), expected);
        assert_eq!(decode(expected).unwrap(), sample());
    }

    #[test]
    fn directories_sort_by_code_point_and_files_by_utf16() {
        let files = vec![
            file("\u{ff5e}/x", Content::Hash(h(1)), Some(1), false),
            file("\u{1f600}/y", Content::Hash(h(2)), Some(1), false),
        ];
        let m = Manifest::new(Vec::new(), files, None).unwrap();
        let dirs: Vec<String> = m.dirs.iter().map(|d| String::from_utf16_lossy(&d.path)).collect();
        assert_eq!(dirs, ["\u{ff5e}", "\u{1f600}"]); // U+FF5E < U+1F600 as code points
        let names: Vec<String> =
            m.files.iter().map(|f| String::from_utf16_lossy(&f.path)).collect();
        assert_eq!(names, ["\u{1f600}/y", "\u{ff5e}/x"]); // but D83D < FF5E as UTF-16 units
        assert_eq!(decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn a_snapshot_cannot_hold_a_file_that_is_also_a_directory() {
        let files = || {
            vec![
                file("a", Content::Hash(h(1)), Some(1), false),
                file("a/b", Content::Hash(h(2)), Some(1), false),
            ]
        };
        let err = Manifest::new(Vec::new(), files(), None).unwrap_err();
        assert!(err.message.contains("is a file and also a directory"), "{}", err.message);
        let dir = vec![Dir { path: u("a"), deleted: false }];
        let one = vec![file("a", Content::Hash(h(1)), Some(1), false)];
        assert!(Manifest::new(dir, one, None).is_err());
        // A diff may replace a file with a directory.
        let mut replaced = files();
        replaced[0] = file("a", Content::Deleted, None, false);
        assert!(Manifest::new(Vec::new(), replaced, Some(h(9))).is_ok());
    }

    #[test]
    fn diff_manifests_carry_deletions_and_a_parent() {
        let files = vec![file("gone.txt", Content::Deleted, None, false)];
        let dirs = vec![Dir { path: u("old"), deleted: true }];
        let m = Manifest::new(dirs, files, Some(h(9))).unwrap();
        let text = m.encode();
        assert!(text.contains(r#"{"delete":true,"name":"old"}"#), "{text}");
        assert!(text.contains(r#"{"delete":true,"name":"gone.txt"}"#), "{text}");
        assert!(text.contains(r#""parentManifestHash":"00000000000000000000000000000009","specificationVersion":"relative-manifest-diff-beta-2025-12""#));
        assert_eq!(decode(&text).unwrap(), m);
    }

    #[test]
    fn chunk_hashes_are_for_large_files_only() {
        let big = CHUNK_SIZE * 2 + 1;
        let ok = file("big", Content::Chunks(vec![h(1), h(2), h(3)]), Some(big), false);
        assert!(Manifest::new(Vec::new(), vec![ok], None).is_ok());
        let short = file("big", Content::Chunks(vec![h(1), h(2)]), Some(big), false);
        assert!(Manifest::new(Vec::new(), vec![short], None).is_err());
        let hashed = file("big", Content::Hash(h(1)), Some(big), false);
        assert!(Manifest::new(Vec::new(), vec![hashed], None).is_err());
    }

    #[test]
    fn refuses_what_breaks_the_rules() {
        let good = sample().encode();
        for (from, to, why) in [
            (r#""name":"$1/b.bin""#, r#""name":"$7/b.bin""#, "not listed before"),
            (r#""name":"$1/b.bin""#, r#""name":"dir/sub/b.bin""#, "more than one '/'"),
            (r#""name":"$1/b.bin""#, r#""name":"x/b.bin""#, "$N/ reference"),
            (r#""name":"a.txt","size":1"#, r#""name":"..","size":1"#, "'..'"),
            (r#""symlink":{"name":"a.txt"}"#, r#""symlink":{"name":"/etc"}"#, "absolute"),
            (r#""runnable":true"#, r#""runnable":false"#, "true (or be omitted)"),
            (r#""totalSize":3"#, r#""totalSize":4"#, "totalSize"),
            ("snapshot-beta", "diff-beta", "parentManifestHash"),
            (r#""relative-manifest"#, r#""absolute-manifest"#, "relative"),
            (r#""mtime":5,"#, "", "mtime is missing"),
            (r#"{"name":"empty"}"#, r#"{"delete":true,"name":"empty"}"#, "cannot delete"),
        ] {
            let bad = good.replacen(from, to, 1);
            assert_ne!(bad, good, "{from}");
            let err = decode(&bad).unwrap_err();
            assert!(err.message.contains(why), "{bad}: {}", err.message);
        }
    }
}
