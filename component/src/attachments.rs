//! The S3 layout and the job's `attachments` JSON of Deadline Cloud job attachments.
//!
//! Content: `{rootPrefix}/Data/{xxh128}.xxh128`. Input manifests:
//! `{rootPrefix}/Manifests/{farmId}/{queueId}/Inputs/{guid}/{xxh128 of the root path}_input`,
//! the job naming them by the part after `Manifests/`. Manifest objects carry the root in
//! user metadata: `asset-root` (and `asset-root-json` with the root as an ASCII JSON string when
//! it is not ASCII, both then holding that string), and `file-system-location-name`.

use std::fmt::Write;

use crate::error::{Error, Result};
use crate::hash::Hasher;
use crate::json::{self, Value};

/// Where a manifest object goes, and the user metadata it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestObject {
    pub key: String,
    pub content_type: &'static str,
    pub metadata: Vec<(String, String)>,
}

/// Where objects are under a queue's root prefix: a content's key is data_prefix + xxh128 +
/// data_suffix, a manifest's is manifests_prefix + its path in the attachments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub data_prefix: String,
    pub data_suffix: String,
    pub manifests_prefix: String,
}

/// One asset root of a submission.
#[derive(Debug, Clone, Default)]
pub struct SubmittedRoot {
    pub root: String,
    pub location: Option<String>,
    pub outputs: Vec<String>,
    pub manifest_hash: Option<String>,
    pub guid: String,
}

/// A submission to describe: `file_system` is `COPIED` or `VIRTUAL`, `path_format` `posix`
/// or `windows`, as the job's attachments spell them.
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    pub root_prefix: String,
    pub farm: String,
    pub queue: String,
    pub file_system: &'a str,
    pub path_format: &'a str,
    pub roots: Vec<SubmittedRoot>,
}

/// The folder a worker gives a job's root in its session directory when no path mapping
/// applies: `assetroot-` and the first 10 bytes of SHAKE-256 of the root path, in hex.
pub fn session_root(root_path: &str) -> String {
    use sha3::digest::{ExtendableOutput, Update, XofReader};
    let mut shake = sha3::Shake256::default();
    shake.update(root_path.as_bytes());
    let mut out = [0u8; 10];
    shake.finalize_xof().read(&mut out);
    let mut name = String::from("assetroot-");
    for b in out {
        let _ = write!(name, "{b:02x}");
    }
    name
}

/// `%Y-%m-%dT%H:%M:%S.%fZ` (UTC) of a time in microseconds since the epoch, as the official
/// worker names a session action's outputs.
pub fn iso_time(us: i64) -> String {
    let (secs, micros) = (us.div_euclid(1_000_000), us.rem_euclid(1_000_000));
    let (days, day_secs) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, sec) = (day_secs / 3600, day_secs % 3600 / 60, day_secs % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{sec:02}.{micros:06}Z")
}

/// Where a session action's output manifest for one root goes, its content type and its
/// metadata. `task_id` is empty for a step-level action.
pub fn output_manifest(
    root_prefix: &str,
    ids: [&str; 5], // farm, queue, job, step, task
    session_action: &str,
    start_us: i64,
    root: &str,
    location: Option<&str>,
) -> ManifestObject {
    let [farm, queue, job, step, task] = ids;
    let mut key = format!("{}Manifests/{farm}/{queue}/{job}/{step}/", prefix(root_prefix));
    if !task.is_empty() {
        let _ = write!(key, "{task}/");
    }
    let name = xxh128_of(&format!("{}{root}", location.unwrap_or("")));
    let _ = write!(key, "{}_{session_action}/{name}_output", iso_time(start_us));
    manifest_object(&key, Some(root), location)
}

/// The layout under `root_prefix`.
pub fn layout(root_prefix: &str) -> Layout {
    let p = prefix(root_prefix);
    Layout {
        data_prefix: format!("{p}Data/"),
        data_suffix: ".xxh128".to_string(),
        manifests_prefix: format!("{p}Manifests/"),
    }
}

/// The digest a content key names: the key is `data_prefix` + 32 lowercase hex digits +
/// `data_suffix`, or, as older uploads were named (the official downloader falls back to
/// them), the digits alone. Any other key under `data_prefix` (a folder below it, other
/// digits, another suffix) names no content: None.
pub fn content_digest<'a>(layout: &Layout, key: &'a str) -> Option<&'a str> {
    let name = key.strip_prefix(layout.data_prefix.as_str())?;
    let digest = name.strip_suffix(layout.data_suffix.as_str()).unwrap_or(name);
    crate::manifest::check_hash(digest).ok()?;
    Some(digest)
}

/// `root_prefix` without surrounding slashes and with one after it, or nothing.
pub(crate) fn prefix(root_prefix: &str) -> String {
    let p = root_prefix.trim_matches('/');
    if p.is_empty() {
        String::new()
    } else {
        format!("{p}/")
    }
}

