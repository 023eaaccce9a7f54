//! The engine's one error type, mirrored by `jobattach:engine/types.error` in the WIT.

use std::fmt;

/// The category of a failure; see `error-kind` in `wit/engine.wit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidInput,
    NotFound,
    PermissionDenied,
    WrongType,
    Io,
}

/// A failed operation: its category, a sentence for people, and the path concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub path: Option<String>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), path: None }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidInput, message)
    }

    /// Prefixes the message with where in a document the error is (`paths[3].size`).
    pub fn within(mut self, at: &str) -> Self {
        self.message = format!("{at}: {}", self.message);
        self
    }

    /// Attaches the root-relative path the error concerns.
    pub fn at(mut self, path: &str) -> Self {
        self.path = Some(path.to_string());
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{}: {}", p, self.message),
            None => f.write_str(&self.message),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
