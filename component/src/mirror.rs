//! Mirroring one tree to another (a directory and an S3 prefix, either way): what to copy,
//! what to leave, what to delete. Like `rclone sync` and `s5cmd sync`, a file is copied when
//! the destination lacks it, holds another size, or holds an older copy (by modification time,
//! to the second, as S3 keeps it);
//! with `delete`, destination files the source lacks are removed. Paths must follow the
//! relative-path rules; any that do not are reported and left alone.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::error::{Error, Result};
use crate::glob::Filter;
use crate::json::{self, Value};
use crate::relpath;

struct Item {
    size: u64,
    mtime_us: i64,
}

fn listing(v: Value, what: &str) -> Result<BTreeMap<Vec<u16>, Item>> {
    let bad = || Error::invalid(format!("{what} must be a list of [path, size, mtime_us]"));
    let Value::Array(rows) = v else { return Err(bad()) };
    let mut out = BTreeMap::new();
    for row in rows {
        let Value::Array(cols) = row else { return Err(bad()) };
        let [Value::String(path), Value::Number(size), Value::Number(mtime)] =
            <[Value; 3]>::try_from(cols).map_err(|_| bad())?
        else {
            return Err(bad());
        };
        let item = Item {
            size: size.parse().map_err(|_| bad())?,
            mtime_us: mtime.parse().map_err(|_| bad())?,
        };
        out.insert(path, item);
    }
    Ok(out)
}

/// What to mirror and how: the listings are JSON, `[[path, size, mtime_us]]`.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    pub source: &'a str,
    pub dest: &'a str,
    pub delete: bool,
    pub by_hash: bool,
    pub include: &'a [String],
    pub exclude: &'a [String],
    /// A dry run lists what a refused plan would delete (see [`refuse_emptying`]).
    pub dry_run: bool,
    /// The two sides as people know them, for [`refuse_emptying`]'s message.
    pub source_name: &'a str,
    pub dest_name: &'a str,
}

/// Plans a mirror. Returns `{"copy": [path], "unchanged": [path], "compare": [path],
/// "delete": [path], "unsupported": [path], "excluded": n}`. With `by_hash`, files of the
/// same size on both sides are listed in `compare`, for the caller to copy those whose
/// xxh3-128 differs. A plan that deletes files and keeps none is refused unless a dry run.
pub fn plan(request: &Request) -> Result<String> {
    let source = listing(json::parse(request.source)?, "source")?;
    let dest = listing(json::parse(request.dest)?, "dest")?;
    let (delete, by_hash, dry_run) = (request.delete, request.by_hash, request.dry_run);
    let names = [request.source_name, request.dest_name];
    let filter = Filter::new(request.include, request.exclude)?;
    let keeps = |p: &[u16]| filter.keeps(p);
    let (mut copy, mut unchanged, mut gone, mut unsupported) = (vec![], vec![], vec![], vec![]);
    let mut compare = vec![];
    let mut excluded = 0usize;
    for (path, item) in &source {
        if !keeps(path) {
            excluded += 1;
        } else if relpath::check_units(path).is_err() || String::from_utf16(path).is_err() {
            // Keys are UTF-8: a name that is not (a lone surrogate) cannot become one.
            unsupported.push(path);
        } else {
            match dest.get(path) {
                Some(d) if by_hash && d.size == item.size => compare.push(path),
                // Whole seconds: S3 keeps modification times to the second.
                Some(d)
                    if d.size == item.size
                        && d.mtime_us.div_euclid(1_000_000)
                            >= item.mtime_us.div_euclid(1_000_000) =>
                {
                    unchanged.push(path)
                }
                _ => copy.push(path),
            }
        }
    }
    if delete {
        for path in dest.keys() {
            if !source.contains_key(path) && keeps(path) && relpath::check_units(path).is_ok() {
                gone.push(path);
            }
        }
    }
    if !dry_run {
        let kept = copy.len() + unchanged.len() + compare.len();
        refuse_emptying(kept, gone.len(), names[0], names[1])?;
    }
    let mut out = String::from("{");
    for (i, (name, paths)) in [
        ("copy", &copy),
        ("unchanged", &unchanged),
        ("compare", &compare),
        ("delete", &gone),
        ("unsupported", &unsupported),
    ]
    .into_iter()
    .enumerate()
    {
        let _ = write!(out, "{}\"{name}\":[", if i > 0 { "," } else { "" });
        for (j, p) in paths.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            json::write_string(&mut out, p);
        }
        out.push(']');
    }
    let _ = write!(out, ",\"excluded\":{excluded}}}");
    Ok(out)
}