pub(crate) fn xxh128_of(text: &str) -> String {
    let mut h = Hasher::new();
    h.update(text.as_bytes());
    h.finish_hex()
}

/// Describes a submission: each root's input manifest object (None for a root without a
/// manifest; content keys are in [`layout`]), and the job's `attachments` JSON.
pub fn describe(s: &Submission) -> Result<(Vec<Option<ManifestObject>>, String)> {
    let bad = |why: &str| Error::invalid(format!("submission: {why}"));
    let (mut manifests, mut entries) = (Vec::new(), Vec::new());
    for g in &s.roots {
        let location = g.location.as_deref().filter(|s| !s.is_empty());
        let mut entry = String::from("{\"rootPath\":");
        json::write_str(&mut entry, &g.root);
        if let Some(name) = location {
            entry.push_str(",\"fileSystemLocationName\":");
            json::write_str(&mut entry, name);
        }
        let _ = write!(entry, ",\"rootPathFormat\":\"{}\"", s.path_format);
        match &g.manifest_hash {
            Some(hash) => {
                crate::manifest::check_hash(hash)?;
                let guid = &g.guid;
                if guid.is_empty() || !guid.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad("a root with a manifest needs a guid of hex digits"));
                }
                let (farm, queue) = (&s.farm, &s.queue);
                let partial = format!("{farm}/{queue}/Inputs/{guid}/{}_input", xxh128_of(&g.root));
                let key = format!("{}Manifests/{partial}", prefix(&s.root_prefix));
                entry.push_str(",\"inputManifestPath\":");
                json::write_str(&mut entry, &partial);
                let _ = write!(entry, ",\"inputManifestHash\":\"{hash}\"");
                manifests.push(Some(manifest_object(&key, Some(&g.root), location)));
            }
            None => manifests.push(None),
        }
        if !g.outputs.is_empty() {
            entry.push_str(",\"outputRelativeDirectories\":[");
            for (i, o) in g.outputs.iter().enumerate() {
                if i > 0 {
                    entry.push(',');
                }
                json::write_str(&mut entry, o);
            }
            entry.push(']');
        }
        entry.push('}');
        entries.push(entry);
    }
    let attachments =
        format!("{{\"manifests\":[{}],\"fileSystem\":\"{}\"}}", entries.join(","), s.file_system);
    Ok((manifests, attachments))
}

/// The content type a manifest object is stored with, as the official code writes it.
pub const MANIFEST_CONTENT_TYPE: &str = "application/x-deadline-manifest-2023-03-03";

/// A manifest object at `key` whose metadata names `root` (when given) and `location`.
pub(crate) fn manifest_object(
    key: &str,
    root: Option<&str>,
    location: Option<&str>,
) -> ManifestObject {
    let mut metadata = Vec::new();
    match root {
        Some(root) if root.is_ascii() => {
            metadata.push(("asset-root".to_string(), root.to_string()));
        }
        Some(root) => {
            let mut ascii = String::new();
            json::write_str(&mut ascii, root); // ASCII JSON, as json.dumps(ensure_ascii=True)
            metadata.push(("asset-root".to_string(), ascii.clone()));
            metadata.push(("asset-root-json".to_string(), ascii));
        }
        None => {}
    }
    if let Some(name) = location {
        metadata.push(("file-system-location-name".to_string(), name.to_string()));
    }
    ManifestObject { key: key.to_string(), content_type: MANIFEST_CONTENT_TYPE, metadata }
}

