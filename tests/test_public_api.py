"""The public surface: every name ``jobattach`` exports imports, every type its signatures use is
reachable from ``jobattach``, string options are checked at run time, and options given twice
are never silently dropped."""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import importlib
import inspect
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any, get_args, get_type_hints

import pytest

import jobattach
from conftest import ROOT
from jobattach import (
    AssetReferences,
    BundleSubmitOptions,
    ClientOptions,
    FileSystemLocation,
    Manifest,
    ManifestEntry,
    ManifestLocation,
    PathMappingRule,
    S3Config,
    S3Location,
    ValidationError,
    create_manifest,
    download_job_outputs,
    submit_bundle_attachments,
    sync,
    sync_inputs,
)

#: Modules whose types a signature may use without jobattach exporting them.
OUTSIDE = ("builtins", "typing", "collections", "os", "pathlib", "types", "boto3", "botocore")


def test_every_exported_name_imports() -> None:
    module = importlib.import_module("jobattach")
    assert len(set(jobattach.__all__)) == len(jobattach.__all__)
    for name in jobattach.__all__:
        assert hasattr(module, name), name
    namespace: dict[str, Any] = {}
    exec("from jobattach import *", namespace)  # the star import users may write
    assert set(jobattach.__all__) <= set(namespace)


if sys.version_info < (3, 10):  # so that get_type_hints reads `X | None` annotations
    import eval_type_backport

    eval_type_backport.install_patch()
#: What `X | Y` evaluates to (3.10 on); on 3.9 the patch above makes them typing.Union.
_UNION_TYPE = getattr(types, "UnionType", typing.Union)


def _hints(obj: Any) -> dict[str, Any]:
    """The resolved annotations of a function, or of a class's fields and constructor, and of
    its public methods when the class is the package's own (the host's configuration and cache
    classes offer theirs to the host's own transfers)."""
    # What annotations name without importing it at run time: ``os`` (in ``StrPath``), boto3's
    # client and botocore's credentials (imported for type checking only).
    from botocore.credentials import Credentials
    from mypy_boto3_s3 import S3Client

    localns = {"os": os, "S3Client": S3Client, "Credentials": Credentials}
    if not inspect.isclass(obj):
        return get_type_hints(obj, localns=localns)
    hints = dict(get_type_hints(obj, localns=localns))
    own = obj.__module__.startswith("jobattach.")
    for name, member in vars(obj).items():
        if name != "__init__" and (name.startswith("_") or not own):
            continue
        target = member.fget if isinstance(member, property) else member
        target = member.func if isinstance(member, functools.cached_property) else target
        target = getattr(target, "__func__", target)  # classmethods
        if inspect.isfunction(target):
            module = vars(importlib.import_module(target.__module__))
            resolved = get_type_hints(target, {**module, **localns})
            hints.update({f"{name}.{k}": v for k, v in resolved.items()})
    return {k: v for k, v in hints.items() if not k.startswith("_")}


def _classes(annotation: Any) -> set[type]:
    """Every class an annotation names, inside unions, generics and Literal excepted."""
    if typing.get_origin(annotation) is typing.Literal:
        return set()
    found: set[type] = set()
    origin = typing.get_origin(annotation)
    if origin is not None and origin not in (typing.Union, _UNION_TYPE):
        found.add(origin)
    elif inspect.isclass(annotation):
        found.add(annotation)
    for arg in get_args(annotation):
        if isinstance(arg, list):  # Callable's parameters
            for a in arg:
                found |= _classes(a)
        else:
            found |= _classes(arg)
    return found


def test_every_type_in_a_public_signature_is_exported() -> None:
    exported = {id(getattr(jobattach, name)) for name in jobattach.__all__}
    missing = set()
    for name in jobattach.__all__:
        obj = getattr(jobattach, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        for where, annotation in _hints(obj).items():
            for cls in _classes(annotation):
                if cls.__module__.split(".")[0] in OUTSIDE or cls is type(None):
                    continue
                if id(cls) not in exported:
                    missing.add(f"{cls.__module__}.{cls.__qualname__} (in {name}, {where})")
    assert not missing, sorted(missing)


def test_the_types_checked_include_those_signatures_use() -> None:
    # The walk above does see into signatures: sync names its S3Config, download its rules.
    assert S3Config in _classes(get_type_hints(sync)["s3"])
    hints = get_type_hints(download_job_outputs)
    assert PathMappingRule in _classes(hints["path_mapping_rules"])
    assert collections.abc.Sequence in _classes(hints["path_mapping_rules"])


@pytest.mark.parametrize(
    ("make", "allowed"),
    [
        (lambda: BundleSubmitOptions(file_system_mode="copied"), "'COPIED', 'VIRTUAL'"),  # type: ignore[arg-type]
        (lambda: FileSystemLocation("L", "/l", "local"), "'LOCAL', 'SHARED'"),  # type: ignore[arg-type]
        (lambda: PathMappingRule("mac", "/a", "/b"), "'posix', 'windows'"),  # type: ignore[arg-type]
        (
            lambda: Manifest.from_entries([ManifestEntry("a", "0" * 32, 1, 1)], format="v1"),  # type: ignore[arg-type]
            "'v2023-03-03', 'v2025-12-snapshot', 'v2025-12-diff'",
        ),
    ],
)
def test_a_string_option_outside_its_choices_names_them(make: Any, allowed: str) -> None:
    with pytest.raises(ValidationError, match=f"must be one of {allowed}, not"):
        make()


def test_a_snapshot_or_download_with_an_unknown_option_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="format must be one of 'v2023-03-03'"):
        create_manifest(tmp_path, format="v2023")  # type: ignore[arg-type]
    attachments: dict[str, Any] = {"manifests": []}
    with pytest.raises(ValidationError, match="on_conflict must be one of 'overwrite', 'skip'"):
        sync_inputs(S3Location("b", "P"), attachments, tmp_path, on_conflict="replace")  # type: ignore[arg-type]


