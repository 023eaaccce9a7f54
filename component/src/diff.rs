//! Differences between manifests, or between a manifest and a directory, and merging.
//!
//! Two entries of the same path differ when their size or hash differs; a new mtime alone is
//! not a change of content. Against a directory, a quick comparison takes size and mtime
//! (microseconds) as the official tools do; a full one hashes every file whose size matches.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write;

use crate::error::Result;
use crate::glob::Filter;
use crate::json;
use crate::manifest::{Entry, Manifest};
use crate::snapshot::Plan;

/// One path's change: `old` is None for an addition, `new` None for a deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub old: Option<Entry>,
    pub new: Option<Entry>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Diff {
    pub added: Vec<Entry>,
    pub modified: Vec<Change>,
    pub deleted: Vec<Entry>,
    pub unchanged: usize,
}

/// Compares `new` against `old`, walking both in path order.
pub fn diff(
    old: &[Entry],
    new: &[Entry],
    same: impl Fn(&Entry, &Entry) -> Result<bool>,
) -> Result<Diff> {
    let mut d = Diff::default();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a.path == b.path => {
                if same(a, b)? {
                    d.unchanged += 1;
                } else {
                    d.modified.push(Change { old: Some(a.clone()), new: Some(b.clone()) });
                }
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a.path < b.path => {
                d.deleted.push(a.clone());
                i += 1;
            }
            (Some(a), None) => {
                d.deleted.push(a.clone());
                i += 1;
            }
            (_, Some(b)) => {
                d.added.push(b.clone());
                j += 1;
            }
            (None, None) => unreachable!(),
        }
    }
    Ok(d)
}

/// Compares a directory's snapshot plan against `base`: by size and mtime, or, with
/// `by_hash`, by size and the digest `hash` computes (only for files whose size matches).
/// Digests computed this way are filled in the `new` side of modifications.
pub fn diff_tree(
    base: &Manifest,
    plan: &Plan,
    by_hash: bool,
    hash: impl Fn(&[u16]) -> Result<String>,
) -> Result<Diff> {
    let mut current: Vec<Entry> = plan
        .files
        .iter()
        .map(|f| Entry {
            path: f.path.clone(),
            hash: String::new(),
            size: f.size,
            mtime: f.mtime_us(),
        })
        .collect();
    current.sort_by(|a, b| a.path.cmp(&b.path));
    // Content is read where the plan says (an absolute symlink's file), not at the link.
    let sources: BTreeMap<&[u16], &[u16]> =
        plan.files.iter().filter_map(|f| Some((f.path.as_slice(), f.source.as_deref()?))).collect();
    let computed = RefCell::new(BTreeMap::new());
    let mut d = diff(base.entries(), &current, |old, new| {
        if old.size != new.size {
            return Ok(false);
        }
        if !by_hash {
            return Ok(old.mtime == new.mtime);
        }
        let digest = hash(sources.get(new.path.as_slice()).copied().unwrap_or(&new.path))?;
        let same = digest == old.hash;
        computed.borrow_mut().insert(new.path.clone(), digest);
        Ok(same)
    })?;
    let computed = computed.into_inner();
    for change in &mut d.modified {
        if let Some(new) = change.new.as_mut() {
            if let Some(digest) = computed.get(&new.path) {
                new.hash = digest.clone();
            }
        }
    }
    Ok(d)
}

/// A task's outputs: the entries of `current` (the files under its output directories) that
/// are new, or whose mtime grew since the inputs were written (the official worker's rule).
pub fn outputs(inputs: &Manifest, current: &Manifest) -> Result<Manifest> {
    // By time alone, as the official worker: a local file that differs from the inputs but
    // is not newer (a conflict the download skipped, another root's copy) is not an output.
    let before: BTreeMap<&[u16], i64> =
        inputs.entries().iter().map(|e| (e.path.as_slice(), e.mtime)).collect();
    let changed = current
        .entries()
        .iter()
        .filter(|e| before.get(e.path.as_slice()).is_none_or(|&m| e.mtime > m))
        .cloned()
        .collect();
    Manifest::new(changed)
}

/// The entries of `m` that `filter` keeps (a download's `--include` and `--exclude`).
pub fn select(m: &Manifest, filter: &Filter) -> Result<Manifest> {
    Manifest::new(m.entries().iter().filter(|e| filter.keeps(&e.path)).cloned().collect())
}

/// Same content by size and hash.
pub fn same_content(a: &Entry, b: &Entry) -> Result<bool> {
    Ok(a.size == b.size && a.hash == b.hash)
}

