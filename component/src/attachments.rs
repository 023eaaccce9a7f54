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

/// Where a session action's output manifest for one root goes, and its metadata:
/// `{"key", "content_type", "metadata"}`. `task_id` is empty for a step-level action.
pub fn output_manifest(
    root_prefix: &str,
    ids: [&str; 5], // farm, queue, job, step, task
    session_action: &str,
    start_us: i64,
    root: &str,
    location: Option<&str>,
) -> String {
    let [farm, queue, job, step, task] = ids;
    let mut key = format!("{}Manifests/{farm}/{queue}/{job}/{step}/", prefix(root_prefix));
    if !task.is_empty() {
        let _ = write!(key, "{task}/");
    }
    let name = xxh128_of(&format!("{}{root}", location.unwrap_or("")));
    let _ = write!(key, "{}_{session_action}/{name}_output", iso_time(start_us));
    manifest_object(&key, root, location)
}

/// `{"data_prefix", "data_suffix", "manifests_prefix"}`: a content's key is data_prefix +
/// xxh128 + data_suffix, a manifest's is manifests_prefix + its path in the attachments.
pub fn layout(root_prefix: &str) -> String {
    let p = prefix(root_prefix);
    let mut out = String::from("{\"data_prefix\":");
    json::write_str(&mut out, &format!("{p}Data/"));
    out.push_str(",\"data_suffix\":\".xxh128\",\"manifests_prefix\":");
    json::write_str(&mut out, &format!("{p}Manifests/"));
    out.push('}');
    out
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

fn xxh128_of(text: &str) -> String {
    let mut h = Hasher::new();
    h.update(text.as_bytes());
    h.finish_hex()
}

/// Describes a submission: `request` is `{"root_prefix", "farm_id", "queue_id", "file_system":
/// "COPIED"|"VIRTUAL", "path_format": "posix"|"windows", "groups": [{"root", "location":
/// name|null, "outputs": [rel], "manifest_hash": hash|null, "guid": hex}]}`. Returns
/// `{"manifests": [{"key", "content_type", "metadata"}|null per group], "attachments": {...}}` (content keys
/// are in [`layout`]).
pub fn describe(request: &str) -> Result<String> {
    let bad = |why: &str| Error::invalid(format!("submission: {why}"));
    let Value::Object(top) = json::parse(request)? else { return Err(bad("must be an object")) };
    let text = |v: &Value| match v {
        Value::String(u) => String::from_utf16(u).map_err(|_| bad("a string is not Unicode")),
        _ => Err(bad("a field that must be a string is not")),
    };
    let get = |name: &str| {
        top.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .ok_or_else(|| bad(&format!("{name} is missing")))
    };
    let root_prefix = text(get("root_prefix")?)?;
    let (farm, queue) = (text(get("farm_id")?)?, text(get("queue_id")?)?);
    let file_system = text(get("file_system")?)?;
    if file_system != "COPIED" && file_system != "VIRTUAL" {
        return Err(bad("file_system must be COPIED or VIRTUAL"));
    }
    let path_format = text(get("path_format")?)?;
    if path_format != "posix" && path_format != "windows" {
        return Err(bad("path_format must be posix or windows"));
    }
    let Value::Array(groups) = get("groups")? else { return Err(bad("groups must be a list")) };
    let (mut manifests, mut entries) = (Vec::new(), Vec::new());
    for g in groups {
        let Value::Object(g) = g else { return Err(bad("a group must be an object")) };
        let field = |name: &str| g.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let root = text(field("root").ok_or_else(|| bad("a group has no root"))?)?;
        let location = match field("location") {
            None | Some(Value::Null) => None,
            Some(v) => Some(text(v)?).filter(|s| !s.is_empty()),
        };
        let outputs = match field("outputs") {
            None => Vec::new(),
            Some(Value::Array(o)) => o.iter().map(&text).collect::<Result<Vec<_>>>()?,
            Some(_) => return Err(bad("outputs must be a list")),
        };
        let manifest_hash = match field("manifest_hash") {
            None | Some(Value::Null) => None,
            Some(v) => Some(text(v)?),
        };
        let mut entry = String::from("{\"rootPath\":");
        json::write_str(&mut entry, &root);
        if let Some(name) = &location {
            entry.push_str(",\"fileSystemLocationName\":");
            json::write_str(&mut entry, name);
        }
        let _ = write!(entry, ",\"rootPathFormat\":\"{path_format}\"");
        match manifest_hash {
            Some(hash) => {
                crate::manifest::check_hash(&hash)?;
                let guid = text(
                    field("guid").ok_or_else(|| bad("a group with a manifest needs a guid"))?,
                )?;
                if guid.is_empty() || !guid.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad("guid must be hex digits"));
                }
                let partial = format!("{farm}/{queue}/Inputs/{guid}/{}_input", xxh128_of(&root));
                let key = format!("{}Manifests/{partial}", prefix(&root_prefix));
                entry.push_str(",\"inputManifestPath\":");
                json::write_str(&mut entry, &partial);
                let _ = write!(entry, ",\"inputManifestHash\":\"{hash}\"");
                manifests.push(manifest_object(&key, &root, location.as_deref()));
            }
            None => manifests.push("null".to_string()),
        }
        if !outputs.is_empty() {
            entry.push_str(",\"outputRelativeDirectories\":[");
            for (i, o) in outputs.iter().enumerate() {
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
    Ok(format!(
        "{{\"manifests\":[{}],\"attachments\":{{\"manifests\":[{}],\"fileSystem\":\"{file_system}\"}}}}",
        manifests.join(","),
        entries.join(",")
    ))
}

/// The content type a manifest object is stored with, as the official code writes it.
pub const MANIFEST_CONTENT_TYPE: &str = "application/x-deadline-manifest-2023-03-03";

fn manifest_object(key: &str, root: &str, location: Option<&str>) -> String {
    let mut out = String::from("{\"key\":");
    json::write_str(&mut out, key);
    out.push_str(",\"content_type\":");
    json::write_str(&mut out, MANIFEST_CONTENT_TYPE);
    out.push_str(",\"metadata\":{\"asset-root\":");
    if root.is_ascii() {
        json::write_str(&mut out, root);
    } else {
        let mut ascii = String::new();
        json::write_str(&mut ascii, root); // already ASCII JSON, as json.dumps(ensure_ascii=True)
        json::write_str(&mut out, &ascii);
        out.push_str(",\"asset-root-json\":");
        json::write_str(&mut out, &ascii);
    }
    if let Some(name) = location {
        out.push_str(",\"file-system-location-name\":");
        json::write_str(&mut out, name);
    }
    out.push_str("}}");
    out
}

/// The root a manifest object names in its user metadata (a JSON object of strings):
/// `asset-root-json` decoded when present (it keeps a root that is not ASCII), else
/// `asset-root`; None when neither is there.
pub fn manifest_root(metadata: &str) -> Result<Option<String>> {
    let bad = |why: &str| Error::invalid(format!("manifest metadata: {why}"));
    let Value::Object(fields) = json::parse(metadata)? else {
        return Err(bad("must be an object"));
    };
    let field = |name: &str| match fields.iter().find(|(k, _)| k == name) {
        None => Ok(None),
        Some((_, Value::String(u))) => {
            String::from_utf16(u).map(Some).map_err(|_| bad(&format!("{name} is not Unicode")))
        }
        Some(_) => Err(bad(&format!("{name} must be a string"))),
    };
    match field("asset-root-json")? {
        Some(text) => match json::parse(&text) {
            Ok(Value::String(u)) => String::from_utf16(u.as_slice())
                .map(Some)
                .map_err(|_| bad("asset-root-json is not Unicode")),
            _ => Err(bad("asset-root-json must hold a JSON string")),
        },
        None => field("asset-root"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_read_back_from_the_metadata_written() {
        for root in ["/show/a", "/show/caf\u{e9}", "C:\\proj\\\u{1f600}"] {
            let object = manifest_object("k", root, Some("loc"));
            let metadata = &object[object.find("\"metadata\":").unwrap() + 11..object.len() - 1];
            assert_eq!(manifest_root(metadata).unwrap().as_deref(), Some(root));
        }
        assert_eq!(manifest_root("{}").unwrap(), None);
        assert!(manifest_root("{\"asset-root-json\":\"nope\"}").is_err());
        assert!(manifest_root("[]").is_err());
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
        assert!(
            out.contains(&format!(
                r#""key":"JA/Manifests/f/q/j/s/t/1970-01-01T00:00:00.000000Z_sa/{name}_output""#
            )),
            "{out}"
        );
        let step = output_manifest("JA", ["f", "q", "j", "s", ""], "sa", 0, "/r", Some("L"));
        assert!(step.contains("/j/s/1970-01-01T00:00:00.000000Z_sa/"), "{step}");
        assert!(step.contains(&xxh128_of("L/r")), "{step}");
    }

    #[test]
    fn the_layout_names_its_prefixes() {
        assert_eq!(
            layout("/JA/"),
            r#"{"data_prefix":"JA/Data/","data_suffix":".xxh128","manifests_prefix":"JA/Manifests/"}"#
        );
    }

    #[test]
    fn keys_follow_the_layout() {
        assert!(layout("JobAttachments").starts_with(r#"{"data_prefix":"JobAttachments/Data/","#));
        assert!(layout("").starts_with(r#"{"data_prefix":"Data/","data_suffix":".xxh128","#));
        // DESIGN §4: root /tmp/ja-vectors/unicode names its manifest a86f27a4…_input.
        assert_eq!(xxh128_of("/tmp/ja-vectors/unicode"), "a86f27a456f886f45db9d237135c77f9");
    }

    #[test]
    fn describes_the_attachments_as_the_official_tools_write_them() {
        let req = r#"{"root_prefix":"JA","farm_id":"farm-1","queue_id":"queue-2","file_system":"COPIED",
            "path_format":"posix","groups":[
              {"root":"/show/caf\u00e9","location":"Show","outputs":["renders"],
               "manifest_hash":"0123456789abcdef0123456789abcdef","guid":"00ff"},
              {"root":"/out","location":null,"outputs":["a","b"],"manifest_hash":null}]}"#;
        let out = describe(req).unwrap();
        let root_hash = xxh128_of("/show/caf\u{e9}");
        assert!(out.contains(&format!(
            r#""key":"JA/Manifests/farm-1/queue-2/Inputs/00ff/{root_hash}_input""#
        )));
        assert!(out.contains(r#""asset-root":"\"/show/caf\\u00e9\"","asset-root-json":"\"/show/caf\\u00e9\"","file-system-location-name":"Show""#), "{out}");
        assert!(out.contains(&format!(
            r#"{{"rootPath":"/show/caf\u00e9","fileSystemLocationName":"Show","rootPathFormat":"posix","inputManifestPath":"farm-1/queue-2/Inputs/00ff/{root_hash}_input","inputManifestHash":"0123456789abcdef0123456789abcdef","outputRelativeDirectories":["renders"]}}"#
        )), "{out}");
        assert!(out.contains(r#"{"rootPath":"/out","rootPathFormat":"posix","outputRelativeDirectories":["a","b"]}],"fileSystem":"COPIED"}"#), "{out}");
        assert!(out.starts_with(r#"{"manifests":[{"key""#));
        assert!(out.contains("},null],"));
    }
}
