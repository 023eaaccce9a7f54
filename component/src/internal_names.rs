//! The names a download gives its own files in a destination, and how to tell them from a
//! user's. Each is a fixed prefix and 16 lowercase hex digits of 8 random bytes the host
//! draws: `.jobattach-staging-…` for a download's private staging folder in the root,
//! `.jobattach-…` for a file copied onto another file system before it is renamed into place,
//! `.jobattach-mounts-…` for a session's folder of VIRTUAL mounts (cache and layers).
//! A manifest may hold such a name too, so a name's shape alone never makes it ours: the host
//! checks the folder's mode and owner as well.

use crate::error::{Error, Result};

const STAGING: &str = ".jobattach-staging-";
const TEMPORARY: &str = ".jobattach-";
const MOUNTS: &str = ".jobattach-mounts-";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Staging,
    Temporary,
    Mounts,
}

/// The name of `kind` made of `random` (8 bytes).
pub fn name(kind: Kind, random: &[u8]) -> Result<String> {
    if random.len() != 8 {
        return Err(Error::invalid(format!(
            "an internal name takes 8 random bytes, not {}",
            random.len()
        )));
    }
    let prefix = match kind {
        Kind::Staging => STAGING,
        Kind::Temporary => TEMPORARY,
        Kind::Mounts => MOUNTS,
    };
    Ok(random.iter().fold(prefix.to_string(), |mut s, b| {
        s.push_str(&format!("{b:02x}"));
        s
    }))
}

/// Which kind of internal name `name` has the shape of, if any.
pub fn kind_of(name: &str) -> Option<Kind> {
    let random = |rest: &str| {
        rest.len() == 16 && rest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if name.strip_prefix(STAGING).is_some_and(random) {
        Some(Kind::Staging)
    } else if name.strip_prefix(MOUNTS).is_some_and(random) {
        Some(Kind::Mounts)
    } else if name.strip_prefix(TEMPORARY).is_some_and(random) {
        Some(Kind::Temporary)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_a_prefix_and_the_random_bytes_in_hex() {
        let random = [0x00, 0x11, 0x22, 0x33, 0xaa, 0xbb, 0xcc, 0xdd];
        assert_eq!(name(Kind::Staging, &random).unwrap(), ".jobattach-staging-00112233aabbccdd");
        assert_eq!(name(Kind::Temporary, &random).unwrap(), ".jobattach-00112233aabbccdd");
        assert!(name(Kind::Staging, &random[..7]).is_err());
    }

    #[test]
    fn only_the_exact_shape_is_internal() {
        assert_eq!(kind_of(".jobattach-staging-0123456789abcdef"), Some(Kind::Staging));
        assert_eq!(kind_of(".jobattach-0123456789abcdef"), Some(Kind::Temporary));
        assert_eq!(kind_of(".jobattach-mounts-0123456789abcdef"), Some(Kind::Mounts));
        for other in [
            ".jobattach-staging",
            ".jobattach-staging-0123",
            ".jobattach-staging-0123456789ABCDEF",
            ".jobattach-staging-0123456789abcdef0",
            ".jobattach-staging-0123456789abcdef/x",
            "jobattach-0123456789abcdef",
            ".jobattach-0123456789abcdeg",
        ] {
            assert_eq!(kind_of(other), None, "{other}");
        }
    }
}