/// Merges manifests of one root: for a path in several, the later manifest wins.
pub fn merge(manifests: Vec<Manifest>) -> Result<Manifest> {
    let mut by_path: BTreeMap<Vec<u16>, Entry> = BTreeMap::new();
    for m in manifests {
        for e in m.entries() {
            by_path.insert(e.path.clone(), e.clone());
        }
    }
    Manifest::new(by_path.into_values().collect())
}

impl Diff {
    /// `{"added": [entry], "modified": [{"old": entry, "new": entry}], "deleted": [entry],
    /// "unchanged": n}`, entries as in manifests (`hash` is null where it was not computed).
    pub fn to_json(&self) -> String {
        let mut out = String::from(r#"{"added":["#);
        list(&mut out, &self.added);
        out.push_str(r#"],"modified":["#);
        for (i, c) in self.modified.iter().enumerate() {
            out.push_str(if i > 0 { r#",{"old":"# } else { r#"{"old":"# });
            entry(&mut out, c.old.as_ref().expect("a modification has an old entry"));
            out.push_str(r#","new":"#);
            entry(&mut out, c.new.as_ref().expect("a modification has a new entry"));
            out.push('}');
        }
        out.push_str(r#"],"deleted":["#);
        list(&mut out, &self.deleted);
        let _ = write!(out, r#"],"unchanged":{}}}"#, self.unchanged);
        out
    }
}

fn list(out: &mut String, entries: &[Entry]) {
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        entry(out, e);
    }
}

fn entry(out: &mut String, e: &Entry) {
    out.push_str(r#"{"hash":"#);
    if e.hash.is_empty() {
        out.push_str("null");
    } else {
        let _ = write!(out, r#""{}""#, e.hash);
    }
    let _ = write!(out, r#","mtime":{},"path":"#, e.mtime);
    json::write_string(out, &e.path);
    let _ = write!(out, r#","size":{}}}"#, e.size);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(path: &str, hash: u8, size: u64, mtime: i64) -> Entry {
        Entry { path: path.encode_utf16().collect(), hash: format!("{hash:032x}"), size, mtime }
    }

    #[test]
    fn finds_added_modified_deleted() {
        let old = vec![e("a", 1, 1, 1), e("b", 2, 2, 2), e("c", 3, 3, 3), e("d", 4, 4, 4)];
        let new = vec![e("b", 2, 2, 99), e("c", 5, 3, 3), e("d", 4, 5, 4), e("e", 6, 6, 6)];
        let d = diff(&old, &new, same_content).unwrap();
        assert_eq!(d.added, vec![e("e", 6, 6, 6)]);
        assert_eq!(d.deleted, vec![e("a", 1, 1, 1)]);
        let modified: Vec<String> = d
            .modified
            .iter()
            .map(|c| String::from_utf16_lossy(&c.new.as_ref().unwrap().path))
            .collect();
        assert_eq!(modified, ["c", "d"]);
        assert_eq!(d.unchanged, 1); // "b": only its mtime moved
        assert!(d
            .to_json()
            .starts_with(r#"{"added":[{"hash":"00000000000000000000000000000006","#));
    }

    #[test]
    fn outputs_are_new_files_and_files_touched_since_the_inputs() {
        let inputs =
            Manifest::new(vec![e("in/a", 1, 1, 10), e("in/b", 2, 2, 10), e("in/d", 4, 4, 10)])
                .unwrap();
        let now = Manifest::new(vec![
            e("in/a", 1, 1, 10),
            e("in/b", 2, 2, 11),
            e("in/d", 5, 4, 9), // another content, older: a local copy the download kept
            e("out/c", 3, 3, 5),
        ])
        .unwrap();
        let out = outputs(&inputs, &now).unwrap();
        let paths: Vec<String> =
            out.entries().iter().map(|e| String::from_utf16_lossy(&e.path)).collect();
        assert_eq!(paths, ["in/b", "out/c"]);
    }

    #[test]
    fn later_manifests_win_a_merge() {
        let a = Manifest::new(vec![e("x", 1, 1, 1), e("y", 2, 2, 2)]).unwrap();
        let b = Manifest::new(vec![e("y", 3, 3, 3), e("z", 4, 4, 4)]).unwrap();
        let m = merge(vec![a, b]).unwrap();
        assert_eq!(m.entries(), &[e("x", 1, 1, 1), e("y", 3, 3, 3), e("z", 4, 4, 4)]);
    }
}
