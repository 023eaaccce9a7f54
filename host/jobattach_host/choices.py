"""The string options of the API, each a ``Literal`` type, and the one check of them at run time.

Type checkers catch a misspelt option at the call; :func:`check_choice` catches it at run time
too (a value read from a file or the command line), naming the allowed values.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from .errors import ValidationError

#: What to do with a local file that exists and differs from the manifest: replace it, leave
#: it, or fail before anything is written.
ConflictPolicy = Literal["overwrite", "skip", "error", "create-copy"]
#: How the worker presents a job's inputs: copied to its disk, or on demand.
FileSystemMode = Literal["COPIED", "VIRTUAL"]
#: A storage profile location: ``LOCAL`` paths are uploaded, ``SHARED`` ones are not.
LocationType = Literal["LOCAL", "SHARED"]
#: A manifest format: Deadline Cloud's, and the newer format's snapshot and diff manifests.
ManifestFormat = Literal["v2023-03-03", "v2025-12-snapshot", "v2025-12-diff"]
#: The formats by name (here, not in ``manifest``, so the command line's parser has them
#: without loading the engine).
V2023: Final = "v2023-03-03"
V2025_SNAPSHOT: Final = "v2025-12-snapshot"
V2025_DIFF: Final = "v2025-12-diff"
#: Which of a job's manifests a download of manifests reads.
ManifestKind = Literal["input", "output", "all"]
#: The path syntax a root or a path mapping rule's source was written in.
PathFormat = Literal["posix", "windows"]
#: The phase a progress report is about.
Phase = Literal["scanning", "hashing", "uploading", "downloading", "copying", "verifying"]
#: Why a snapshot left a path out of its manifest.
SkipReason = Literal[
    "special-file",
    "symlink-outside-root",
    "symlink-to-directory",
    "broken-symlink",
    "unsupported-name",
    "empty-directory",
]
#: Why a submission did not upload an input: a snapshot's reason, or ``missing`` (the input
#: does not exist, and is kept as a reference).
LeftOutReason = Literal[SkipReason, "missing"]


def check_choice(what: str, value: object, choices: object) -> None:
    """Raises ``ValidationError`` unless ``value`` is one of the ``Literal`` type ``choices``."""
    allowed = get_args(choices)
    if value not in allowed:
        shown = ", ".join(repr(a) for a in allowed)
        raise ValidationError(f"{what} must be one of {shown}, not {value!r}")


__all__ = [
    "V2023",
    "V2025_DIFF",
    "V2025_SNAPSHOT",
    "ConflictPolicy",
    "FileSystemMode",
    "LeftOutReason",
    "LocationType",
    "ManifestFormat",
    "ManifestKind",
    "PathFormat",
    "Phase",
    "SkipReason",
    "check_choice",
]
