"""Getting a dataset's bytes: from an offline mirror or the network, verified, written atomically.

Nothing here leaves a file that looks complete but is not: downloads and copies go to a
`.part` file in the target folder, are hashed on the way, and are renamed into place only after
the hash matched. Archives are extracted only after every member was checked to stay inside the
target folder. No torch import: `dlwp data ...` starts in a fraction of a second.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dlwp.data.registry import DATASETS, Dataset, FileSpec
from dlwp.errors import DataMissingError

MIRROR_ENV = "DLWP_DATA_MIRROR"
CHUNK = 1 << 20


class ChecksumError(DataMissingError):
    """A file's bytes are not the ones recorded for it."""


@dataclass
class Check:
    """What a file on disk is, as far as the registry can tell."""

    path: Path
    state: str
    """`missing`, `verified` (the canonical file), `variant` (a recorded real copy), `unverified`
    (present, but no hash is published for it), or `corrupt` (a hash is known and differs)."""
    label: str = ""
    sha256: str | None = None

    @property
    def usable(self) -> bool:
        return self.state in ("verified", "variant", "unverified")


def hashes(path: Path) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


def classify(spec: FileSpec, sha256: str, md5: str) -> tuple[str, str]:
    """(state, label) of bytes with these hashes, for this file spec."""
    if spec.sha256 == sha256 or (spec.sha256 is None and spec.md5 == md5):
        return "verified", "canonical"
    for variant in spec.variants:
        if variant.sha256 == sha256:
            return "variant", variant.label
    if spec.sha256 is None and spec.md5 is None:
        return "unverified", "no published checksum"
    return "corrupt", ""


def check(spec: FileSpec, data_dir: Path) -> Check:
    path = data_dir / spec.path
    if not path.is_file():
        return Check(path, "missing")
    sha, md5 = hashes(path)
    state, label = classify(spec, sha, md5)
    return Check(path, state, label, sha)


def expected_text(spec: FileSpec) -> str:
    known = [f"sha256 {spec.sha256}"] if spec.sha256 else [f"md5 {spec.md5}"] if spec.md5 else []
    known += [f"sha256 {v.sha256} ({v.label})" for v in spec.variants]
    return " or ".join(known) or "no published checksum"


def mirror_root() -> str | None:
    """`$DLWP_DATA_MIRROR`, or None when unset; a local folder that does not exist is an error (see
    `check_mirror`), not a silent fall-back to the network."""
    mirror = os.environ.get(MIRROR_ENV) or None
    check_mirror(mirror, MIRROR_ENV)
    return mirror


def check_mirror(mirror: str | None, given_by: str = MIRROR_ENV) -> None:
    """Raise `DataMissingError` when `mirror` names a local folder that is not there. `given_by`:
    where the value came from (`DLWP_DATA_MIRROR` or `--mirror`), for the message."""
    if not mirror or "://" in mirror or Path(mirror).is_dir():
        return
    problem = "is not a folder" if Path(mirror).exists() else "does not exist"
    unset = {MIRROR_ENV: f"unset {MIRROR_ENV}", "--mirror": "leave out --mirror"}.get(given_by, "give no mirror")
    raise DataMissingError(
        f"{given_by}={mirror} {problem}: point it at a folder with the layout of data/ (e.g. ../shared/datasets), "
        f"or {unset} to download from the published URLs"
    )


def unmatched_files(files: Iterable[tuple[Path | str, str]], data_dir: Path) -> list[dict[str, str]]:
    """The registered dataset files among `files` (`(path, sha256)` pairs, as a run read them)
    whose bytes are none of the versions the registry knows: `dlwp data status` calls them
    `corrupt`. A file is registered by its path relative to `data_dir`: a `FileSpec` of a dataset,
    or a file listed in a dataset's `SHA256SUMS` (itself pinned; a list with other bytes is
    reported instead of its files). Files without a published checksum (`unverified`) and files
    the registry does not name (a user's own data) are not reported. Each entry: `path`, `file`
    (its registered path), `dataset`, `sha256`."""
    specs = {spec.path: (dataset, spec) for dataset in DATASETS.values() for spec in dataset.files}
    roots = (os.path.abspath(data_dir), os.path.realpath(data_dir))
    trees: dict[str, dict[str, str]] = {}
    bad: list[dict[str, str]] = []
    for path, sha in files:
        rel = _relative_to(path, roots)
        if rel is None:
            continue
        if rel in specs:
            dataset, spec = specs[rel]
            state, _ = classify(spec, sha, "")  # md5 (of a few canonical archives) only when needed
            if state == "corrupt" and spec.sha256 is None and spec.md5:
                state, _ = classify(spec, sha, hashes(Path(path))[1])
            if state == "corrupt":
                bad.append({"path": str(path), "file": rel, "dataset": dataset.name, "sha256": sha})
            continue
        dataset = DATASETS.get(rel.split("/", 1)[0])
        if dataset is None or not dataset.tree_checksums:
            continue
        if dataset.name not in trees:
            trees[dataset.name] = _tree_listing(dataset, Path(data_dir), bad)
        expected = trees[dataset.name].get(rel)
        if expected is not None and expected != sha:
            bad.append({"path": str(path), "file": rel, "dataset": dataset.name, "sha256": sha})
    return bad