/// A mirror that would delete files and keep none is refused: a mistyped source lists as
/// nothing, and deleting everything would be the surprise. A dry run lists them instead.
pub fn refuse_emptying(kept: usize, deleted: usize, source: &str, dest: &str) -> Result<()> {
    if deleted == 0 || kept > 0 {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "{source} holds no files to sync: refusing to delete the {deleted} of {dest} (check \
         the source; --dry-run lists them; delete them explicitly if you mean to)"
    )))
}

#[cfg(test)]
mod tests {
    use super::{plan, Request};

    #[test]
    fn deleting_everything_and_keeping_nothing_is_refused_unless_a_dry_run() {
        let dest = r#"[["a",1,1],["b",1,1]]"#;
        let (source_name, dest_name) = ("/typo", "s3://b/p/");
        let req = Request {
            source: "[]",
            dest,
            delete: true,
            source_name,
            dest_name,
            ..Default::default()
        };
        let err = plan(&req).unwrap_err();
        assert_eq!(
            err.message,
            "/typo holds no files to sync: refusing to delete the 2 of s3://b/p/ (check the \
             source; --dry-run lists them; delete them explicitly if you mean to)"
        );
        let dry = plan(&Request { dry_run: true, ..req.clone() });
        assert!(dry.unwrap().contains(r#""delete":["a","b"]"#));
        let kept = plan(&Request { source: r#"[["a",1,1]]"#, ..req.clone() });
        assert!(kept.unwrap().contains(r#""delete":["b"]"#));
        let exclude = ["c".to_string()];
        let excluded = Request { source: r#"[["c",1,1]]"#, exclude: &exclude, ..req.clone() };
        assert!(plan(&excluded).is_err(), "an excluded file is not one kept");
    }

    #[test]
    fn copies_new_changed_and_newer_files_and_deletes_on_request() {
        let source =
            r#"[["same",1,10],["bigger",2,10],["newer",1,2000000],["new",1,1],["../bad",1,1]]"#;
        let dest = r#"[["same",1,900000],["bigger",1,10],["newer",1,10],["extra",1,1]]"#;
        let req = Request { source, dest, delete: true, ..Default::default() };
        assert_eq!(
            plan(&req).unwrap(),
            r#"{"copy":["bigger","new","newer"],"unchanged":["same"],"compare":[],"delete":["extra"],"unsupported":["../bad"],"excluded":0}"#
        );
        let exclude = ["new*".to_string()];
        let kept = plan(&Request { delete: false, exclude: &exclude, ..req.clone() }).unwrap();
        let start = r#"{"copy":["bigger"],"unchanged":["same"],"compare":[],"delete":[],"#;
        assert!(kept.starts_with(start), "{kept}");
        assert!(kept.ends_with(r#""excluded":2}"#), "{kept}");
        let hashed = plan(&Request { delete: false, by_hash: true, ..req }).unwrap();
        let start = r#"{"copy":["bigger","new"],"unchanged":[],"compare":["newer","same"],"#;
        assert!(hashed.starts_with(start), "{hashed}");
    }

    #[test]
    fn a_malformed_listing_is_refused() {
        let req = Request { source: r#"[["a",1]]"#, dest: "[]", ..Default::default() };
        assert!(plan(&req).is_err());
    }
}
