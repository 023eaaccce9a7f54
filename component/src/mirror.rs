//! Mirroring one tree to another (a directory and an S3 prefix, either way): what to copy,
//! what to leave, what to delete. Like `rclone sync` and `s5cmd sync`, a file is copied when
//! the destination lacks it, holds another size, or holds an older copy (by modification time,
//! to the second, as S3 keeps it);
//! with `delete`, destination files the source lacks are removed. Paths must follow the
//! relative-path rules; any that do not are reported and left alone.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::error::{Error, Result};
use crate::glob::Glob;
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

/// Plans a mirror; `request` is `{"source": [[path, size, mtime_us]], "dest": [...],
/// "delete": bool, "by_hash": bool, "include": [glob], "exclude": [glob], "dry_run": bool,
/// "source_name": text, "dest_name": text}` (the names as people know the two sides, for
/// [`refuse_emptying`]'s message). Returns
/// `{"copy": [path], "unchanged": [path], "compare": [path], "delete": [path], "unsupported":
/// [path], "excluded": n}`. With `by_hash`, files of the same size on both sides are listed in
/// `compare`, for the caller to copy those whose xxh3-128 differs.
pub fn plan(request: &str) -> Result<String> {
    let Value::Object(fields) = json::parse(request)? else {
        return Err(Error::invalid("a mirror request must be a JSON object"));
    };
    let (mut source, mut dest, mut delete, mut by_hash) = (None, None, false, false);
    let (mut dry_run, mut names) =
        (false, [String::from("the source"), String::from("the destination")]);
    let (mut include, mut exclude) = (Vec::new(), Vec::new());
    for (key, value) in fields {
        match (key.as_str(), value) {
            ("source", v) => source = Some(listing(v, "source")?),
            ("dest", v) => dest = Some(listing(v, "dest")?),
            ("delete", Value::Bool(d)) => delete = d,
            ("by_hash", Value::Bool(h)) => by_hash = h,
            ("dry_run", Value::Bool(d)) => dry_run = d,
            (side @ ("source_name" | "dest_name"), Value::String(u)) => {
                names[usize::from(side == "dest_name")] = String::from_utf16_lossy(&u)
            }
            (name @ ("include" | "exclude"), Value::Array(globs)) => {
                for g in globs {
                    let Value::String(u) = g else {
                        return Err(Error::invalid(format!("{name} patterns must be strings")));
                    };
                    let glob = Glob::new(&String::from_utf16_lossy(&u));
                    if name == "include" {
                        include.push(glob)
                    } else {
                        exclude.push(glob)
                    }
                }
            }
            (other, _) => {
                return Err(Error::invalid(format!("unknown or mistyped field {other:?}")))
            }
        }
    }
    let (source, dest) = (source.unwrap_or_default(), dest.unwrap_or_default());
    let keeps = |p: &[u16]| {
        (include.is_empty() || include.iter().any(|g| g.matches(p)))
            && !exclude.iter().any(|g| g.matches(p))
    };
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
        refuse_emptying(kept, gone.len(), &names[0], &names[1])?;
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
    use super::plan;

    #[test]
    fn deleting_everything_and_keeping_nothing_is_refused_unless_a_dry_run() {
        let req = r#"{"source":[],"dest":[["a",1,1],["b",1,1]],"delete":true,
                      "source_name":"/typo","dest_name":"s3://b/p/"}"#;
        let err = plan(req).unwrap_err();
        assert_eq!(
            err.message,
            "/typo holds no files to sync: refusing to delete the 2 of s3://b/p/ (check the \
             source; --dry-run lists them; delete them explicitly if you mean to)"
        );
        let dry = plan(&req.replace("\"delete\":true", "\"delete\":true,\"dry_run\":true"));
        assert!(dry.unwrap().contains(r#""delete":["a","b"]"#));
        let kept = req.replace(r#""source":[]"#, r#""source":[["a",1,1]]"#);
        assert!(plan(&kept).unwrap().contains(r#""delete":["b"]"#));
        let excluded = req.replace(r#""source":[]"#, r#""source":[["c",1,1]],"exclude":["c"]"#);
        assert!(plan(&excluded).is_err(), "an excluded file is not one kept");
    }

    #[test]
    fn copies_new_changed_and_newer_files_and_deletes_on_request() {
        let req = r#"{"source":[["same",1,10],["bigger",2,10],["newer",1,2000000],["new",1,1],["../bad",1,1]],
                      "dest":[["same",1,900000],["bigger",1,10],["newer",1,10],["extra",1,1]],
                      "delete":true}"#;
        assert_eq!(
            plan(req).unwrap(),
            r#"{"copy":["bigger","new","newer"],"unchanged":["same"],"compare":[],"delete":["extra"],"unsupported":["../bad"],"excluded":0}"#
        );
        let kept = plan(&req.replace("\"delete\":true", "\"delete\":false,\"exclude\":[\"new*\"]"))
            .unwrap();
        let start = r#"{"copy":["bigger"],"unchanged":["same"],"compare":[],"delete":[],"#;
        assert!(kept.starts_with(start), "{kept}");
        assert!(kept.ends_with(r#""excluded":2}"#), "{kept}");
        let hashed = plan(&req.replace("\"delete\":true", "\"by_hash\":true")).unwrap();
        let start = r#"{"copy":["bigger","new"],"unchanged":[],"compare":["newer","same"],"#;
        assert!(hashed.starts_with(start), "{hashed}");
    }
}
