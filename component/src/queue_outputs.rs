//! Following a queue's outputs as they come: which output manifests of a listing of the
//! queue's `Manifests/{farm}/{queue}/` prefix are new since a checkpoint, in which batches to
//! download them, and what the checkpoint says once each batch is done.
//!
//! An output manifest's key below that prefix is
//! `{job}/{step}/[{task}/]{start}_{session action}/{hash}_output` (the official worker's
//! layout; a step's own action has no task folder, or an empty one). A checkpoint counts as done every output
//! manifest last modified before its watermark, and those it lists (key and last modification)
//! at or after it. A listing shows every object whose upload had finished when it was made; an
//! upload that had not is last modified no earlier than the latest one listed less the time an
//! upload can take. So once everything listed is downloaded, the watermark moves to the latest
//! last modification listed less a lookback that bounds that time (and the servers' clock
//! skew), and the checkpoint keeps the keys from there on: a manifest last modified in the same
//! second as those done (listings give whole seconds) is still found. A key listed again with
//! another last modification was written again, and is new.
//!
//! Every new manifest counts (each session action's, retries included), as for the official
//! incremental download, merged oldest first so the latest write of a path wins. The batches
//! are the jobs, each job's manifests oldest first (last modification, then key), the jobs in
//! the order of their oldest new manifest, so the watermark can move after each batch.

use crate::error::{Error, Result};
use crate::job_outputs::is_output_manifest;

/// An output manifest of a queue, its key's parts named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueOutput {
    pub key: String,
    pub last_modified_us: i64,
    pub job: String,
    pub step: String,
    /// Empty for a step's session action.
    pub task: String,
    pub session_action: String,
}

/// What earlier downloads did: every output manifest last modified before `complete_before_us`,
/// and the `done` ones (key, last modification) at or after it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Done {
    pub complete_before_us: i64,
    pub done: Vec<(String, i64)>,
}

impl Done {
    /// Nothing done yet.
    pub fn none() -> Self {
        Done { complete_before_us: i64::MIN, done: Vec::new() }
    }
}

/// One job's new output manifests, and the watermark once they and the batches before them
/// are downloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub job: String,
    pub outputs: Vec<QueueOutput>,
    pub complete_before_us: i64,
}

/// The batches to download, and what is done once all are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub batches: Vec<Batch>,
    pub after: Done,
}

