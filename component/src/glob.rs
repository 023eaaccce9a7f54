//! Include and exclude patterns for snapshots, matched against root-relative paths.
//!
//! Rules: `*` matches any run of characters but `/`; `?` one character but `/`; `**` as a
//! whole segment matches any number of segments (none included); `[abc]`, `[a-z]` and `[!a]`
//! match one character of a class. A pattern without `/` matches the last segment (the file
//! name) anywhere in the tree, as in `.gitignore`; a pattern with `/` matches the whole path.
//! Matching is case-sensitive and works on UTF-16 code units, as manifest paths are held.

use crate::error::{Error, Result};

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Glob {
    segments: Vec<Vec<u16>>,
    basename_only: bool,
}

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        let units: Vec<u16> = pattern.trim_start_matches('/').encode_utf16().collect();
        let basename_only = !pattern.contains('/');
        let segments = units.split(|&u| u == SLASH).map(<[u16]>::to_vec).collect();
        Glob { segments, basename_only }
    }

    pub fn matches(&self, path: &[u16]) -> bool {
        let parts: Vec<&[u16]> = path.split(|&u| u == SLASH).collect();
        if self.basename_only {
            return parts.last().is_some_and(|name| segment_matches(&self.segments[0], name));
        }
        segments_match(&self.segments, &parts)
    }
}

/// Include and exclude patterns together: a path is kept when it matches an include pattern
/// (or none is given) and no exclude pattern.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    include: Vec<Glob>,
    exclude: Vec<Glob>,
}

impl Filter {
    /// Refused with `invalid-input` when a pattern is empty (it would match nothing, which is
    /// never what was meant).
    pub fn new(include: &[String], exclude: &[String]) -> Result<Filter> {
        let globs = |given: &[String], name: &str| {
            given
                .iter()
                .map(|g| match g.is_empty() {
                    true => Err(Error::invalid(format!("{name} patterns must be non-empty"))),
                    false => Ok(Glob::new(g)),
                })
                .collect::<Result<Vec<_>>>()
        };
        Ok(Filter { include: globs(include, "include")?, exclude: globs(exclude, "exclude")? })
    }

    pub fn keeps(&self, path: &[u16]) -> bool {
        (self.include.is_empty() || self.include.iter().any(|g| g.matches(path)))
            && !self.exclude.iter().any(|g| g.matches(path))
    }

    /// Whether it keeps every path.
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }
}

const SLASH: u16 = b'/' as u16;
const STAR: u16 = b'*' as u16;
const QUESTION: u16 = b'?' as u16;
const OPEN: u16 = b'[' as u16;

fn segments_match(pattern: &[Vec<u16>], parts: &[&[u16]]) -> bool {
    match pattern.split_first() {
        None => parts.is_empty(),
        Some((first, rest)) if first.as_slice() == [STAR, STAR] => {
            (0..=parts.len()).any(|skip| segments_match(rest, &parts[skip..]))
        }
        Some((first, rest)) => match parts.split_first() {
            Some((part, more)) => segment_matches(first, part) && segments_match(rest, more),
            None => false,
        },
    }
}

/// Matches one segment: `*`, `?` and classes, by backtracking over the last `*`.
fn segment_matches(pattern: &[u16], text: &[u16]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == STAR {
            star = Some((p, t));
            p += 1;
            continue;
        }
        if p < pattern.len() {
            if let Some(next) = single(pattern, p, text[t]) {
                p = next;
                t += 1;
                continue;
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&u| u == STAR)
}

/// If the pattern element at `p` matches the unit `c`, the index after that element.
fn single(pattern: &[u16], p: usize, c: u16) -> Option<usize> {
    match pattern[p] {
        QUESTION => Some(p + 1),
        OPEN => class(pattern, p, c),
        u if u == c => Some(p + 1),
        _ => None,
    }
}

fn class(pattern: &[u16], p: usize, c: u16) -> Option<usize> {
    let mut i = p + 1;
    let negate = pattern.get(i) == Some(&(b'!' as u16));
    if negate {
        i += 1;
    }
    let start = i;
    let mut hit = false;
    while i < pattern.len() && (pattern[i] != b']' as u16 || i == start) {
        if pattern.get(i + 1) == Some(&(b'-' as u16))
            && i + 2 < pattern.len()
            && pattern[i + 2] != b']' as u16
        {
            hit |= pattern[i] <= c && c <= pattern[i + 2];
            i += 3;
        } else {
            hit |= pattern[i] == c;
            i += 1;
        }
    }
    if i >= pattern.len() {
        // No closing bracket: the '[' is an ordinary character.
        return (c == OPEN).then_some(p + 1);
    }
    (hit != negate).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::Glob;

    fn m(pattern: &str, path: &str) -> bool {
        Glob::new(pattern).matches(&path.encode_utf16().collect::<Vec<_>>())
    }

    #[test]
    fn basename_patterns_match_anywhere() {
        assert!(m("*.exr", "a/b/c.exr"));
        assert!(m("*.exr", "c.exr"));
        assert!(!m("*.exr", "c.exr/d.txt"));
        assert!(m(".*", "a/.hidden"));
        assert!(m("frame_??.png", "x/frame_01.png"));
        assert!(!m("frame_??.png", "x/frame_1.png"));
    }

    #[test]
    fn path_patterns_match_whole_paths() {
        assert!(m("textures/*.tx", "textures/wood.tx"));
        assert!(!m("textures/*.tx", "a/textures/wood.tx"));
        assert!(m("**/textures/*.tx", "a/b/textures/wood.tx"));
        assert!(m("**/textures/*.tx", "textures/wood.tx"));
        assert!(m("cache/**", "cache/a/b/c"));
        assert!(!m("cache/*", "cache/a/b"));
        assert!(m("a/**/z", "a/z"));
    }

    #[test]
    fn classes_and_stars() {
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[!a-c]x", "bx"));
        assert!(m("[!a-c]x", "dx"));
        assert!(m("*a*b*", "xxaYYbZZ"));
        assert!(!m("*a*b*", "xxbYYa"));
        assert!(m("[x", "[x"));
        assert!(m("é*", "été"));
    }
}
