//! Which output manifests a download of a job's outputs reads, as the official downloader
//! picks them: below `{rootPrefix}/Manifests/{farm}/{queue}/{job}/` (or one step, or one of its
//! tasks), every output manifest of a step without tasks, and of each task only its latest
//! session action, merged oldest first.

use std::fmt::Write;

use crate::error::{Error, Result};

/// The prefix to list for the outputs of a job, or of one step, or of one task of a step.
pub fn prefix(
    root_prefix: &str,
    farm: &str,
    queue: &str,
    job: &str,
    step: &str,
    task: &str,
) -> Result<String> {
    if !task.is_empty() && step.is_empty() {
        return Err(Error::invalid("a task's outputs need its step too"));
    }
    check_ids(&[("job", job), ("step", step), ("task", task)])?;
    let mut out = queue_prefix(root_prefix, farm, queue)?;
    let _ = write!(out, "{job}/");
    for id in [step, task].into_iter().filter(|id| !id.is_empty()) {
        let _ = write!(out, "{id}/");
    }
    Ok(out)
}

/// The prefix to list for the output manifests of every job of a queue (its input manifests,
/// under `Inputs/`, are listed too).
pub fn queue_prefix(root_prefix: &str, farm: &str, queue: &str) -> Result<String> {
    check_ids(&[("farm", farm), ("queue", queue)])?;
    let mut out = crate::attachments::prefix(root_prefix);
    let _ = write!(out, "Manifests/{farm}/{queue}/");
    Ok(out)
}

fn check_ids(ids: &[(&str, &str)]) -> Result<()> {
    match ids.iter().find(|(_, id)| id.contains('/')) {
        Some((name, id)) => Err(Error::invalid(format!("the {name} id {id:?} contains '/'"))),
        None => Ok(()),
    }
}

/// The keys to read from a listing of [`prefix`] (key, last modified in µs), in the order to
/// merge them: oldest first by last modification, ties in the official order (steps without
/// tasks, then each task's latest session action, in listing order).
pub fn select(objects: &[(String, i64)]) -> Vec<String> {
    let mut chosen: Vec<(i64, &str)> = Vec::new();
    // Each task folder (the key up to its first `task-` segment), in first-seen order.
    let mut tasks: Vec<(&str, Vec<(i64, &str)>)> = Vec::new();
    for (key, modified) in objects {
        if !is_output_manifest(key) {
            continue;
        }
        match task_folder(key) {
            None => chosen.push((*modified, key)),
            Some(folder) => match tasks.iter_mut().find(|(f, _)| *f == folder) {
                Some((_, keys)) => keys.push((*modified, key)),
                None => tasks.push((folder, vec![(*modified, key)])),
            },
        }
    }
    for (folder, keys) in &tasks {
        // The latest session action: the greatest `{start}_{session action}` folder name.
        let action = |key: &str| key[folder.len() + 1..].split('/').next().unwrap_or("").to_owned();
        let latest = keys.iter().map(|(_, k)| action(k)).max().unwrap_or_default();
        chosen.extend(keys.iter().filter(|(_, k)| k.len() > folder.len() && action(k) == latest));
    }
    chosen.sort_by_key(|(modified, _)| *modified); // stable: ties keep the order above
    chosen.into_iter().map(|(_, key)| key.to_string()).collect()
}

/// The official test, the regular expression `step-.*/.*/.*output.*` found in the key.
pub fn is_output_manifest(key: &str) -> bool {
    let Some(step) = key.find("step-") else { return false };
    let rest = &key[step + 5..];
    let Some(first) = rest.find('/') else { return false };
    let rest = &rest[first + 1..];
    rest.find('/').is_some_and(|second| rest[second + 1..].contains("output"))
}

/// The key up to (and with) its first segment containing `task-`, when it has one.
fn task_folder(key: &str) -> Option<&str> {
    if !key.contains("task-") {
        return None;
    }
    let mut end = 0;
    for segment in key.split('/') {
        end += segment.len();
        if segment.contains("task-") {
            return Some(&key[..end]);
        }
        end += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_narrow_to_a_step_and_a_task() {
        let p = |step, task| prefix("/DeadlineCloud/", "farm-1", "queue-1", "job-1", step, task);
        assert_eq!(p("", "").unwrap(), "DeadlineCloud/Manifests/farm-1/queue-1/job-1/");
        assert_eq!(
            p("step-1", "").unwrap(),
            "DeadlineCloud/Manifests/farm-1/queue-1/job-1/step-1/"
        );
        assert_eq!(
            p("step-1", "task-2").unwrap(),
            "DeadlineCloud/Manifests/farm-1/queue-1/job-1/step-1/task-2/"
        );
        assert!(p("", "task-2").is_err());
        assert!(prefix("", "farm-1", "queue-1", "job-1/..", "", "").is_err());
    }

    #[test]
    fn each_task_gives_its_latest_session_action_and_steps_without_tasks_give_all() {
        let j = "Manifests/f/q/job-1/";
        let keys = [
            (format!("{j}step-1/task-1/2026-01-01T00:00:00.000000Z_sessionaction-a/r1_output"), 30),
            (format!("{j}step-1/task-1/2026-01-02T00:00:00.000000Z_sessionaction-b/r1_output"), 20),
            (format!("{j}step-1/task-1/2026-01-02T00:00:00.000000Z_sessionaction-b/r2_output"), 21),
            (format!("{j}step-2/2026-01-01T00:00:00.000000Z_sessionaction-c/r1_output"), 10),
            (format!("{j}step-2/2026-01-03T00:00:00.000000Z_sessionaction-d/r1_output"), 10),
            (format!("{j}step-1/task-1/not-a-manifest"), 5),
            (format!("{j}Inputs/x/r_input"), 1),
        ];
        let want = [&keys[3].0, &keys[4].0, &keys[1].0, &keys[2].0];
        assert_eq!(select(&keys), want.map(|k| k.to_string()));
    }

    #[test]
    fn the_official_pattern_decides_what_an_output_manifest_is() {
        assert!(is_output_manifest("a/step-1/x/y_output"));
        assert!(is_output_manifest("step-1/task-1/z/h_output"));
        assert!(!is_output_manifest("a/step-1/y_output"));
        assert!(!is_output_manifest("a/Inputs/step-1/x/y_input"));
        assert_eq!(task_folder("a/step-1/task-9/s/o_output"), Some("a/step-1/task-9"));
        assert_eq!(task_folder("a/step-1/s/o_output"), None);
    }
}