/// The parts of `key` (listed under `prefix`) when it is an output manifest's.
pub fn parse(prefix: &str, key: &str, last_modified_us: i64) -> Option<QueueOutput> {
    let rest = key.strip_prefix(prefix)?;
    if !is_output_manifest(key) {
        return None;
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let (job, step, task, action, name) = match parts[..] {
        [job, step, action, name] => (job, step, "", action, name),
        // The official worker's library writes an empty task folder for a step's action.
        [job, step, task, action, name] if task.is_empty() || task.starts_with("task-") => {
            (job, step, task, action, name)
        }
        _ => return None,
    };
    let (_, session_action) = action.split_once('_')?;
    let named = |s: &str| !s.is_empty() && s != "Inputs";
    if !named(job) || !step.starts_with("step-") || session_action.is_empty() {
        return None;
    }
    if !name.ends_with("_output") {
        return None;
    }
    Some(QueueOutput {
        key: key.to_string(),
        last_modified_us,
        job: job.to_string(),
        step: step.to_string(),
        task: task.to_string(),
        session_action: session_action.to_string(),
    })
}

/// What to download of `listing` (key, last modified in µs; a listing of `prefix`) given
/// what `since` says is done, `lookback_us` being the longest an upload can take.
pub fn plan(
    prefix: &str,
    listing: &[(String, i64)],
    since: &Done,
    lookback_us: i64,
) -> Result<Plan> {
    if lookback_us < 0 {
        return Err(Error::invalid(format!("the lookback {lookback_us} µs is negative")));
    }
    if let Some((key, _)) = listing.iter().find(|(key, _)| !key.starts_with(prefix)) {
        return Err(Error::invalid(format!("{key:?} is not below the listed prefix {prefix:?}")));
    }
    let outputs: Vec<QueueOutput> =
        listing.iter().filter_map(|(key, modified)| parse(prefix, key, *modified)).collect();
    let done: std::collections::HashMap<&str, i64> =
        since.done.iter().map(|(key, modified)| (key.as_str(), *modified)).collect();
    let is_new = |o: &QueueOutput| {
        o.last_modified_us >= since.complete_before_us
            && done.get(o.key.as_str()) != Some(&o.last_modified_us)
    };
    let latest = outputs.iter().map(|o| o.last_modified_us).max();
    let watermark = latest.map_or(since.complete_before_us, |l| {
        since.complete_before_us.max(l.saturating_sub(lookback_us))
    });

    let mut jobs: Vec<(String, Vec<QueueOutput>)> = Vec::new();
    for o in outputs.iter().filter(|o| is_new(o)) {
        match jobs.iter_mut().find(|(job, _)| *job == o.job) {
            Some((_, list)) => list.push(o.clone()),
            None => jobs.push((o.job.clone(), vec![o.clone()])),
        }
    }
    let order = |o: &QueueOutput| (o.last_modified_us, o.key.clone());
    for (_, list) in &mut jobs {
        list.sort_by_key(order);
    }
    jobs.sort_by(|(a, la), (b, lb)| (order(&la[0]), a).cmp(&(order(&lb[0]), b)));

    let mut batches = Vec::with_capacity(jobs.len());
    for i in 0..jobs.len() {
        // Everything before the oldest manifest of the batches still to come is done.
        let next = jobs[i + 1..].iter().map(|(_, list)| list[0].last_modified_us).min();
        let complete_before_us = next.map_or(watermark, |n| watermark.min(n));
        let complete_before_us = complete_before_us.max(since.complete_before_us);
        let (job, outputs) = std::mem::take(&mut jobs[i]);
        batches.push(Batch { job, outputs, complete_before_us });
    }
    let after = Done {
        complete_before_us: watermark,
        done: outputs
            .into_iter()
            .filter(|o| o.last_modified_us >= watermark)
            .map(|o| (o.key, o.last_modified_us))
            .collect(),
    };
    Ok(Plan { batches, after })
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "JA/Manifests/farm-1/queue-1/";
    const S: i64 = 1_000_000;

    fn key(job: &str, task: &str, action: &str) -> String {
        let task = if task.is_empty() { String::new() } else { format!("{task}/") };
        format!("{P}{job}/step-1/{task}2026-01-01T00:00:00.000000Z_{action}/abc_output")
    }

    fn keys(plan: &Plan) -> Vec<Vec<&str>> {
        plan.batches.iter().map(|b| b.outputs.iter().map(|o| o.key.as_str()).collect()).collect()
    }

    #[test]
    fn keys_name_their_job_step_task_and_session_action() {
        let o = parse(P, &key("job-1", "task-2", "sessionaction-3-0"), 7).unwrap();
        assert_eq!(
            (o.job.as_str(), o.step.as_str(), o.task.as_str(), o.session_action.as_str()),
            ("job-1", "step-1", "task-2", "sessionaction-3-0")
        );
        let step = parse(P, &key("job-1", "", "sa-1"), 7).unwrap();
        assert_eq!((step.task.as_str(), step.session_action.as_str()), ("", "sa-1"));
        let empty = format!("{P}job-1/step-1//2026-01-01T00:00:00.000000Z_sa-2/abc_output");
        let step = parse(P, &empty, 7).unwrap();
        assert_eq!((step.task.as_str(), step.session_action.as_str()), ("", "sa-2"));
        for other in [
            format!("{P}Inputs/0123/abc_input"),
            format!("{P}job-1/step-1/task-1/no-action-time/abc_output"),
            format!("{P}job-1/step-1/task-1/t_sa/deeper/abc_output"),
            format!("{P}job-1/step-1/task-1/t_sa/abc_input"),
            format!("{P}job-1/notastep/task-1/t_sa/abc_output"),
            "elsewhere/job-1/step-1/task-1/t_sa/abc_output".to_string(),
        ] {
            assert_eq!(parse(P, &other, 0), None, "{other}");
        }
    }

    #[test]
    fn a_first_run_takes_every_output_manifest_one_job_after_another() {
        let listing = vec![
            (key("job-2", "task-1", "sa-4"), 5 * S),
            (key("job-1", "task-1", "sa-1"), 10 * S),
            (key("job-1", "task-1", "sa-2"), 10 * S), // a retry in the same second: key order
            (key("job-1", "task-2", "sa-3"), 3 * S),
            (format!("{P}Inputs/g/x_input"), S),
        ];
        let plan = plan(P, &listing, &Done::none(), 2 * S).unwrap();
        assert_eq!(
            keys(&plan),
            vec![vec![&*listing[3].0, &*listing[1].0, &*listing[2].0], vec![&*listing[0].0]]
        );
        // After job-1, job-2's manifest (5 s) is still to come.
        let marks: Vec<i64> = plan.batches.iter().map(|b| b.complete_before_us).collect();
        assert_eq!(marks, vec![5 * S, 8 * S]);
        assert_eq!(plan.after.complete_before_us, 8 * S);
        let kept: Vec<&str> = plan.after.done.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kept, vec![&*listing[1].0, &*listing[2].0]);
    }

    #[test]
    fn what_is_done_is_not_taken_again_but_the_same_second_is_not_lost() {
        let first = vec![(key("job-1", "task-1", "sa-1"), 10 * S)];
        let done = plan(P, &first, &Done::none(), 0).unwrap().after;
        assert_eq!(done.complete_before_us, 10 * S);
        assert!(plan(P, &first, &done, 0).unwrap().batches.is_empty());

        let mut later = first.clone();
        later.push((key("job-1", "task-2", "sa-2"), 10 * S)); // listed after, same second
        later.push((key("job-3", "task-1", "sa-0"), 9 * S)); // before the watermark: done
        let next = plan(P, &later, &done, 0).unwrap();
        assert_eq!(keys(&next), vec![vec![&*later[1].0]]);

        let mut rewritten = first.clone();
        rewritten[0].1 = 11 * S;
        assert_eq!(keys(&plan(P, &rewritten, &done, 0).unwrap()), vec![vec![&*rewritten[0].0]]);
    }

    #[test]
    fn the_watermark_never_goes_back_and_bad_requests_are_refused() {
        let since = Done { complete_before_us: 50 * S, done: vec![] };
        let old = vec![(key("job-1", "task-1", "sa-1"), 40 * S)];
        let plan_ = plan(P, &old, &since, 300 * S).unwrap();
        assert!(plan_.batches.is_empty());
        assert_eq!(plan_.after, Done { complete_before_us: 50 * S, done: vec![] });
        assert!(plan(P, &old, &since, -1).is_err());
        assert!(plan("JA/Manifests/farm-1/queue-2/", &old, &since, 0).is_err());
    }
}
