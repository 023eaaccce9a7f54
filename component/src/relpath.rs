//! Root-relative paths: the only form of path the engine accepts from its callers.
//!
//! Checking them here, before the filesystem is asked, gives callers a precise error and keeps
//! the sandbox (the host's preopens) as a second line of defence rather than the only one.

use crate::error::{Error, Result};

/// Checks that `path` is a relative, `/`-separated path that stays below its root.
pub fn check(path: &str) -> Result<()> {
    let refuse = |why: &str| Err(Error::invalid(format!("path {why}")).at(path));
    if path.is_empty() {
        return refuse("is empty");
    }
    if path.starts_with('/') {
        return refuse("is absolute; paths must be relative to their root");
    }
    if path.contains('\\') {
        return refuse("contains a backslash; separators must be '/'");
    }
    if path.contains('\0') {
        return refuse("contains a NUL character");
    }
    if has_drive_letter(path) {
        return refuse("starts with a drive letter");
    }
    for segment in path.split('/') {
        match segment {
            "" => return refuse("has an empty segment"),
            "." | ".." => return refuse(&format!("has a '{segment}' segment")),
            _ => {}
        }
    }
    Ok(())
}

fn has_drive_letter(path: &str) -> bool {
    let b = path.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_plain_relative_paths() {
        for p in ["a", "a/b.txt", ".hidden/x", "a..b", "...", "dir/ü ñ.exr", "ab:c"] {
            assert!(check(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn refuses_paths_that_could_leave_the_root() {
        for p in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/..",
            "./a",
            "a/./b",
            "a//b",
            "a/",
            "a\\b",
            "C:/x",
            "c:",
            "a:b",
            "a\0b",
        ] {
            let err = check(p).unwrap_err();
            assert_eq!(err.kind, crate::error::ErrorKind::InvalidInput, "{p:?}");
            assert_eq!(err.path.as_deref(), Some(p));
        }
    }
}
