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
use crate::hash_items::{self, Item};
use crate::json;
use crate::relpath;
use crate::snapshot::{Links, Target};

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
    let units: Vec<u16> = path.encode_utf16().collect();
    hash_path(&open_root(root)?, &units, &|_, _, _| Ok(Vec::new()))
}

/// Hashes many files below `root`, given as `hash_items` describes; a path that is not valid
/// Unicode (a lone surrogate stands for a name byte that is not UTF-8) is read through `raw`,
/// since WASI names files by Unicode strings only. Returns a JSON array, in order, of digests
/// (or lists of chunk digests).
pub fn hash_files(root: &str, files_json: &str, raw: RawRead) -> Result<String> {
    let items = hash_items::parse(files_json)?;
    let dir = open_root(root)?;
    let mut out = String::with_capacity(2 + items.len() * 35);
    out.push('[');
    for (i, Item { path, size, chunk }) in items.into_iter().enumerate() {
        let shown = String::from_utf16_lossy(&path);
        let src = Source::open(&dir, &path, raw)?;
        out.push_str(if i > 0 { "," } else { "" });
        match (size, chunk) {
            (Some(size), chunk) if chunk > 0 => {
                out.push('[');
                let mut offset = 0;
                while offset < size {
                    let n = chunk.min(size - offset);
                    let digest = digest_range(&src, &shown, offset, n)?;
                    let _ = write!(out, "{}\"{digest}\"", if offset > 0 { "," } else { "" });
                    offset += n;
                }
                out.push(']');
            }
            (size, _) => {
                let _ = write!(out, "\"{}\"", digest(&src, &shown, size)?);
            }
        }
    }
    out.push(']');
    Ok(out)
}

/// Hashes the file `path` (UTF-16 units) below `dir`, reading it to its end.
pub fn hash_path(dir: &Descriptor, path: &[u16], raw: RawRead) -> Result<String> {
    digest(&Source::open(dir, path, raw)?, &String::from_utf16_lossy(path), None)
}

/// Where a file's bytes come from: WASI, or the host for names WASI cannot carry.
enum Source<'a> {
    Wasi(Descriptor),
    Raw { name: String, raw: RawRead<'a> },
}

impl<'a> Source<'a> {
    fn open(dir: &Descriptor, path: &[u16], raw: RawRead<'a>) -> Result<Source<'a>> {
        relpath::check_units(path)?;
        let Ok(name) = String::from_utf16(path) else {
            let mut name = String::new();
            json::write_string(&mut name, path);
            return Ok(Source::Raw { name, raw });
        };
        dir.open_at(PathFlags::SYMLINK_FOLLOW, &name, OpenFlags::empty(), DescriptorFlags::READ)
            .map(Source::Wasi)
            .map_err(|e| fs_error(e, "cannot open").at(&name))
    }

    /// Up to `want` bytes at `offset`, and whether the end was reached.
    fn read(&self, want: u64, offset: u64, path: &str) -> Result<(Vec<u8>, bool)> {
        match self {
            Source::Wasi(file) => {
                file.read(want, offset).map_err(|e| fs_error(e, "cannot read").at(path))
            }
            Source::Raw { name, raw } => {
                let bytes = raw(name, offset, want.min(u64::from(u32::MAX)) as u32)?;
                let eof = bytes.is_empty();
                Ok((bytes, eof))
            }
        }
    }

    /// The size to expect, after checking that this is a regular file.
    fn regular_size(&self, path: &str) -> Result<Option<u64>> {
        let Source::Wasi(file) = self else { return Ok(None) };
        let stat = file.stat().map_err(|e| fs_error(e, "cannot stat").at(path))?;
        match stat.type_ {
            DescriptorType::RegularFile => Ok(Some(stat.size)),
            DescriptorType::Directory => {
                Err(Error::new(ErrorKind::WrongType, "is a directory, not a regular file").at(path))
            }
            _ => Err(Error::new(ErrorKind::WrongType, "is not a regular file").at(path)),
        }
    }
}

/// Streams a file through xxh3-128 in `CHUNK`-sized reads. With a known `size`, exactly that
/// many bytes are hashed; otherwise the file is checked to be regular and read to its end.
fn digest(src: &Source, path: &str, size: Option<u64>) -> Result<String> {
    if let Some(size) = size {
        return digest_range(src, path, 0, size);
    }
    let expected = src.regular_size(path)?;
    let mut hasher = Hasher::new();
    let mut offset = 0u64;
    loop {
        // Asking one byte past the expected end lets a whole small file come back, with its
        // end-of-file flag, in a single read. (Hosts may return fewer bytes than asked.)
        let want = expected.map_or(CHUNK, |n| CHUNK.min(n.saturating_sub(offset) + 1));
        let (bytes, eof) = src.read(want, offset, path)?;
        hasher.update(&bytes);
        offset += bytes.len() as u64;
        if eof || bytes.is_empty() {
            return Ok(hasher.finish_hex());
        }
    }
}

/// The digest of exactly `len` bytes at `start`; a file found shorter is an error.
fn digest_range(src: &Source, path: &str, start: u64, len: u64) -> Result<String> {
    let mut hasher = Hasher::new();
    let (mut offset, end) = (start, start + len);
    while offset < end {
        let (bytes, _) = src.read(CHUNK.min(end - offset), offset, path)?;
        if bytes.is_empty() {
            let why = format!("is shorter than listed ({offset} of {end} bytes): it changed");
            return Err(Error::new(ErrorKind::Io, why).at(path));
        }
        hasher.update(&bytes);
        offset += bytes.len() as u64;
    }
    Ok(hasher.finish_hex())
}

/// Symlinks below a granted root, as the sandbox shows them.
pub struct RootLinks<'a>(pub &'a Descriptor);

impl Links for RootLinks<'_> {
    fn resolve(&mut self, path: &[u16]) -> Target {
        resolve(self.0, path)
    }

    fn read_link(&mut self, path: &[u16]) -> Option<Vec<u16>> {
        let path = String::from_utf16(path).ok()?;
        let target = self.0.readlink_at(&path).ok()?;
        Some(target.encode_utf16().collect())
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
