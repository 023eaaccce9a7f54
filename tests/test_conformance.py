"""The contract cases of tests/conformance/*.json, run through this host's engine layer.

Each file holds cases of one interface: ``function`` (``interface.name`` as in
wit/engine.wit), ``arguments`` (the WIT arguments by name: records as objects with the WIT's
field names, enums as their names, options as null or the value, JSON strings of bulk data
as the JSON they hold), and ``expected`` (the ok value, in the same form) or ``error`` (the
error kind). Any host can run them; this runner maps each function to ``engine``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT
from jobattach_host import engine
from jobattach_host.errors import AttachmentError
from jobattach_host.sandbox import instance_for

CASES = ROOT / "tests" / "conformance"


def _cases() -> list[Any]:
    return [
        pytest.param(case, id=f"{path.stem}:{case['name']}")
        for path in sorted(CASES.glob("*.json"))
        for case in json.loads(path.read_text())
    ]


def _object(o: engine.ManifestObject | None) -> Any:
    return (
        None if o is None else {"key": o.key, "metadata": [list(kv) for kv in o.metadata.items()]}
    )


def _describe(a: dict[str, Any]) -> Any:
    r = a["request"]
    roots = [
        engine.SubmittedRoot(g["root"], g["location"], g["outputs"], g["manifest-hash"], g["guid"])
        for g in r["roots"]
    ]
    submission = engine.Submission(
        r["root-prefix"],
        r["farm-id"],
        r["queue-id"],
        r["file-system"].upper(),
        r["path-format"],
        roots,
    )
    out = engine.describe(submission)
    return {"manifests": [_object(m) for m in out.manifests], "attachments": out.attachments}


def _group(a: dict[str, Any]) -> Any:
    r, paths = a["request"], a["request"]["paths"]
    request = engine.GroupRequest(
        style=r["style"],
        inputs=[tuple(i) for i in paths.get("inputs", [])],
        outputs=paths.get("outputs", []),
        references=paths.get("references", []),
        locations=[(loc["name"], loc["path"], loc["kind"].upper()) for loc in r["locations"]],
        require_paths_exist=r["require-paths-exist"],
    )
    return engine.group(request)


def _output_manifest(a: dict[str, Any]) -> Any:
    r = {k.replace("-", "_"): v for k, v in a["request"].items()}
    return _object(engine.output_manifest(engine.OutputManifestRequest(**r)))


def _outputs_prefix(a: dict[str, Any]) -> Any:
    r = a["request"]
    ids = (r["farm-id"], r["queue-id"], r["job-id"], r["step-id"] or "", r["task-id"] or "")
    return engine.outputs_prefix(r["root-prefix"], *ids)


def _plan_mirror(a: dict[str, Any]) -> Any:
    r = a["request"]
    request = engine.MirrorRequest(
        [tuple(f) for f in r["source"]],
        [tuple(f) for f in r["dest"]],
        r["delete"],
        r["by-hash"],
        r["include"],
        r["exclude"],
    )
    return engine.plan_mirror(request).__dict__


def _refused(a: dict[str, Any]) -> Any:
    d = {k.replace("-", "_"): v for k, v in a["destination"].items()}
    lengths_only = d.pop("lengths_only")
    destination = engine.Destination(**d)
    entries = a["entries"] if isinstance(a["entries"], str) else engine.bulk(a["entries"])
    return [
        list(r) for r in engine.refused_entries(destination, entries, lengths_only=lengths_only)
    ]


def _plan_listed(a: dict[str, Any], tmp: Path) -> Any:
    o = a["options"]
    options = engine.SnapshotOptions(o["include"], o["exclude"], o["format"], o["host-roots"])
    return engine.plan_snapshot(instance_for(tmp), options, engine.bulk(a["listing"]))


def _canonicalize(a: dict[str, Any]) -> Any:
    c = engine.canonicalize(a["data"])
    return {"format": c.format, "encoded": c.encoded, "hash": c.hash}


def _map_path(a: dict[str, Any]) -> Any:
    rules = [
        engine.PathMappingRule(r["source-path-format"], r["source-path"], r["destination-path"])
        for r in a["rules"]
    ]
    return engine.map_path(rules, a["path"], a["separator"])


def _layout(a: dict[str, Any]) -> Any:
    out = engine.layout(a["root-prefix"])
    return {
        "data-prefix": out.data_prefix,
        "data-suffix": out.data_suffix,
        "manifests-prefix": out.manifests_prefix,
    }


def _queue_outputs(a: dict[str, Any]) -> Any:
    r = a["request"]

    def pairs(objects: list[dict[str, Any]]) -> list[tuple[str, int]]:
        return [(o["key"], o["last-modified-us"]) for o in objects]

    def objects(done: dict[str, int]) -> list[dict[str, Any]]:
        return [{"key": k, "last-modified-us": v} for k, v in done.items()]

    since = engine.OutputsDone(r["since"]["complete-before-us"], dict(pairs(r["since"]["done"])))
    plan = engine.queue_outputs(r["prefix"], pairs(r["listing"]), since, r["lookback-us"])
    batches = [
        {
            "job-id": b.job_id,
            "outputs": [
                {
                    "key": o.key,
                    "last-modified-us": o.last_modified_us,
                    "job-id": o.job_id,
                    "step-id": o.step_id,
                    "task-id": o.task_id,
                    "session-action-id": o.session_action_id,
                }
                for o in b.outputs
            ],
            "complete-before-us": b.complete_before_us,
        }
        for b in plan.batches
    ]
    after = {"complete-before-us": plan.after.complete_before_us, "done": objects(plan.after.done)}
    return {"batches": batches, "after": after}


CALLS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "sync.session-root": lambda a: engine.session_root_name(a["root-path"]),
    "sync.layout": _layout,
    "sync.output-manifest": _output_manifest,
    "sync.outputs-prefix": _outputs_prefix,
    "sync.select-outputs": lambda a: engine.select_outputs(
        [(o["key"], o["last-modified-us"]) for o in a["listing"]]
    ),
    "sync.queue-outputs-prefix": lambda a: engine.queue_outputs_prefix(
        a["root-prefix"], a["farm-id"], a["queue-id"]
    ),
    "sync.queue-outputs": _queue_outputs,
    "sync.manifest-root": lambda a: engine.manifest_root(dict(a["metadata"])),
    "sync.map-path": _map_path,
    "sync.plan-mirror": _plan_mirror,
    "sync.refused-entries": _refused,
    "submit.group": _group,
    "submit.describe": _describe,
    "manifest.canonicalize": _canonicalize,
}


def test_every_case_names_a_function_this_runner_knows() -> None:
    names = {p.values[0]["function"] for p in _cases()}
    assert names <= set(CALLS) | {"snapshot.plan-listed"}
    assert len(names) >= 10


@pytest.mark.parametrize("case", _cases())
def test_conformance(case: dict[str, Any], tmp_path: Path) -> None:
    name, arguments = case["function"], case["arguments"]

    def run() -> Any:
        if name == "snapshot.plan-listed":  # needs a granted root; an empty one will do
            return _plan_listed(arguments, tmp_path)
        return CALLS[name](arguments)

    if "error" in case:
        with pytest.raises(AttachmentError) as raised:
            run()
        assert raised.value.kind == case["error"], raised.value
    else:
        assert run() == case["expected"]