/// The root a manifest object names in its user metadata: `asset-root-json` decoded when
/// present (it keeps a root that is not ASCII), else `asset-root`; None when neither is there.
pub fn manifest_root(metadata: &[(String, String)]) -> Result<Option<String>> {
    let field = |name: &str| metadata.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    match field("asset-root-json") {
        Some(text) => match json::parse(&text) {
            Ok(Value::String(u)) => String::from_utf16(u.as_slice())
                .map(Some)
                .map_err(|_| Error::invalid("manifest metadata: asset-root-json is not Unicode")),
            _ => Err(Error::invalid("manifest metadata: asset-root-json must hold a JSON string")),
        },
        None => Ok(field("asset-root")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_read_back_from_the_metadata_written() {
        for root in ["/show/a", "/show/caf\u{e9}", "C:\\proj\\\u{1f600}"] {
            let object = manifest_object("k", Some(root), Some("loc"));
            assert_eq!(manifest_root(&object.metadata).unwrap().as_deref(), Some(root));
        }
        assert_eq!(manifest_root(&[]).unwrap(), None);
        let bad = [("asset-root-json".to_string(), "nope".to_string())];
        assert!(manifest_root(&bad).is_err());
    }

    #[test]
    fn session_roots_are_named_as_the_worker_names_them() {
        // hashlib.shake_256(b"/tmp/ja-vectors/unicode").hexdigest(10)
        assert_eq!(session_root("/tmp/ja-vectors/unicode"), "assetroot-2fd6f1a167bd6d7e2d2d");
    }

    #[test]
    fn times_are_spelled_as_the_worker_spells_them() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(iso_time(1_700_000_123_456_789), "2023-11-14T22:15:23.456789Z");
        assert_eq!(iso_time(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
        assert_eq!(iso_time(-1), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn output_manifests_go_under_the_session_action() {
        let out = output_manifest("JA", ["f", "q", "j", "s", "t"], "sa", 0, "/r", None);
        let name = xxh128_of("/r");
        assert_eq!(
            out.key,
            format!("JA/Manifests/f/q/j/s/t/1970-01-01T00:00:00.000000Z_sa/{name}_output")
        );
        let step = output_manifest("JA", ["f", "q", "j", "s", ""], "sa", 0, "/r", Some("L"));
        assert!(step.key.contains("/j/s/1970-01-01T00:00:00.000000Z_sa/"), "{step:?}");
        assert!(step.key.contains(&xxh128_of("L/r")), "{step:?}");
    }

    #[test]
    fn the_layout_names_its_prefixes() {
        let l = layout("/JA/");
        assert_eq!(
            (l.data_prefix.as_str(), l.data_suffix.as_str(), l.manifests_prefix.as_str()),
            ("JA/Data/", ".xxh128", "JA/Manifests/")
        );
    }

    #[test]
    fn content_keys_name_their_digest() {
        let l = layout("JA");
        let d = "0123456789abcdef0123456789abcdef";
        assert_eq!(content_digest(&l, &format!("JA/Data/{d}.xxh128")), Some(d));
        assert_eq!(content_digest(&l, &format!("JA/Data/{d}")), Some(d)); // older uploads
        for foreign in [
            format!("JA/Data/{}.xxh128", d.to_uppercase()),
            format!("JA/Data/{}.xxh128", &d[1..]),
            format!("JA/Data/{d}0.xxh128"),
            format!("JA/Data/{d}.xxh64"),
            format!("JA/Data/{d}.xxh128.xxh128"),
            format!("JA/Data/sub/{d}.xxh128"),
            format!("JA/Manifests/{d}.xxh128"),
            format!("Data/{d}.xxh128"),
            "JA/Data/.xxh128".to_string(),
            "JA/Data/".to_string(),
        ] {
            assert_eq!(content_digest(&l, &foreign), None, "{foreign}");
        }
        assert_eq!(content_digest(&layout(""), &format!("Data/{d}.xxh128")), Some(d));
    }

    #[test]
    fn keys_follow_the_layout() {
        assert_eq!(layout("JobAttachments").data_prefix, "JobAttachments/Data/");
        assert_eq!(layout("").data_prefix, "Data/");
        // DESIGN §4: root /tmp/ja-vectors/unicode names its manifest a86f27a4…_input.
        assert_eq!(xxh128_of("/tmp/ja-vectors/unicode"), "a86f27a456f886f45db9d237135c77f9");
    }

    #[test]
    fn describes_the_attachments_as_the_official_tools_write_them() {
        let submission = Submission {
            root_prefix: "JA".into(),
            farm: "farm-1".into(),
            queue: "queue-2".into(),
            file_system: "COPIED",
            path_format: "posix",
            roots: vec![
                SubmittedRoot {
                    root: "/show/caf\u{e9}".into(),
                    location: Some("Show".into()),
                    outputs: vec!["renders".into()],
                    manifest_hash: Some("0123456789abcdef0123456789abcdef".into()),
                    guid: "00ff".into(),
                },
                SubmittedRoot {
                    root: "/out".into(),
                    outputs: vec!["a".into(), "b".into()],
                    ..Default::default()
                },
            ],
        };
        let (objects, out) = describe(&submission).unwrap();
        let root_hash = xxh128_of("/show/caf\u{e9}");
        let first = objects[0].as_ref().unwrap();
        assert_eq!(first.key, format!("JA/Manifests/farm-1/queue-2/Inputs/00ff/{root_hash}_input"));
        let quoted = "\"/show/caf\\u00e9\"".to_string();
        let metadata = [
            ("asset-root".to_string(), quoted.clone()),
            ("asset-root-json".to_string(), quoted),
            ("file-system-location-name".to_string(), "Show".to_string()),
        ];
        assert_eq!(first.metadata, metadata);
        assert_eq!(objects[1], None);
        assert!(out.contains(&format!(
            r#"{{"rootPath":"/show/caf\u00e9","fileSystemLocationName":"Show","rootPathFormat":"posix","inputManifestPath":"farm-1/queue-2/Inputs/00ff/{root_hash}_input","inputManifestHash":"0123456789abcdef0123456789abcdef","outputRelativeDirectories":["renders"]}}"#
        )), "{out}");
        assert!(out.contains(r#"{"rootPath":"/out","rootPathFormat":"posix","outputRelativeDirectories":["a","b"]}],"fileSystem":"COPIED"}"#), "{out}");
        assert!(out.starts_with(r#"{"manifests":[{"rootPath""#));
    }
}
