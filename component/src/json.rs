//! A strict JSON reader that keeps strings as UTF-16 code units.
//!
//! Manifests written by Python may hold lone surrogates (`\udcff` for a file-name byte that is
//! not UTF-8), which no Rust `String` can carry; UTF-16 units carry them, and are also the
//! order in which manifests sort their paths. Numbers keep their text so integers are read
//! exactly. Errors name the byte offset.

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// The number as written.
    Number(String),
    String(Vec<u16>),
    Array(Vec<Value>),
    /// Members in document order; duplicates are refused by the parser.
    Object(Vec<(String, Value)>),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

/// Nesting deeper than this is refused rather than risking the stack.
const MAX_DEPTH: usize = 64;

/// Parses one JSON document; anything after it but white space is an error.
pub fn parse(text: &str) -> Result<Value> {
    let mut p = Parser::new(text);
    let v = p.any()?;
    p.finish()?;
    Ok(v)
}

/// A pull parser, for large documents read straight into their own types (manifests) without
/// building a [`Value`] tree first.
pub struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    pub fn new(text: &'a str) -> Self {
        Parser { s: text.as_bytes(), i: 0 }
    }

    /// Checks that nothing but white space follows.
    pub fn finish(mut self) -> Result<()> {
        self.ws();
        if self.i != self.s.len() {
            return Err(self.err("unexpected data after the JSON document"));
        }
        Ok(())
    }

    /// The first byte of the next value, after white space.
    pub fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    /// Reads any value.
    pub fn any(&mut self) -> Result<Value> {
        self.value(0)
    }

    /// Reads a string (the next value must be one).
    pub fn string_units(&mut self) -> Result<Vec<u16>> {
        if self.peek() != Some(b'"') {
            return Err(self.err("expected a string"));
        }
        self.string()
    }

    /// Reads a number as written (the next value must be one).
    pub fn number_text(&mut self) -> Result<&'a str> {
        self.ws();
        let start = self.i;
        self.number_span()?;
        Ok(std::str::from_utf8(&self.s[start..self.i]).expect("ASCII digits"))
    }

    /// Enters an object or array (`open` is `{` or `[`).
    pub fn open(&mut self, open: u8) -> Result<()> {
        if self.peek() != Some(open) {
            return Err(self.err(if open == b'{' {
                "expected an object"
            } else {
                "expected an array"
            }));
        }
        self.i += 1;
        Ok(())
    }

    /// Moves to the next item of an array entered with `open(b'[')`: false at its end.
    pub fn next_item(&mut self, first: &mut bool) -> Result<bool> {
        self.separator(first, b']')
    }

    /// The next member name of an object entered with `open(b'{')`, with its `:` read, or
    /// None at the object's end.
    pub fn next_key(&mut self, first: &mut bool) -> Result<Option<Vec<u16>>> {
        if !self.separator(first, b'}')? {
            return Ok(None);
        }
        let key = self.string_units()?;
        self.ws();
        self.eat(":")?;
        Ok(Some(key))
    }

    fn separator(&mut self, first: &mut bool, close: u8) -> Result<bool> {
        self.ws();
        if self.s.get(self.i) == Some(&close) {
            self.i += 1;
            return Ok(false);
        }
        if !std::mem::take(first) {
            if self.s.get(self.i) != Some(&b',') {
                return Err(self.err(&format!("expected ',' or '{}'", close as char)));
            }
            self.i += 1;
            self.ws();
            if self.s.get(self.i) == Some(&close) {
                return Err(self.err("trailing comma"));
            }
        }
        Ok(true)
    }

    fn err(&self, what: &str) -> Error {
        Error::invalid(format!("malformed JSON at byte {}: {what}", self.i))
    }

    fn ws(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> Result<()> {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(self.err(&format!("expected {lit}")))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.ws();
        match self.s.get(self.i) {
            None => Err(self.err("unexpected end of input")),
            Some(b'n') => self.eat("null").map(|_| Value::Null),
            Some(b't') => self.eat("true").map(|_| Value::Bool(true)),
            Some(b'f') => self.eat("false").map(|_| Value::Bool(false)),
            Some(b'"') => self.string().map(Value::String),
            Some(b'[') => self.array(depth),
            Some(b'{') => self.object(depth),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("expected a value")),
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value> {
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.s.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth + 1)?);
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value> {
        self.i += 1;
        let mut members: Vec<(String, Value)> = Vec::new();
        self.ws();
        if self.s.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.ws();
            if self.s.get(self.i) != Some(&b'"') {
                return Err(self.err("expected a member name"));
            }
            let at = self.i;
            let key = String::from_utf16(&self.string()?).map_err(|_| {
                Error::invalid(format!("malformed JSON at byte {at}: member name is not Unicode"))
            })?;
            if members.iter().any(|(k, _)| *k == key) {
                return Err(Error::invalid(format!(
                    "malformed JSON at byte {at}: duplicate member {key:?}"
                )));
            }
            self.ws();
            self.eat(":")?;
            let v = self.value(depth + 1)?;
            members.push((key, v));
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }

    fn number(&mut self) -> Result<Value> {
        let start = self.i;
        self.number_span()?;
        let text = std::str::from_utf8(&self.s[start..self.i]).expect("ASCII digits");
        Ok(Value::Number(text.to_string()))
    }

    fn number_span(&mut self) -> Result<()> {
        if self.s.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let digits = |p: &mut Self| {
            let from = p.i;
            while matches!(p.s.get(p.i), Some(b'0'..=b'9')) {
                p.i += 1;
            }
            p.i - from
        };
        let int_start = self.i;
        let n = digits(self);
        if n == 0 || (n > 1 && self.s[int_start] == b'0') {
            return Err(self.err("invalid number"));
        }
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return Err(self.err("invalid number"));
            }
        }
        if matches!(self.s.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.s.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(self.err("invalid number"));
            }
        }
        Ok(())
    }

    fn string(&mut self) -> Result<Vec<u16>> {
        self.i += 1; // the opening quote
        let mut out = Vec::new();
        loop {
            // Runs of plain ASCII (most of every manifest) are copied whole.
            let run = self.s[self.i..]
                .iter()
                .position(|&b| !(0x20..0x80).contains(&b) || b == b'"' || b == b'\\')
                .unwrap_or(self.s.len() - self.i);
            out.extend(self.s[self.i..self.i + run].iter().map(|&b| u16::from(b)));
            self.i += run;
            let Some(&b) = self.s.get(self.i) else {
                return Err(self.err("unterminated string"));
            };
            match b {
                b'"' => {
                    self.i += 1;
                    return Ok(out);
                }
                b'\\' => {
                    self.i += 1;
                    let Some(&e) = self.s.get(self.i) else {
                        return Err(self.err("unterminated escape"));
                    };
                    self.i += 1;
                    let unit = match e {
                        b'"' => 0x22,
                        b'\\' => 0x5c,
                        b'/' => 0x2f,
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => 0x0a,
                        b'r' => 0x0d,
                        b't' => 0x09,
                        b'u' => self.hex4()?,
                        _ => return Err(self.err("invalid escape")),
                    };
                    out.push(unit);
                }
                0x00..=0x1f => return Err(self.err("control character in string")),
                _ => {
                    // One multi-byte UTF-8 character (the input is a &str, so it is valid).
                    let end = (self.i + 4).min(self.s.len());
                    let c =
                        utf8_char(&self.s[self.i..end]).ok_or_else(|| self.err("invalid UTF-8"))?;
                    let mut buf = [0u16; 2];
                    out.extend_from_slice(c.encode_utf16(&mut buf));
                    self.i += c.len_utf8();
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u16> {
        let h = self.s.get(self.i..self.i + 4).ok_or_else(|| self.err("short \\u escape"))?;
        let text = std::str::from_utf8(h).map_err(|_| self.err("invalid \\u escape"))?;
        let v = u16::from_str_radix(text, 16).map_err(|_| self.err("invalid \\u escape"))?;
        if !h.iter().all(u8::is_ascii_hexdigit) {
            return Err(self.err("invalid \\u escape"));
        }
        self.i += 4;
        Ok(v)
    }
}

/// The first character of `bytes`, which hold at most one UTF-8 sequence and what follows it.
fn utf8_char(bytes: &[u8]) -> Option<char> {
    (1..=bytes.len()).find_map(|n| std::str::from_utf8(&bytes[..n]).ok()?.chars().next())
}

/// [`write_string`] for a Rust string.
pub fn write_str(out: &mut String, s: &str) {
    write_string(out, &s.encode_utf16().collect::<Vec<_>>());
}

/// The bytes [`write_string`] writes for `units`, quotes included.
pub fn escaped_len(units: &[u16]) -> usize {
    2 + units
        .iter()
        .map(|&u| match u {
            0x22 | 0x5c | 0x08 | 0x0c | 0x0a | 0x0d | 0x09 => 2,
            0x20..=0x7e => 1,
            _ => 6,
        })
        .sum::<usize>()
}

/// Writes `units` as a JSON string the way Python's `json.dumps(ensure_ascii=True)` does:
/// `\"`, `\\`, `\b \f \n \r \t`, and every other unit outside 0x20-0x7E as `\uXXXX` (lowercase
/// hex), so astral characters become surrogate pairs and lone surrogates survive.
pub fn write_string(out: &mut String, units: &[u16]) {
    out.push('"');
    for &u in units {
        match u {
            0x22 => out.push_str("\\\""),
            0x5c => out.push_str("\\\\"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            0x0a => out.push_str("\\n"),
            0x0d => out.push_str("\\r"),
            0x09 => out.push_str("\\t"),
            0x20..=0x7e => out.push(u as u8 as char),
            _ => {
                use std::fmt::Write;
                let _ = write!(out, "\\u{u:04x}");
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(units: &[u16]) -> String {
        let mut out = String::new();
        write_string(&mut out, units);
        out
    }

    #[test]
    fn strings_escape_like_python_ensure_ascii() {
        let text: Vec<u16> = "a\"b\\c/\u{8}\u{c}\n\r\t\u{1}\u{7f}é😀".encode_utf16().collect();
        assert_eq!(s(&text), r#""a\"b\\c/\b\f\n\r\t\u0001\u007f\u00e9\ud83d\ude00""#);
        assert_eq!(s(&[0xdcff]), r#""\udcff""#);
        assert_eq!(escaped_len(&text), s(&text).len());
    }

    #[test]
    fn strings_round_trip_including_lone_surrogates() {
        let cases = [r#""\udcff x""#, r#""\ud83d\ude00""#, "\"caf\u{e9}\"", r#""\u00E9""#];
        for text in cases.into_iter().chain([r#""ab\"c\\dé f/g""#]) {
            let Value::String(units) = parse(text).unwrap() else { panic!() };
            let back = parse(&s(&units)).unwrap();
            assert_eq!(back, Value::String(units));
        }
        let mixed: Vec<u16> = "ab\"c\\dé f/g".encode_utf16().collect();
        assert_eq!(parse(r#""ab\"c\\dé f/g""#).unwrap(), Value::String(mixed));
    }

    #[test]
    fn malformed_documents_are_refused() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "01",
            "1.",
            "-",
            "\"\\x\"",
            "\"\\u12\"",
            "\"a\nb\"",
            "{\"a\":1,\"a\":2}",
            "[1] x",
            "nul",
            "\"\\u+123\"",
            "\"abc",
            "\"abc\\",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(parse(&deep).is_err());
    }
}
