//! A job root served as a file system (`wit/mount.wit`): the tree of its merged manifest, and
//! every change a task makes to it, with POSIX's answers.
//!
//! Nodes live in an arena and are numbered by their place in it, one more than their index,
//! so a number stays the node's for the tree's life (the inode a host reports) and is never
//! given to another. A file the task creates or changes is a layer file: its bytes are the
//! host's, in a file named by the layer number the tree hands out here, so the host never
//! names a file by a job's name. Paths arrive as JSON strings (UTF-16 units, lone surrogates
//! included) and are checked as every relative path is (`relpath`).

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::formats::{self, AnyManifest};
use crate::json::{self, Value};
use crate::manifest_v2025 as v2025;
use crate::relpath;

const SLASH: u16 = b'/' as u16;

/// What a file system answers when an operation cannot be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsError {
    NotFound,
    Exists,
    NotDirectory,
    IsDirectory,
    NotEmpty,
    Invalid,
}

pub type FsResult<T> = std::result::Result<T, FsError>;

/// Where a node's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Directory,
    /// The manifest's object, by digest.
    Object(String),
    /// The layer's file of this number.
    Layer(u64),
    /// A symlink, with the target to report: relative to the symlink's folder.
    Symlink(Vec<u16>),
}

/// What stands at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: u64,
    pub content: Content,
    pub size: u64,
    pub mtime_us: i64,
    pub executable: bool,
}

#[derive(Debug)]
struct Slot {
    content: Content,
    size: u64,
    mtime_us: i64,
    executable: bool,
    /// A directory's entries by name.
    children: HashMap<Vec<u16>, u64>,
}

/// The tree of one root.
#[derive(Debug)]
pub struct Tree {
    slots: Vec<Option<Slot>>,
    last_layer: u64,
}

const ROOT: u64 = 1;

impl Tree {
    /// The tree of `manifest` (v2023-03-03 or a v2025-12 snapshot), its folders made at
    /// `now_us`.
    pub fn open(manifest: &str, now_us: i64) -> Result<Tree> {
        let mut tree = Tree { slots: Vec::new(), last_layer: 0 };
        tree.add(Slot::dir(now_us));
        match formats::decode(manifest)? {
            AnyManifest::V2023(m) => {
                for e in m.entries() {
                    let content = Content::Object(e.hash.clone());
                    tree.insert(&e.path, Slot::file(content, e.size, e.mtime, false), now_us)?;
                }
            }
            AnyManifest::V2025(m) => tree.fill_v2025(&m, now_us)?,
        }
        Ok(tree)
    }

    fn fill_v2025(&mut self, m: &v2025::Manifest, now_us: i64) -> Result<()> {
        if m.parent.is_some() {
            return Err(Error::invalid("a diff manifest cannot be mounted: apply it first"));
        }
        for d in &m.dirs {
            self.insert(&d.path, Slot::dir(now_us), now_us)?;
        }
        for f in &m.files {
            let (size, mtime) = (f.size.unwrap_or(0), f.mtime.unwrap_or(now_us));
            let content = match &f.content {
                v2025::Content::Hash(h) => Content::Object(h.clone()),
                v2025::Content::Symlink(target) => {
                    Content::Symlink(relative_target(&f.path, target))
                }
                v2025::Content::Chunks(_) => {
                    let path = String::from_utf16_lossy(&f.path);
                    let why =
                        "a file split into chunks cannot be mounted yet; copy the job instead";
                    return Err(Error::invalid(why).at(&path));
                }
                v2025::Content::Deleted => continue,
            };
            self.insert(&f.path, Slot::file(content, size, mtime, f.runnable), now_us)?;
        }
        Ok(())
    }

    /// Puts `slot` at `path`, making the folders above it.
    fn insert(&mut self, path: &[u16], slot: Slot, now_us: i64) -> Result<()> {
        let mut at = ROOT;
        let segments: Vec<&[u16]> = path.split(|&u| u == SLASH).collect();
        let clash =
            || Error::invalid("is a file and also a folder").at(&String::from_utf16_lossy(path));
        for name in &segments[..segments.len() - 1] {
            at = match self.slot(at).children.get(*name) {
                Some(&id) if self.slot(id).content == Content::Directory => id,
                Some(_) => return Err(clash()),
                None => {
                    let id = self.add(Slot::dir(now_us));
                    self.slot_mut(at).children.insert(name.to_vec(), id);
                    id
                }
            };
        }
        let leaf = segments[segments.len() - 1];
        if let Some(&id) = self.slot(at).children.get(leaf) {
            // A folder listed by a newer-format manifest, met again as a folder, stays.
            if slot.content == Content::Directory && self.slot(id).content == Content::Directory {
                return Ok(());
            }
            return Err(clash());
        }
        let id = self.add(slot);
        self.slot_mut(at).children.insert(leaf.to_vec(), id);
        Ok(())
    }

