//! The manifest store: manifests put under a queue's `Manifests/` folder by hand, and the
//! local files a download of a job's manifests writes.
//!
//! An uploaded manifest goes to `{rootPrefix}/Manifests/{prefix}/{file name}` (no `{prefix}/`
//! when it is empty), the key `deadline manifest upload` writes; it carries the content type
//! and the root metadata (`asset-root`, `asset-root-json`, `file-system-location-name`) of
//! the manifests a submission writes, so that a download of outputs can read its root.
//!
//! A downloaded root's merged manifest is named `{root}-{xxh128 of the root}.manifest`, the
//! official name without its time (so a second download of the same root finds the file the
//! first one wrote): the root's characters outside `A-Z a-z 0-9 . _ -` become `_`, leading
//! `_` and `.` go (no hidden files), and at most 100 of them are kept, so the name is one
//! portable path segment of at most 142 bytes whatever the root holds.

use crate::attachments::{manifest_object, prefix, xxh128_of, ManifestObject};
use crate::error::{Error, Result};

/// The longest part of a downloaded manifest's name taken from its root.
const ROOT_CHARS: usize = 100;

/// Where a manifest file named `name` goes when uploaded below `Manifests/{folders}`, with
/// the metadata naming `root` (none when it is not given) and `location`.
pub fn stored_manifest(
    root_prefix: &str,
    folders: &str,
    name: &str,
    root: Option<&str>,
    location: Option<&str>,
) -> Result<ManifestObject> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(Error::invalid(format!("{name:?} is no file name for a manifest")));
    }
    let folders = folders.trim_matches('/');
    let mut key = format!("{}Manifests/", prefix(root_prefix));
    if !folders.is_empty() {
        if let Some(bad) = folders.split('/').find(|s| s.is_empty() || *s == "." || *s == "..") {
            return Err(Error::invalid(format!(
                "the manifest prefix {folders:?} has a segment {bad:?}: give folders \
                 separated by single '/'"
            )));
        }
        key.push_str(folders);
        key.push('/');
    }
    key.push_str(name);
    Ok(manifest_object(&key, root, location))
}

/// The file name a download gives `root`'s merged manifest (see the module's doc).
pub fn downloaded_name(root: &str) -> String {
    let kept: String = root
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .collect();
    let stem: String = kept.trim_start_matches(['_', '.']).chars().take(ROOT_CHARS).collect();
    let hash = xxh128_of(root);
    if stem.is_empty() {
        format!("{hash}.manifest")
    } else {
        format!("{stem}-{hash}.manifest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attachments::{manifest_root, MANIFEST_CONTENT_TYPE};

    #[test]
    fn uploads_go_below_manifests_as_the_official_upload_puts_them() {
        let o = stored_manifest("/JA/", "farm-1/queue-1/Inputs/ab", "x_input", None, None).unwrap();
        assert_eq!(o.key, "JA/Manifests/farm-1/queue-1/Inputs/ab/x_input");
        assert!(o.metadata.is_empty());
        assert_eq!(o.content_type, MANIFEST_CONTENT_TYPE);
        assert_eq!(stored_manifest("", "", "m", None, None).unwrap().key, "Manifests/m");
        assert_eq!(stored_manifest("JA", "/a/", "m", None, None).unwrap().key, "JA/Manifests/a/m");
    }

    #[test]
    fn an_uploaded_manifest_names_its_root() {
        let o = stored_manifest("JA", "", "m", Some("/show/caf\u{e9}"), Some("Show")).unwrap();
        assert_eq!(manifest_root(&o.metadata).unwrap().as_deref(), Some("/show/caf\u{e9}"));
        assert!(o.metadata.contains(&("file-system-location-name".into(), "Show".into())));
    }

    #[test]
    fn keys_that_climb_or_stutter_are_refused() {
        for (folders, name) in [("a/../b", "m"), ("a//b", "m"), ("./a", "m"), ("a", "x/y")] {
            assert!(stored_manifest("JA", folders, name, None, None).is_err(), "{folders} {name}");
        }
        for name in ["", ".", ".."] {
            assert!(stored_manifest("JA", "", name, None, None).is_err(), "{name:?}");
        }
    }

    #[test]
    fn downloaded_names_are_one_safe_segment_per_root() {
        let hash = xxh128_of("/show/shot 1");
        assert_eq!(downloaded_name("/show/shot 1"), format!("show_shot_1-{hash}.manifest"));
        assert_eq!(downloaded_name("/"), format!("{}.manifest", xxh128_of("/")));
        let climbing = downloaded_name("/../../etc");
        assert!(climbing.starts_with("etc-") && !climbing.contains('/'), "{climbing}");
        let windows = downloaded_name("C:\\proj\\caf\u{e9}");
        assert!(windows.starts_with("C__proj_caf_-"), "{windows}");
        let long = downloaded_name(&"/a".repeat(1000));
        assert!(long.len() <= 142 && long.is_ascii(), "{long}");
        assert_ne!(downloaded_name("/a b"), downloaded_name("/a_b")); // the hash tells them apart
    }
}
