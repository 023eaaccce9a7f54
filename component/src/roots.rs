//! Reading files below the roots the host granted, through WASI preopens.
//!
//! A root is found by its guest name among the preopened directories; files are opened relative
//! to it, so the host's sandbox (which refuses `..` and symlinks that lead out) applies to every
//! open. Paths are checked by `relpath` first for a precise error.

use std::fmt::Write;

use wasip2::clocks::wall_clock::Datetime;
use wasip2::filesystem::preopens;
use wasip2::filesystem::types::{
    Descriptor, DescriptorFlags, DescriptorType, ErrorCode, OpenFlags, PathFlags,
};

use crate::error::{Error, ErrorKind, Result};
use crate::hash::{Hasher, CHUNK};
use crate::json::{self, Value};
use crate::relpath;
use crate::snapshot::Target;

/// Reads up to `length` bytes at `offset` of a file WASI cannot name (its name is not UTF-8);
/// the path is given as a JSON string. The host supplies it; an empty result is the end.
pub type RawRead<'a> = &'a dyn Fn(&str, u64, u32) -> Result<Vec<u8>>;

/// Opens the granted root whose guest name is `name`.
pub fn open_root(name: &str) -> Result<Descriptor> {
    preopens::get_directories()
        .into_iter()
        .find(|(_, guest)| guest == name)
        .map(|(dir, _)| dir)
        .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("root {name:?} was not granted")))
}

/// Hashes the regular file `path` below the root `root`.
pub fn hash_file(root: &str, path: &str) -> Result<String> {
    hash_in(&open_root(root)?, path)
}

/// Hashes each file of a JSON array of paths below `root`; returns a JSON array of digests.
/// A path that is not valid Unicode (a lone surrogate stands for a name byte that is not
/// UTF-8) is read through `raw`, since WASI can only name files by Unicode strings.
pub fn hash_files(root: &str, paths_json: &str, raw: RawRead) -> Result<String> {
    let not_a_list = || Error::invalid("paths must be a JSON array of strings");
    let Value::Array(items) = json::parse(paths_json).map_err(|_| not_a_list())? else {
        return Err(not_a_list());
    };
    let dir = open_root(root)?;
    let mut out = String::with_capacity(2 + items.len() * 35);
    out.push('[');
    for (i, item) in items.into_iter().enumerate() {
        let Value::String(units) = item else { return Err(not_a_list()) };
        let digest = hash_path(&dir, &units, raw)?;
        let _ = write!(out, "{}\"{digest}\"", if i > 0 { "," } else { "" });
    }
    out.push(']');
    Ok(out)
}

/// Hashes the file `path` (UTF-16 units) below `dir`, through WASI when its name is Unicode
/// and through `raw` when it is not.
pub fn hash_path(dir: &Descriptor, path: &[u16], raw: RawRead) -> Result<String> {
    match String::from_utf16(path) {
        Ok(p) => hash_in(dir, &p),
        Err(_) => hash_raw(path, raw),
    }
}

fn hash_raw(path: &[u16], raw: RawRead) -> Result<String> {
    relpath::check_units(path)?;
    let mut name = String::new();
    json::write_string(&mut name, path);
    let mut hasher = Hasher::new();
    let mut offset = 0u64;
    loop {
        let bytes = raw(&name, offset, CHUNK as u32)?;
        if bytes.is_empty() {
            return Ok(hasher.finish_hex());
        }
        hasher.update(&bytes);
        offset += bytes.len() as u64;
    }
}

/// Follows the symlink `path` inside the sandbox and says what it leads to.
pub fn resolve(dir: &Descriptor, path: &[u16]) -> Target {
    let Ok(path) = String::from_utf16(path) else { return Target::Other };
    match dir.stat_at(PathFlags::SYMLINK_FOLLOW, &path) {
        Ok(st) => match st.type_ {
            DescriptorType::RegularFile => Target::File {
                size: st.size,
                mtime_ns: nanos(st.data_modification_timestamp),
                ctime_ns: nanos(st.status_change_timestamp),
            },
            DescriptorType::Directory => Target::Dir,
            _ => Target::Other,
        },
        // The sandbox refuses links that lead out of the root, absolute ones included.
        Err(ErrorCode::NotPermitted | ErrorCode::Access) => Target::Outside,
        Err(_) => Target::Missing,
    }
}

fn nanos(t: Option<Datetime>) -> i64 {
    t.map_or(0, |d| d.seconds as i64 * 1_000_000_000 + i64::from(d.nanoseconds))
}

fn hash_in(dir: &Descriptor, path: &str) -> Result<String> {
    relpath::check(path)?;
    let file = dir
        .open_at(PathFlags::SYMLINK_FOLLOW, path, OpenFlags::empty(), DescriptorFlags::READ)
        .map_err(|e| fs_error(e, "cannot open").at(path))?;
    let stat = file.stat().map_err(|e| fs_error(e, "cannot stat").at(path))?;
    if stat.type_ != DescriptorType::RegularFile {
        let what = match stat.type_ {
            DescriptorType::Directory => "is a directory, not a regular file",
            _ => "is not a regular file",
        };
        return Err(Error::new(ErrorKind::WrongType, what).at(path));
    }
    let mut hasher = Hasher::new();
    let mut offset = 0u64;
    loop {
        // Asking one byte past the expected end lets a whole small file come back, with its
        // end-of-file flag, in a single read. (Hosts may return fewer bytes than asked.)
        let want = CHUNK.min(stat.size.saturating_sub(offset) + 1);
        let (bytes, eof) =
            file.read(want, offset).map_err(|e| fs_error(e, "cannot read").at(path))?;
        hasher.update(&bytes);
        offset += bytes.len() as u64;
        if eof || bytes.is_empty() {
            return Ok(hasher.finish_hex());
        }
    }
}

/// Maps a WASI filesystem error to the engine's categories, in words for people.
fn fs_error(code: ErrorCode, doing: &str) -> Error {
    let (kind, why) = match code {
        ErrorCode::NoEntry => (ErrorKind::NotFound, "no such file or directory"),
        // The sandbox answers "not permitted" for a path or symlink that leads out of the root.
        ErrorCode::NotPermitted => {
            (ErrorKind::PermissionDenied, "not permitted (outside the granted root?)")
        }
        ErrorCode::Access => (ErrorKind::PermissionDenied, "permission denied"),
        ErrorCode::Loop => (ErrorKind::PermissionDenied, "too many levels of symbolic links"),
        ErrorCode::IsDirectory => (ErrorKind::WrongType, "is a directory"),
        ErrorCode::NotDirectory => (ErrorKind::WrongType, "a parent is not a directory"),
        other => return Error::new(ErrorKind::Io, format!("{doing}: {}", other.name())),
    };
    Error::new(kind, format!("{doing}: {why}"))
}