def test_sync_takes_its_options_as_typed_keywords() -> None:
    params = inspect.signature(sync).parameters
    fields = {f.name for f in dataclasses.fields(jobattach.SyncOptions)}
    assert set(params) - {"source", "dest"} == fields
    assert all(params[f].kind is inspect.Parameter.KEYWORD_ONLY for f in fields)
    with pytest.raises(TypeError, match="unexpected keyword argument 'delet'"):
        sync("/nowhere", "s3://b/p", delet=True)  # type: ignore[call-arg]


def test_no_public_function_takes_untyped_keywords() -> None:
    catch_all = [
        name
        for name in jobattach.__all__
        if inspect.isfunction(obj := getattr(jobattach, name))
        and any(p.kind is p.VAR_KEYWORD for p in inspect.signature(obj).parameters.values())
    ]
    assert catch_all == []


#: A loopback port nothing listens on: were a refusal missed, the submission fails here.
NOWHERE = "http://127.0.0.1:9"


def _submit(region: str | None, s3: S3Config, options: BundleSubmitOptions | None = None) -> None:
    submit_bundle_attachments(
        region,
        S3Location("no-bucket", "JA"),
        ManifestLocation("farm-1", "queue-1"),
        AssetReferences(),
        options=options,
        s3=s3,
    )


def test_a_region_beside_s3_that_disagrees_is_refused() -> None:
    with pytest.raises(ValidationError, match="'eu-west-1' disagrees with s3=S3Config"):
        _submit("eu-west-1", S3Config(region="us-west-2", endpoint_url=NOWHERE))


def test_client_options_beside_s3_that_disagree_are_refused() -> None:
    options = BundleSubmitOptions(client_options=ClientOptions.low_latency())
    with pytest.raises(ValidationError, match="client_options disagrees with s3=S3Config"):
        _submit(
            None, S3Config(endpoint_url=NOWHERE, options=ClientOptions.high_throughput()), options
        )


def test_a_region_and_client_options_beside_s3_fill_what_it_leaves_unset() -> None:
    from jobattach.submit import _s3_config

    fast, url = ClientOptions.low_latency(), NOWHERE
    merged = _s3_config("eu-west-1", fast, S3Config(endpoint_url=url))
    assert (merged.region, merged.options, merged.endpoint_url) == ("eu-west-1", fast, url)
    client = merged.client()  # what the bucket's requests use
    assert client.meta.region_name == "eu-west-1"
    kept = _s3_config(None, ClientOptions(), S3Config(region="us-east-2", options=fast))
    assert (kept.region, kept.options) == ("us-east-2", fast)
    same = _s3_config("us-east-2", fast, S3Config(region="us-east-2", options=fast))
    assert (same.region, same.options) == ("us-east-2", fast)


def test_every_reason_an_input_is_left_out_is_explained() -> None:
    assert set(get_args(jobattach.LeftOutReason)) == set(jobattach.LEFT_OUT)
    assert set(get_args(jobattach.SkipReason)) == set(jobattach.LEFT_OUT) - {"missing"}


def test_the_package_under_test_is_the_one_meant() -> None:
    """Under scripts/other-pythons.sh, the installed wheel (never the source tree standing in
    for it); otherwise the tree's own editable install."""
    installed = os.environ.get("JOBATTACH_EXPECT_INSTALLED")
    here = Path(jobattach.__file__).resolve()
    if installed:
        assert here.is_relative_to(Path(installed).resolve()), here
        assert "site-packages" in here.parts
    else:
        assert here == (ROOT / "python" / "jobattach" / "__init__.py").resolve()