def _relative_to(path: Path | str, roots: tuple[str, str]) -> str | None:
    """`path` relative to the data root as a registry path (`mnist/mnist.npz`), or None outside it;
    `roots`: the root's absolute and real path. Tried as given (a data dir of symlinks), then with
    links resolved."""
    for normalise, root in zip((os.path.abspath, os.path.realpath), roots, strict=True):
        full, prefix = normalise(path), root.rstrip(os.sep) + os.sep
        if full.startswith(prefix):
            return full[len(prefix) :].replace(os.sep, "/")
    return None


def _tree_listing(dataset: Dataset, data_dir: Path, bad: list[dict[str, str]]) -> dict[str, str]:
    """{registry path: sha256} of the files `dataset`'s SHA256SUMS lists; {} when it is absent, and
    {} (the list itself added to `bad`) when its bytes are not the pinned list's."""
    sums_spec = next(f for f in dataset.files if f.path == dataset.tree_checksums)
    sums = data_dir / sums_spec.path
    if not sums.is_file():
        return {}
    sha, md5 = hashes(sums)
    if classify(sums_spec, sha, md5)[0] not in ("verified", "variant"):
        bad.append({"path": str(sums), "file": sums_spec.path, "dataset": dataset.name, "sha256": sha})
        return {}
    listing = {}
    for line in sums.read_text().splitlines():
        digest, _, rel = line.strip().partition("  ")
        if rel:
            listing[str(PurePosixPath(dataset.name) / rel)] = digest
    return listing


# -- transfers ---------------------------------------------------------------------------------


def _open_source(source: str, timeout: float):
    """A readable stream and its size for a local path or an http(s)/file URL."""
    if "://" not in source:
        return open(source, "rb"), os.path.getsize(source)
    request = urllib.request.Request(source, headers={"User-Agent": "dlwp"})
    response = urllib.request.urlopen(request, timeout=timeout)  # URLs come from the registry or the user
    size = response.headers.get("Content-Length")
    return response, int(size) if size else None


def transfer(source: str, spec: FileSpec, target: Path, progress: bool = True, timeout: float = 30) -> Check:
    """Copy/download `source` to `target`, verified against `spec`; atomic; raises on mismatch."""
    part = target.with_name(f".{target.name}.part")
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    stream, size = _open_source(source, timeout)  # before any folder is made: a failed source leaves none
    bar = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        bar = _progress(f"{spec.path}", size) if progress else None
        with stream, open(part, "wb") as out:
            while block := stream.read(CHUNK):
                out.write(block)
                sha.update(block)
                md5.update(block)
                if bar is not None:
                    bar.update(len(block))
        state, label = classify(spec, sha.hexdigest(), md5.hexdigest())
        if state == "corrupt":
            raise ChecksumError(
                f"checksum mismatch for {spec.path} from {source}: expected {expected_text(spec)}, "
                f"got sha256 {sha.hexdigest()}. Nothing was written; the source is damaged or not this file."
            )
        os.replace(part, target)
        return Check(target, state, label, sha.hexdigest())
    finally:
        stream.close()
        if bar is not None:
            bar.close()
        part.unlink(missing_ok=True)


def _progress(name: str, total: int | None):
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name, file=sys.stderr, leave=False)


def _mirror_candidates(spec: FileSpec, mirror: str) -> list[str]:
    names = [spec.path] + [v.source_name for v in spec.variants if v.source_name]
    if "://" in mirror:
        return [f"{mirror.rstrip('/')}/{name}" for name in names]
    return [str(Path(mirror) / name) for name in names if (Path(mirror) / name).is_file()]


