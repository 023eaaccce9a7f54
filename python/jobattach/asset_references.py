"""A job bundle's asset references: reading ``asset_references.yaml``/``.json``, and input
directories expanded into the files below them, as the official ``deadline bundle submit``
does (``os.walk`` without following links; a directory holding no file becomes a reference,
as a v2023-03-03 manifest cannot carry it; a missing one too, unless it is required)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobattach_host.errors import FileAccessError, ValidationError


@dataclass(frozen=True)
class AssetReferences:
    """The files a job reads, the directories it writes, and paths it only refers to."""

    #: Files to upload (relative paths are taken from the working directory; a missing file
    #: becomes a reference).
    input_filenames: Sequence[str] = ()
    #: Directories the job writes its outputs to.
    output_directories: Sequence[str] = ()
    #: Paths the job refers to that are not uploaded.
    referenced_paths: Sequence[str] = ()
    #: Directories every file below which is an input (symlinks to folders not followed); one
    #: holding no file, or missing, becomes a reference.
    input_directories: Sequence[str] = ()

    def union(self, other: AssetReferences) -> AssetReferences:
        """These references and ``other``'s, each path once."""
        return AssetReferences(
            input_filenames=_unique([*self.input_filenames, *other.input_filenames]),
            output_directories=_unique([*self.output_directories, *other.output_directories]),
            referenced_paths=_unique([*self.referenced_paths, *other.referenced_paths]),
            input_directories=_unique([*self.input_directories, *other.input_directories]),
        )


#: The names a job bundle gives the file, in the order the official loader tries them.
BUNDLE_FILES = ("asset_references.json", "asset_references.yaml", "asset_references.yml")


def read_asset_references(path: str | os.PathLike[str]) -> AssetReferences:
    """The asset references of a job bundle: ``path`` is its ``asset_references.yaml`` or
    ``.json``, or the bundle's folder. Paths are kept as written (relative ones are taken
    from the working directory, as the official submitter takes them)."""
    file = Path(path)
    if file.is_dir():
        found = [file / name for name in BUNDLE_FILES if (file / name).is_file()]
        if not found:
            raise FileAccessError(f"no {' or '.join(BUNDLE_FILES)} here", path=str(file))
        file = found[0]
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as e:
        raise FileAccessError(f"cannot read: {e.strerror}", path=str(file)) from e
    return _from_document(_parsed(text, file), str(file))


def _parsed(text: str, file: Path) -> Any:
    if file.suffix == ".json":
        try:
            return json.loads(text)
        except ValueError as e:
            raise ValidationError(f"not JSON ({e})", path=str(file)) from e
    import yaml  # only for job bundles written in YAML

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValidationError(f"not YAML ({e})", path=str(file)) from e


def _from_document(doc: Any, where: str) -> AssetReferences:
    """``{"assetReferences": {"inputs": {"filenames", "directories"}, "outputs":
    {"directories"}, "referencedPaths"}}``, every part optional."""
    refs = _object(doc, "the document", where).get("assetReferences")
    if refs is None:
        raise ValidationError("no assetReferences in it", path=where)
    refs = _object(refs, "assetReferences", where)
    inputs = _object(refs.get("inputs", {}), "assetReferences.inputs", where)
    outputs = _object(refs.get("outputs", {}), "assetReferences.outputs", where)

    def paths(value: Any, name: str) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
            raise ValidationError(f"{name} must be a list of paths", path=where)
        return [os.path.normpath(p) for p in value]

    return AssetReferences(
        input_filenames=paths(inputs.get("filenames"), "assetReferences.inputs.filenames"),
        output_directories=paths(outputs.get("directories"), "assetReferences.outputs.directories"),
        referenced_paths=paths(refs.get("referencedPaths"), "assetReferences.referencedPaths"),
        input_directories=paths(inputs.get("directories"), "assetReferences.inputs.directories"),
    )


def _object(value: Any, name: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(f"{name} must be an object", path=where)
    return value


def expand_input_directories(
    refs: AssetReferences, *, require_paths_exist: bool = False
) -> AssetReferences:
    """``refs`` with every file below its input directories among its input files, and the
    directories holding no file, or missing, among its references (missing ones refused,
    all named, under ``require_paths_exist``)."""
    if not refs.input_directories:
        return refs
    files = list(refs.input_filenames)
    references = list(refs.referenced_paths)
    missing: list[str] = []
    for directory in refs.input_directories:
        if not os.path.isdir(directory):
            (missing if require_paths_exist else references).append(directory)
            continue
        found = _files_below(directory)
        if found:
            files.extend(found)
        else:
            references.append(directory)
    if missing:
        raise ValidationError(
            f"input directories do not exist (require_paths_exist): {'; '.join(sorted(missing))}"
        )
    return AssetReferences(
        input_filenames=_unique(files),
        output_directories=refs.output_directories,
        referenced_paths=_unique(references),
    )


def _files_below(directory: str) -> list[str]:
    def refuse(err: OSError) -> None:
        why = f"cannot list an input directory: {err.strerror}"
        raise FileAccessError(why, path=err.filename or directory) from err

    return [
        os.path.normpath(os.path.join(folder, name))
        for folder, _, names in os.walk(directory, onerror=refuse)
        for name in names
    ]


def _unique(paths: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(paths))
