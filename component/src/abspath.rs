//! Absolute paths of either syntax, parsed into an anchor (`/`, `C:\`, `\\server\share\`) and
//! parts, as Python's `PurePosixPath` and `PureWindowsPath` do; Windows paths compare without
//! regard to case.

use crate::error::{Error, Result};

/// A path syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Posix,
    Windows,
}

/// An absolute path as an anchor (`/`, `C:\`) and its normalised parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbsPath {
    pub anchor: String,
    pub parts: Vec<String>,
}

impl AbsPath {
    pub fn parse(text: &str, style: Style) -> Result<AbsPath> {
        let bad = || Error::invalid(format!("{text:?} is not an absolute path"));
        let (anchor, rest) = match style {
            Style::Posix => {
                let rest = text.strip_prefix('/').ok_or_else(bad)?;
                ("/".to_string(), rest.to_string())
            }
            Style::Windows => {
                let t = text.replace('/', "\\");
                let b = t.as_bytes();
                if b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\' {
                    (format!("{}\\", &t[..2]), t[3..].to_string())
                } else if let Some(unc) = t.strip_prefix("\\\\") {
                    let mut it = unc.splitn(3, '\\');
                    let (server, share) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
                    if server.is_empty() || share.is_empty() {
                        return Err(bad());
                    }
                    (format!("\\\\{server}\\{share}\\"), it.next().unwrap_or("").to_string())
                } else {
                    return Err(bad());
                }
            }
        };
        let sep = if style == Style::Posix { '/' } else { '\\' };
        let parts =
            rest.split(sep).filter(|p| !p.is_empty() && *p != ".").map(String::from).collect();
        Ok(AbsPath { anchor, parts })
    }

    /// The path with `..` segments applied, as `os.path.normpath` would.
    pub fn normalized(mut self) -> AbsPath {
        let mut parts: Vec<String> = Vec::new();
        for p in self.parts.drain(..) {
            if p == ".." {
                parts.pop();
            } else {
                parts.push(p);
            }
        }
        AbsPath { anchor: self.anchor, parts }
    }

    pub fn render(&self, style: Style) -> String {
        let sep = if style == Style::Posix { "/" } else { "\\" };
        format!("{}{}", self.anchor, self.parts.join(sep))
    }

    pub fn key(&self, style: Style) -> (String, Vec<String>) {
        match style {
            Style::Posix => (self.anchor.clone(), self.parts.clone()),
            Style::Windows => {
                (self.anchor.to_lowercase(), self.parts.iter().map(|p| p.to_lowercase()).collect())
            }
        }
    }

    pub fn starts_with(&self, base: &AbsPath, style: Style) -> bool {
        let (a, p) = self.key(style);
        let (b, q) = base.key(style);
        a == b && p.len() >= q.len() && p[..q.len()] == q[..]
    }

    pub fn relative_to(&self, base: &AbsPath, style: Style) -> String {
        let sep = if style == Style::Posix { "/" } else { "\\" };
        self.parts[base.parts.len()..].join(sep)
    }
}

/// The common ancestor of `paths` (which share an anchor), component by component.
pub fn common(paths: &[&AbsPath], style: Style) -> AbsPath {
    let first = paths[0];
    let mut n = first.parts.len();
    for p in &paths[1..] {
        let (_, a) = first.key(style);
        let (_, b) = p.key(style);
        n = n.min(a.iter().zip(&b).take_while(|(x, y)| x == y).count());
    }
    AbsPath { anchor: first.anchor.clone(), parts: first.parts[..n].to_vec() }
}
