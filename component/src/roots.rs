//! Reading files below the roots the host granted, through WASI preopens.
//!
//! A root is found by its guest name among the preopened directories; files are opened relative
//! to it, so the host's sandbox (which refuses `..` and symlinks that lead out) applies to every
//! open. Paths are checked by `relpath` first for a precise error.

use wasip2::filesystem::preopens;
use wasip2::filesystem::types::{
    Descriptor, DescriptorFlags, DescriptorType, ErrorCode, OpenFlags, PathFlags,
};

use crate::error::{Error, ErrorKind, Result};
use crate::hash::{Hasher, CHUNK};
use crate::relpath;

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
pub fn hash_files(root: &str, paths_json: &str) -> Result<String> {
    let paths: Vec<String> = serde_json::from_str(paths_json)
        .map_err(|e| Error::invalid(format!("paths must be a JSON array of strings: {e}")))?;
    let dir = open_root(root)?;
    let digests = paths.iter().map(|p| hash_in(&dir, p)).collect::<Result<Vec<_>>>()?;
    Ok(serde_json::to_string(&digests).expect("a list of strings always serializes"))
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
