"""Getting the bytes: mirrors, checksums, atomic writes, safe extraction, `dlwp data` commands."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import MIRROR, dlwp
from dlwp.data.cli import dataset_state
from dlwp.data.fetch import ChecksumError, check, fetch, fetch_file, fetch_tree, safe_extract, transfer
from dlwp.data.registry import DATASETS, Dataset, FileSpec, Variant
from dlwp.errors import DataMissingError

CLOSED_PORT = "http://127.0.0.1:9/nothing-listens-here.npz"  # refused at once: no network needed


def _spec(path: str, payload: bytes, **kw) -> FileSpec:
    return FileSpec(path, sha256=hashlib.sha256(payload).hexdigest(), size=len(payload), **kw)


def test_fetch_from_a_mirror_verifies_and_writes_atomically(tmp_path):
    mirror, data = tmp_path / "mirror", tmp_path / "data"
    payload = b"real bytes" * 1000
    (mirror / "toy").mkdir(parents=True)
    (mirror / "toy" / "toy.bin").write_bytes(payload)
    spec = _spec("toy/toy.bin", payload)
    result = fetch_file(spec, data, str(mirror), progress=False)
    assert result.state == "verified" and (data / "toy" / "toy.bin").read_bytes() == payload
    assert [p.name for p in (data / "toy").iterdir()] == ["toy.bin"], "no temporary file left behind"
    assert fetch_file(spec, data, None, progress=False).state == "verified"  # present: nothing to do


def test_mirror_file_under_a_variant_name_is_accepted_and_labelled(tmp_path):
    mirror, payload = tmp_path / "mirror", b"re-packed but real"
    (mirror / "toy").mkdir(parents=True)
    (mirror / "toy" / "toy_repack.bin").write_bytes(payload)
    variant = Variant(hashlib.sha256(payload).hexdigest(), len(payload), "re-pack", source_name="toy/toy_repack.bin")
    spec = FileSpec("toy/toy.bin", sha256="0" * 64, variants=(variant,))
    result = fetch_file(spec, tmp_path / "data", str(mirror), progress=False)
    assert (result.state, result.label) == ("variant", "re-pack")
    assert (tmp_path / "data" / "toy" / "toy.bin").read_bytes() == payload


def test_checksum_mismatch_names_file_expected_and_actual_and_writes_nothing(tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    (mirror / "toy" / "toy.bin").write_bytes(b"tampered")
    spec = FileSpec("toy/toy.bin", sha256="ab" * 32)
    with pytest.raises(ChecksumError) as err:
        fetch_file(spec, tmp_path / "data", str(mirror), progress=False)
    message = str(err.value)
    assert "toy/toy.bin" in message and "ab" * 32 in message and hashlib.sha256(b"tampered").hexdigest() in message
    assert not any((tmp_path / "data").rglob("*")) or not any(p.is_file() for p in (tmp_path / "data").rglob("*"))


class _Broken(io.BytesIO):
    def read(self, n=-1):
        if self.tell() > 10:
            raise OSError("connection reset")
        return super().read(4)


def test_interrupted_transfer_leaves_no_file_that_looks_complete(tmp_path, monkeypatch):
    import dlwp.data.fetch as fetch_module

    monkeypatch.setattr(fetch_module, "_open_source", lambda source, timeout: (_Broken(b"x" * 100), 100))
    target = tmp_path / "toy" / "toy.bin"
    with pytest.raises(OSError, match="connection reset"):
        transfer("http://example.invalid/toy.bin", FileSpec("toy/toy.bin", sha256="0" * 64), target, progress=False)
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_no_network_and_no_data_fails_at_once_listing_what_was_tried(tmp_path):
    spec = FileSpec("toy/toy.bin", urls=(CLOSED_PORT,), sha256="0" * 64)
    with pytest.raises(DataMissingError, match=r"could not get toy/toy.bin. Tried:\n  http://127.0.0.1:9"):
        fetch_file(spec, tmp_path, mirror=None, progress=False)


def test_corrupt_file_on_disk_is_reported_not_used(tmp_path):
    spec = FileSpec("toy/toy.bin", sha256="cd" * 32)
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "toy.bin").write_bytes(b"bit rot")
    assert check(spec, tmp_path).state == "corrupt"
    with pytest.raises(ChecksumError, match="is corrupt"):
        fetch_file(spec, tmp_path, None, progress=False)


def _tar(path: Path, members: dict[str, bytes], symlink: tuple[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink[0])
            info.type, info.linkname = tarfile.SYMTYPE, symlink[1]
            tf.addfile(info)
    return path


def test_safe_extract_extracts_good_archives(tmp_path):
    archive = _tar(tmp_path / "ok.tar.gz", {"a/b.txt": b"hello", "c.txt": b"x"})
    out = safe_extract(archive, tmp_path / "out")
    assert (out / "a" / "b.txt").read_bytes() == b"hello"
    zpath = tmp_path / "ok.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("d/e.txt", "zip")
    assert (safe_extract(zpath, tmp_path / "zout") / "d" / "e.txt").read_text() == "zip"


@pytest.mark.parametrize(
    ("members", "symlink"),
    [({"../escape.txt": b"x"}, None), ({"/etc/evil": b"x"}, None), ({"ok.txt": b"x"}, ("link", "/etc/passwd"))],
)
def test_safe_extract_refuses_members_that_leave_the_target(tmp_path, members, symlink):
    archive = _tar(tmp_path / "bad.tar.gz", members, symlink)
    with pytest.raises(DataMissingError, match="refusing"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape.txt").exists()


def test_zip_slip_is_refused(tmp_path):
    zpath = tmp_path / "slip.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("../../slip.txt", "x")
    with pytest.raises(DataMissingError, match="outside the target"):
        safe_extract(zpath, tmp_path / "out")


def test_registry_entries_are_complete():
    for name, dataset in DATASETS.items():
        assert dataset.licence and dataset.citation and dataset.tensors and dataset.chapters, name
        for spec in dataset.files:
            assert spec.path.startswith(f"{name}/"), spec.path
            knows_bytes = spec.sha256 or spec.md5 or spec.variants or not spec.required
            assert spec.urls or spec.variants or spec.alternative_to or dataset.tree_checksums, spec.path
            assert knows_bytes or spec.urls, spec.path


@pytest.mark.skipif(not (MIRROR / "MANIFEST.md").is_file(), reason="shared mirror absent")
def test_chapter_2_3_datasets_fetch_from_the_shared_mirror(tmp_path):
    for name in ("mnist", "imdb", "reuters", "boston_housing"):
        results = fetch(name, tmp_path, str(MIRROR), progress=False)
        assert all(r.state in ("verified", "variant") for r in results), name
        assert dataset_state(DATASETS[name], tmp_path)[0] == "present"
    assert dataset_state(DATASETS["nietzsche"], tmp_path)[0] == "missing"
    fetch("glove", tmp_path, str(MIRROR), progress=False)  # the mirror holds a 100-word sample only
    assert dataset_state(DATASETS["glove"], tmp_path)[0] == "stand-in", "usable, but not called present"


def test_data_cli_status_and_failed_fetch(tmp_path):
    out = dlwp("data", "--data-dir", str(tmp_path), "status").stdout
    assert "mnist           missing" in out and "data version" in out
    (tmp_path / "empty").mkdir()  # a mirror folder without the dataset (a missing folder is an error of its own)
    proc = dlwp("data", "--data-dir", str(tmp_path), "fetch", "dogs_vs_cats", "--mirror", str(tmp_path / "empty"),
                check=False, env={"DLWP_DATA_MIRROR": ""})  # fmt: skip
    assert proc.returncode == 1 and "dogs_vs_cats: FAILED" in proc.stderr and "kaggle" in proc.stderr.lower()
    assert dlwp("data", "fetch", "nosuch", check=False).returncode == 2


def test_a_tree_is_trusted_only_through_a_checksum_list_the_registry_pins(tmp_path):
    """A mirror that brings its own SHA256SUMS for swapped images is refused, not "verified"."""
    mirror = tmp_path / "mirror" / "toy"
    (mirror / "a").mkdir(parents=True)
    (mirror / "a" / "x.jpg").write_bytes(b"swapped image")
    sums = f"{hashlib.sha256(b'swapped image').hexdigest()}  a/x.jpg\n".encode()
    (mirror / "SHA256SUMS").write_bytes(sums)

    def tree(sums_spec: FileSpec) -> Dataset:
        return Dataset("toy", "toy", "5", (sums_spec,), "l", "c", "t", tree_checksums="toy/SHA256SUMS")

    source = str(tmp_path / "mirror")
    pinned_elsewhere = FileSpec("toy/SHA256SUMS", variants=(Variant("cd" * 32, 10, "the real list"),))
    with pytest.raises(ChecksumError, match="toy/SHA256SUMS"):
        fetch_tree(tree(pinned_elsewhere), tmp_path / "d1", source)
    with pytest.raises(ChecksumError, match="must pin it"):
        fetch_tree(tree(FileSpec("toy/SHA256SUMS")), tmp_path / "d2", source)
    pinned = FileSpec("toy/SHA256SUMS", sha256=hashlib.sha256(sums).hexdigest())
    assert [r.state for r in fetch_tree(tree(pinned), tmp_path / "d3", source)] == ["verified", "verified"]
    assert DATASETS["dogs_vs_cats"].files[0].sha256, "the real dogs_vs_cats list is pinned in the registry"