    fn add(&mut self, slot: Slot) -> u64 {
        self.slots.push(Some(slot));
        self.slots.len() as u64
    }

    fn slot(&self, id: u64) -> &Slot {
        self.slots[(id - 1) as usize].as_ref().expect("a live node")
    }

    fn slot_mut(&mut self, id: u64) -> &mut Slot {
        self.slots[(id - 1) as usize].as_mut().expect("a live node")
    }

    fn node(&self, id: u64) -> Node {
        let s = self.slot(id);
        Node {
            id,
            content: s.content.clone(),
            size: s.size,
            mtime_us: s.mtime_us,
            executable: s.executable,
        }
    }

    /// The node at `path` (JSON), found segment by segment.
    fn find(&self, segments: &[Vec<u16>]) -> FsResult<u64> {
        let mut at = ROOT;
        for name in segments {
            let s = self.slot(at);
            if s.content != Content::Directory {
                return Err(FsError::NotDirectory);
            }
            at = *s.children.get(name).ok_or(FsError::NotFound)?;
        }
        Ok(at)
    }

    /// The folder `segments` go in, and their last name; the root has none.
    fn parent<'a>(&self, segments: &'a [Vec<u16>]) -> FsResult<(u64, &'a [u16])> {
        let (leaf, above) = segments.split_last().ok_or(FsError::Invalid)?;
        let folder = self.find(above)?;
        if self.slot(folder).content != Content::Directory {
            return Err(FsError::NotDirectory);
        }
        Ok((folder, leaf))
    }

    pub fn lookup(&self, path: &str) -> FsResult<Node> {
        Ok(self.node(self.find(&segments(path)?)?))
    }

    /// The directory's entries as JSON, in name order (code points).
    pub fn entries(&self, path: &str) -> FsResult<String> {
        let id = self.find(&segments(path)?)?;
        let dir = self.slot(id);
        if dir.content != Content::Directory {
            return Err(FsError::NotDirectory);
        }
        let mut names: Vec<(&Vec<u16>, u64)> = dir.children.iter().map(|(n, &i)| (n, i)).collect();
        names.sort_by_cached_key(|(name, _)| code_points(name));
        let mut out = String::from("[");
        for (i, (name, id)) in names.into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('[');
            json::write_string(&mut out, name);
            let n = self.node(id);
            let (kind, reference) = match &n.content {
                Content::Directory => ("d", "null".to_string()),
                Content::Object(d) => ("f", format!("\"{d}\"")),
                Content::Layer(l) => ("l", l.to_string()),
                Content::Symlink(t) => {
                    let mut s = String::new();
                    json::write_string(&mut s, t);
                    ("s", s)
                }
            };
            out.push_str(&format!(
                ",{},\"{kind}\",{},{},{},{reference}]",
                n.id, n.size, n.mtime_us, n.executable
            ));
        }
        out.push(']');
        Ok(out)
    }

    /// A new empty layer file, or a new directory, at `path`.
    pub fn create(&mut self, path: &str, directory: bool, now_us: i64) -> FsResult<Node> {
        let segs = segments(path)?;
        if segs.is_empty() {
            return Err(FsError::Exists);
        }
        let (folder, leaf) = self.parent(&segs)?;
        if self.slot(folder).children.contains_key(leaf) {
            return Err(FsError::Exists);
        }
        let slot = if directory {
            Slot::dir(now_us)
        } else {
            self.last_layer += 1;
            Slot::file(Content::Layer(self.last_layer), 0, 0, false)
        };
        let id = self.add(slot);
        self.slot_mut(folder).children.insert(leaf.to_vec(), id);
        Ok(self.node(id))
    }

    /// Makes the manifest file at `path` a layer file (a layer file stays as it is).
    pub fn copy_up(&mut self, path: &str) -> FsResult<Node> {
        let id = self.find(&segments(path)?)?;
        match self.slot(id).content {
            Content::Layer(_) => {}
            Content::Object(_) => {
                self.last_layer += 1;
                *self.slot_mut(id) = Slot::file(Content::Layer(self.last_layer), 0, 0, false);
            }
            Content::Directory => return Err(FsError::IsDirectory),
            Content::Symlink(_) => return Err(FsError::Invalid),
        }
        Ok(self.node(id))
    }

    /// Removes the file or symlink, or the empty directory, at `path`; the layer number
    /// whose file is no longer needed.
    pub fn remove(&mut self, path: &str, directory: bool) -> FsResult<Option<u64>> {
        let segs = segments(path)?;
        let (folder, leaf) = self.parent(&segs)?;
        let id = *self.slot(folder).children.get(leaf).ok_or(FsError::NotFound)?;
        let is_dir = self.slot(id).content == Content::Directory;
        match (is_dir, directory) {
            (true, false) => return Err(FsError::IsDirectory),
            (false, true) => return Err(FsError::NotDirectory),
            (true, true) if !self.slot(id).children.is_empty() => return Err(FsError::NotEmpty),
            _ => {}
        }
        self.slot_mut(folder).children.remove(leaf);
        Ok(self.free(id))
    }

    fn free(&mut self, id: u64) -> Option<u64> {
        let slot = self.slots[(id - 1) as usize].take().expect("a live node");
        match slot.content {
            Content::Layer(n) => Some(n),
            _ => None,
        }
    }

    /// Moves what stands at `source` to `target`, as POSIX `rename` does; the layer number
    /// of what it replaced.
    pub fn rename(&mut self, source: &str, target: &str) -> FsResult<Option<u64>> {
        let (from, to) = (segments(source)?, segments(target)?);
        let (src_folder, src_leaf) = self.parent(&from)?;
        let id = *self.slot(src_folder).children.get(src_leaf).ok_or(FsError::NotFound)?;
        let (dst_folder, dst_leaf) = self.parent(&to)?;
        if from == to {
            return Ok(None);
        }
        let moving_dir = self.slot(id).content == Content::Directory;
        if moving_dir && to.len() > from.len() && to[..from.len()] == from[..] {
            return Err(FsError::Invalid); // a folder into itself
        }
        let mut replaced = None;
        if let Some(&there) = self.slot(dst_folder).children.get(dst_leaf) {
            let there_dir = self.slot(there).content == Content::Directory;
            match (moving_dir, there_dir) {
                (true, false) => return Err(FsError::NotDirectory),
                (false, true) => return Err(FsError::IsDirectory),
                (true, true) if !self.slot(there).children.is_empty() => {
                    return Err(FsError::NotEmpty)
                }
                _ => {}
            }
            self.slot_mut(dst_folder).children.remove(dst_leaf);
            replaced = self.free(there);
        }
        self.slot_mut(src_folder).children.remove(src_leaf);
        self.slot_mut(dst_folder).children.insert(dst_leaf.to_vec(), id);
        Ok(replaced)
    }

    /// Every layer file and its path, as JSON `[[path, number]]` in path order (UTF-16 units,
    /// as manifests sort).
    pub fn layer(&self) -> String {
        let mut found: Vec<(Vec<u16>, u64)> = Vec::new();
        let mut stack: Vec<(Vec<u16>, u64)> = vec![(Vec::new(), ROOT)];
        while let Some((path, id)) = stack.pop() {
            for (name, &child) in &self.slot(id).children {
                let mut p = path.clone();
                if !p.is_empty() {
                    p.push(SLASH);
                }
                p.extend_from_slice(name);
                match self.slot(child).content {
                    Content::Directory => stack.push((p, child)),
                    Content::Layer(n) => found.push((p, n)),
                    _ => {}
                }
            }
        }
        found.sort();
        let mut out = String::from("[");
        for (i, (path, n)) in found.iter().enumerate() {
            out.push_str(if i > 0 { ",[" } else { "[" });
            json::write_string(&mut out, path);
            out.push_str(&format!(",{n}]"));
        }
        out.push(']');
        out
    }
}

