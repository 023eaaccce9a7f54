//! The files a task's outputs are: everything below each of a root's output directories, as
//! snapshot include patterns. The names are taken literally (`[`, `*` and `?` escaped as
//! `[c]`), and a Windows submitter's `\` is read as `/`.

/// The patterns for every file below the root-relative `directories`; `None` means the
/// whole root (a directory that is the root itself, such as `.`).
pub fn patterns(directories: &[String], windows: bool) -> Option<Vec<String>> {
    let mut out = Vec::with_capacity(directories.len());
    for d in directories {
        let d = if windows { d.replace('\\', "/") } else { d.clone() };
        let parts: Vec<&str> = d.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
        if parts.is_empty() {
            return None;
        }
        let literal: Vec<String> = parts
            .iter()
            .map(|p| {
                p.chars()
                    .map(|c| if "*?[".contains(c) { format!("[{c}]") } else { c.to_string() })
                    .collect()
            })
            .collect();
        out.push(format!("{}/**", literal.join("/")));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::patterns;

    fn of(dirs: &[&str], windows: bool) -> Option<Vec<String>> {
        patterns(&dirs.iter().map(|d| d.to_string()).collect::<Vec<_>>(), windows)
    }

    #[test]
    fn names_are_literal_and_backslashes_are_windows_separators() {
        assert_eq!(of(&["renders", "./a//b/"], false).unwrap(), ["renders/**", "a/b/**"]);
        assert_eq!(of(&["shot[1]*?"], false).unwrap(), ["shot[[]1][*][?]/**"]);
        assert_eq!(of(&["out\\frames"], true).unwrap(), ["out/frames/**"]);
        assert_eq!(of(&["out\\frames"], false).unwrap(), ["out\\frames/**"]);
    }

    #[test]
    fn the_root_itself_is_everything() {
        assert_eq!(of(&["renders", "."], false), None);
        assert_eq!(of(&[".\\"], true), None);
        assert_eq!(of(&[], false), Some(vec![]));
    }
}