def fetch_file(spec: FileSpec, data_dir: Path, mirror: str | None, progress: bool = True) -> Check:
    """Make `data_dir/spec.path` a verified copy; tries what is there, the mirror, then the URLs."""
    present = check(spec, data_dir)
    if present.state in ("verified", "variant"):
        return present
    target = data_dir / spec.path
    errors = []
    sources = (_mirror_candidates(spec, mirror) if mirror else []) + list(spec.urls)
    for source in sources:
        try:
            result = transfer(source, spec, target, progress)
        except ChecksumError:
            raise
        except (OSError, urllib.error.URLError, ValueError) as err:
            errors.append(f"{source}: {getattr(err, 'reason', err)}")
            continue
        if spec.extract_to:
            safe_extract(target, data_dir / spec.extract_to)
        return result
    if present.state == "unverified":
        return present
    if present.state == "corrupt":
        raise ChecksumError(
            f"{target} is corrupt: expected {expected_text(spec)}, got sha256 {present.sha256}; "
            "delete it and fetch again"
        )
    tried = "\n  ".join(errors) or "no source (no mirror set and no download URL)"
    raise DataMissingError(f"could not get {spec.path}. Tried:\n  {tried}")


def fetch(name: str, data_dir: Path, mirror: str | None = None, progress: bool = True) -> list[Check]:
    """Fetch one dataset: every required file (or its alternative) and the optional ones we can.
    A fetch that fails leaves no empty folder it made behind."""
    check_mirror(mirror, "mirror")
    made = [p for p in (data_dir / name, data_dir, *data_dir.parents) if not p.exists()]  # deepest first
    try:
        return _fetch(name, data_dir, mirror, progress)
    except BaseException:
        for folder in made:
            try:
                folder.rmdir()
            except OSError:  # not empty: something was fetched, or it was made by someone else
                break
        raise


def _fetch(name: str, data_dir: Path, mirror: str | None, progress: bool) -> list[Check]:
    dataset = DATASETS[name]
    results: list[Check] = []
    if dataset.tree_checksums:
        return fetch_tree(dataset, data_dir, mirror)
    alternatives = {f.alternative_to: f for f in dataset.files if f.alternative_to}
    for spec in dataset.files:
        if spec.alternative_to:
            continue
        try:
            results.append(fetch_file(spec, data_dir, mirror, progress))
        except ChecksumError:
            raise
        except DataMissingError as err:
            if spec.path in alternatives:
                try:
                    results.append(fetch_file(alternatives[spec.path], data_dir, mirror, progress))
                    continue
                except DataMissingError as alt_err:
                    err = DataMissingError(f"{err}\nand its stand-in: {alt_err}")
            if spec.required:
                how = f"\n{dataset.manual}" if dataset.manual else ""
                raise DataMissingError(f"{name}: {err}{how}") from None
    return results


def fetch_tree(dataset: Dataset, data_dir: Path, mirror: str | None) -> list[Check]:
    """A directory tree listed in a SHA256SUMS file: each file copied from a mirror and verified."""
    sums_spec = dataset.files[0]
    if mirror is None or "://" in mirror:
        raise DataMissingError(f"{dataset.name}: no direct download; {dataset.manual}")
    try:
        sums = fetch_file(sums_spec, data_dir, mirror, progress=False)
    except ChecksumError:
        raise
    except DataMissingError as err:
        raise DataMissingError(f"{dataset.name}: {err}\n{dataset.manual}") from None
    if sums.state not in ("verified", "variant"):  # a mirror's own list would make any file "verify"
        raise ChecksumError(
            f"{dataset.name}: {sums.path} is not the checksum list dlwp knows (sha256 {sums.sha256}); the "
            "registry must pin it (FileSpec sha256 or a Variant) before its files can be trusted"
        )
    results = [sums]
    for line in sums.path.read_text().splitlines():
        digest, _, rel = line.strip().partition("  ")
        if not rel:
            continue
        _check_member_name(rel)
        spec = FileSpec(str(PurePosixPath(dataset.name) / rel), sha256=digest)
        results.append(fetch_file(spec, data_dir, mirror, progress=False))
    return results


# -- archives ----------------------------------------------------------------------------------


def _check_member_name(name: str) -> None:
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or name.startswith(("/", "\\")) or ":" in pure.parts[0]:
        raise DataMissingError(f"archive member {name!r} would land outside the target folder; refusing")


def safe_extract(archive: Path, target: Path) -> Path:
    """Extract a tar or zip into `target`, refusing absolute paths, `..`, links and devices.

    Everything is checked before anything is written, into a temporary sibling folder that is
    renamed to `target` at the end: an interrupted extraction leaves no half-filled `target`.
    """
    tmp = target.with_name(f".{target.name}.extracting")
    shutil.rmtree(tmp, ignore_errors=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _check_member_name(info.filename)
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise DataMissingError(f"{archive}: member {info.filename!r} is a symlink; refusing")
            zf.extractall(tmp)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for member in members:
                _check_member_name(member.name)
                if not (member.isfile() or member.isdir()):
                    raise DataMissingError(f"{archive}: member {member.name!r} is a link or device; refusing")
            tf.extractall(tmp, members=members, filter="data")
    else:
        raise DataMissingError(f"{archive} is neither a zip nor a tar archive")
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return target