impl Slot {
    fn dir(mtime_us: i64) -> Slot {
        Slot {
            content: Content::Directory,
            size: 0,
            mtime_us,
            executable: false,
            children: HashMap::new(),
        }
    }

    fn file(content: Content, size: u64, mtime_us: i64, executable: bool) -> Slot {
        Slot { content, size, mtime_us, executable, children: HashMap::new() }
    }
}

/// A path given as a JSON string, as its names; `""` is the root. Anything else that is not
/// a relative path is `Invalid`.
fn segments(path: &str) -> FsResult<Vec<Vec<u16>>> {
    let Ok(Value::String(units)) = json::parse(path) else { return Err(FsError::Invalid) };
    if units.is_empty() {
        return Ok(Vec::new());
    }
    relpath::check_units(&units).map_err(|_| FsError::Invalid)?;
    Ok(units.split(|&u| u == SLASH).map(<[u16]>::to_vec).collect())
}

fn code_points(s: &[u16]) -> Vec<u32> {
    char::decode_utf16(s.iter().copied())
        .map(|c| c.map_or_else(|e| u32::from(e.unpaired_surrogate()), u32::from))
        .collect()
}

/// The target of the symlink at `link` as `readlink` reports it: the manifest's root-relative
/// `target` spelled from the link's folder.
fn relative_target(link: &[u16], target: &[u16]) -> Vec<u16> {
    let folder: Vec<&[u16]> = link.split(|&u| u == SLASH).collect();
    let folder = &folder[..folder.len() - 1];
    let to: Vec<&[u16]> = target.split(|&u| u == SLASH).collect();
    let common = folder.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&[u16]> = vec![&[0x2e, 0x2e]; folder.len() - common];
    parts.extend_from_slice(&to[common..]);
    if parts.is_empty() {
        return vec![0x2e];
    }
    parts.join(&SLASH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(path: &str) -> String {
        let mut s = String::new();
        json::write_str(&mut s, path);
        s
    }

    fn manifest(paths: &[(&str, u64)]) -> String {
        let entries: Vec<String> = paths
            .iter()
            .map(|(p, size)| {
                // `p` as JSON writes it between quotes, escapes and all
                format!(r#"{{"hash":"{:032x}","mtime":1234567,"path":"{p}","size":{size}}}"#, size)
            })
            .collect();
        let total: u64 = paths.iter().map(|(_, s)| s).sum();
        format!(
            r#"{{"hashAlg":"xxh128","manifestVersion":"2023-03-03","paths":[{}],"totalSize":{total}}}"#,
            entries.join(",")
        )
    }

    fn tree() -> Tree {
        Tree::open(&manifest(&[("a/b.txt", 1), ("a/c/d.txt", 2), ("e.txt", 3)]), 99).unwrap()
    }

    #[test]
    fn the_manifest_is_the_tree() {
        let t = tree();
        let n = t.lookup(&q("a/b.txt")).unwrap();
        assert_eq!((n.size, n.mtime_us, n.executable), (1, 1234567, false));
        assert_eq!(n.content, Content::Object(format!("{:032x}", 1)));
        assert_eq!(t.lookup(&q("a")).unwrap().content, Content::Directory);
        assert_eq!(t.lookup(&q("a")).unwrap().mtime_us, 99);
        assert_eq!(t.lookup(&q("")).unwrap().id, ROOT);
        assert_eq!(t.lookup(&q("a/x")), Err(FsError::NotFound));
        assert_eq!(t.lookup(&q("e.txt/x")), Err(FsError::NotDirectory));
        assert_eq!(t.lookup(&q("a/../e.txt")), Err(FsError::Invalid));
        assert_eq!(t.lookup("not json"), Err(FsError::Invalid));
        let listing = t.entries(&q("a")).unwrap();
        assert!(listing.starts_with(r#"[["b.txt","#), "{listing}");
        assert!(listing.contains(r#"["c","#) && listing.contains(r#","d",0,99,false,null]"#));
        assert_eq!(t.entries(&q("e.txt")), Err(FsError::NotDirectory));
    }

    #[test]
    fn entries_are_in_code_point_order_and_keep_lone_surrogates() {
        let t = Tree::open(&manifest(&[(r"\uff5e", 1), (r"\ud83d\ude00", 1), (r"b\udcff", 1)]), 0)
            .unwrap();
        let listing = t.entries(&q("")).unwrap();
        let at = |s: &str| listing.find(s).unwrap();
        assert!(
            at("b\\udcff") < at("\\uff5e") && at("\\uff5e") < at("\\ud83d\\ude00"),
            "{listing}"
        );
        assert!(t.lookup(r#""b\udcff""#).is_ok());
    }

    #[test]
    fn creating_copying_up_and_removing() {
        let mut t = tree();
        assert_eq!(t.create(&q("a/b.txt"), false, 5), Err(FsError::Exists));
        assert_eq!(t.create(&q("x/y"), false, 5), Err(FsError::NotFound));
        assert_eq!(t.create(&q("e.txt/y"), false, 5), Err(FsError::NotDirectory));
        let made = t.create(&q("a/new"), false, 5).unwrap();
        assert_eq!(made.content, Content::Layer(1));
        let up = t.copy_up(&q("e.txt")).unwrap();
        assert_eq!(up.content, Content::Layer(2));
        assert_eq!(t.copy_up(&q("e.txt")).unwrap(), up);
        assert_eq!(t.copy_up(&q("a")), Err(FsError::IsDirectory));
        assert_eq!(t.layer(), r#"[["a/new",1],["e.txt",2]]"#);
        assert_eq!(t.remove(&q("a"), true), Err(FsError::NotEmpty));
        assert_eq!(t.remove(&q("a"), false), Err(FsError::IsDirectory));
        assert_eq!(t.remove(&q("e.txt"), true), Err(FsError::NotDirectory));
        assert_eq!(t.remove(&q("e.txt"), false), Ok(Some(2)));
        assert_eq!(t.remove(&q("a/b.txt"), false), Ok(None));
        assert_eq!(t.remove(&q(""), true), Err(FsError::Invalid));
        assert_eq!(t.lookup(&q("e.txt")), Err(FsError::NotFound));
        let dir = t.create(&q("a/c/sub"), true, 7).unwrap();
        assert_eq!((dir.content, dir.mtime_us), (Content::Directory, 7));
        assert_eq!(t.create(&q(""), true, 7), Err(FsError::Exists));
    }

    #[test]
    fn renames_follow_posix() {
        let mut t = tree();
        let layer = t.create(&q("new"), false, 0).unwrap();
        assert_eq!(t.rename(&q("new"), &q("e.txt")), Ok(None)); // replaced a manifest file
        assert_eq!(t.lookup(&q("e.txt")).unwrap().id, layer.id);
        t.create(&q("other"), false, 0).unwrap();
        assert_eq!(t.rename(&q("other"), &q("e.txt")), Ok(Some(1)));
        assert_eq!(t.rename(&q("a"), &q("a/c/inside")), Err(FsError::Invalid));
        assert_eq!(t.rename(&q("a"), &q("e.txt")), Err(FsError::NotDirectory));
        assert_eq!(t.rename(&q("e.txt"), &q("a")), Err(FsError::IsDirectory));
        t.create(&q("empty"), true, 0).unwrap();
        assert_eq!(t.rename(&q("e.txt"), &q("moved")), Ok(None));
        assert_eq!(t.rename(&q("a/c"), &q("empty")), Ok(None)); // a folder over an empty one
        assert!(t.lookup(&q("empty/d.txt")).is_ok());
        assert_eq!(t.rename(&q("a"), &q("empty")), Err(FsError::NotEmpty));
        assert_eq!(t.rename(&q("missing"), &q("x")), Err(FsError::NotFound));
        assert_eq!(t.rename(&q("a/b.txt"), &q("nowhere/x")), Err(FsError::NotFound));
        assert_eq!(t.rename(&q("a/b.txt"), &q("a/b.txt")), Ok(None));
        assert_eq!(t.layer(), r#"[["moved",2]]"#);
    }

    #[test]
    fn a_newer_format_snapshot_has_executables_and_symlinks() {
        let m = v2025::Manifest::new(
            vec![],
            vec![
                v2025::File {
                    path: "bin/run".encode_utf16().collect(),
                    content: v2025::Content::Hash(format!("{:032x}", 7)),
                    size: Some(7),
                    mtime: Some(5),
                    runnable: true,
                },
                v2025::File {
                    path: "x/y/link".encode_utf16().collect(),
                    content: v2025::Content::Symlink("bin/run".encode_utf16().collect()),
                    size: None,
                    mtime: None,
                    runnable: false,
                },
            ],
            None,
        )
        .unwrap();
        let t = Tree::open(&m.encode(), 3).unwrap();
        assert!(t.lookup(&q("bin/run")).unwrap().executable);
        let link = t.lookup(&q("x/y/link")).unwrap();
        assert_eq!(link.content, Content::Symlink("../../bin/run".encode_utf16().collect()));
    }

    #[test]
    fn relative_targets() {
        let u = |s: &str| s.encode_utf16().collect::<Vec<_>>();
        let rel = |l: &str, t: &str| String::from_utf16(&relative_target(&u(l), &u(t))).unwrap();
        assert_eq!(rel("link", "a/b"), "a/b");
        assert_eq!(rel("a/link", "a/b"), "b");
        assert_eq!(rel("a/c/link", "a/b"), "../b");
        assert_eq!(rel("a/link", "a"), ".");
        assert_eq!(rel("a/b/link", "a"), "..");
    }
}
