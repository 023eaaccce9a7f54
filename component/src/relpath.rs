//! Root-relative paths: the only form of path the engine accepts from its callers.
//!
//! Checking them here, before the filesystem is asked, gives callers a precise error and keeps
//! the sandbox (the host's preopens) as a second line of defence rather than the only one.
//!
//! Only what no file system can hold under a root is refused: an empty, `.` or `..` segment, a
//! leading `/`, a NUL. Every other character is a name's own, a backslash and a colon too (a
//! POSIX file system holds `back\slash.txt` and `c:x`, and the official encoder writes them);
//! whether a destination can hold a name is decided when planning a download (`portable`).

use crate::error::{Error, Result};

/// Checks that `path` is a relative, `/`-separated path that stays below its root.
pub fn check(path: &str) -> Result<()> {
    check_units(&path.encode_utf16().collect::<Vec<_>>())
}

/// [`check`] for a path held as UTF-16 code units, as manifests hold them.
pub fn check_units(path: &[u16]) -> Result<()> {
    const SLASH: u16 = b'/' as u16;
    let refuse =
        |why: &str| Err(Error::invalid(format!("path {why}")).at(&String::from_utf16_lossy(path)));
    if path.is_empty() {
        return refuse("is empty");
    }
    if path[0] == SLASH {
        return refuse("is absolute; paths must be relative to their root");
    }
    if path.contains(&0) {
        return refuse("contains a NUL character");
    }
    for segment in path.split(|&u| u == SLASH) {
        match segment {
            [] => return refuse("has an empty segment"),
            [0x2e] => return refuse("has a '.' segment"),
            [0x2e, 0x2e] => return refuse("has a '..' segment"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_plain_relative_paths() {
        for p in
            ["a", "a/b.txt", ".hidden/x", "a..b", "...", "dir/ü ñ.exr", "ab:c", "a\\b", "c:", "C:x"]
        {
            assert!(check(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn refuses_paths_that_could_leave_the_root() {
        for p in
            ["", "/etc/passwd", "../x", "a/../../x", "a/..", "./a", "a/./b", "a//b", "a/", "a\0b"]
        {
            let err = check(p).unwrap_err();
            assert_eq!(err.kind, crate::error::ErrorKind::InvalidInput, "{p:?}");
            assert_eq!(err.path.as_deref(), Some(p));
        }
    }
}
