"""Every dataset the book uses: where its bytes come from, how to check them, what they become.

Paths are relative to the data root (`paths.data_dir`, default `data/`), which is also the
layout of an offline mirror (`$DLWP_DATA_MIRROR`), so a mirror is simply another data root.
A file is *verified* when its sha256 (or, where only that is published, md5) matches the
canonical file, or one of its recorded *variants*: real copies that are not byte-identical to
the Keras download (a re-packed npz, a labelled-only tarball, ...). Which variant a run used is
recorded with it. Kept free of torch imports: `dlwp data ...` must start fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Variant:
    sha256: str
    size: int
    label: str
    """What this copy is, e.g. "array-identical re-pack (mirror)"."""
    source_name: str | None = None
    """Its file name in a mirror, when that differs from the canonical name."""


@dataclass(frozen=True)
class FileSpec:
    path: str
    """Relative to the data root, e.g. `mnist/mnist.npz`."""
    urls: tuple[str, ...] = ()
    sha256: str | None = None
    md5: str | None = None
    """Checked when no sha256 of the canonical file is published."""
    size: int | None = None
    variants: tuple[Variant, ...] = ()
    required: bool = True
    """False for files a loader uses when present (e.g. Keras' pre-tokenised imdb.npz)."""
    alternative_to: str | None = None
    """A different-format stand-in for that (required) file, used when it cannot be had, e.g. a
    JPEG re-encoding of CIFAR-10. A dataset is usable when each required file or one of its
    alternatives is verified."""
    extract_to: str | None = None
    """Extract this archive (safely) into that folder, relative to the data root, after fetching."""
    note: str = ""


@dataclass(frozen=True)
class Dataset:
    name: str
    title: str
    chapters: str
    files: tuple[FileSpec, ...]
    licence: str
    citation: str
    tensors: str
    """How the files become tensors (the loader's contract)."""
    manual: str = ""
    """How to get the data where no direct download exists (e.g. Kaggle login)."""
    tree_checksums: str | None = None
    """A `SHA256SUMS` file (path relative to the data root) listing a directory tree's files."""
    extra: dict[str, str] = field(default_factory=dict)


KERAS = "https://storage.googleapis.com/tensorflow/tf-keras-datasets"

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            name="mnist",
            title="MNIST handwritten digits (Keras mnist.npz)",
            chapters="2.1, 5.1, 8.4",
            files=(
                FileSpec(
                    "mnist/mnist.npz",
                    urls=(f"{KERAS}/mnist.npz", "https://s3.amazonaws.com/img-datasets/mnist.npz"),
                    sha256="731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
                    size=11_490_434,
                    variants=(
                        Variant(
                            "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64",
                            11_490_519,
                            "array-identical re-pack of the Keras file (shared mirror)",
                        ),
                    ),
                ),
            ),
            licence="CC BY-SA 3.0 (LeCun, Cortes, Burges)",
            citation="Y. LeCun, C. Cortes, C. J. C. Burges. The MNIST database of handwritten digits.",
            tensors="x_train (60000,28,28) / x_test (10000,28,28) uint8 -> float32 / 255; labels 0-9; "
            "file order, no shuffling",
        ),
        Dataset(
            name="imdb",
            title="IMDB movie reviews, binary sentiment (Keras imdb + raw aclImdb)",
            chapters="3.5, 4.4, 6.1-6.4",
            files=(
                FileSpec(
                    "imdb/imdb_word_index.json",
                    urls=(f"{KERAS}/imdb_word_index.json",),
                    sha256="027313fe9a320280f3bf0fac5baf58c4a683cf39a7ed9c3d3d3912bde4284cf6",
                    size=1_641_221,
                ),
                FileSpec(
                    "imdb/aclImdb_v1.tar.gz",
                    urls=("https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",),
                    md5="7c2ac02c03563afcf9b574c7e56c153a",
                    size=84_125_825,
                    variants=(
                        Variant(
                            "3c27c84c5b647935a2b44ee9c5b3fc302d26b6d268caf4c6a360aa7cb1f5fce7",
                            28_631_016,
                            "labelled 25k/25k part only, deterministic re-pack (shared mirror)",
                            source_name="imdb/aclImdb_v1_labeled.tar.gz",
                        ),
                    ),
                    note="raw reviews; tokenised with the word index into Keras-style sequences",
                ),
                FileSpec(
                    "imdb/imdb.npz",
                    urls=(f"{KERAS}/imdb.npz", "https://s3.amazonaws.com/text-datasets/imdb.npz"),
                    sha256="69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f",  # Keras file_hash
                    size=17_464_789,
                    required=False,
                    note="Keras' pre-tokenised file; used instead of the raw reviews when present",
                ),
            ),
            licence="no licence stated; cite Maas et al. 2011",
            citation="A. L. Maas et al. Learning Word Vectors for Sentiment Analysis. ACL 2011.",
            tensors="Keras imdb.load_data semantics: seed-113 shuffle, [1] + [rank + 3], ranks >= num_words -> 2",
        ),
        Dataset(
            name="reuters",
            title="Reuters-21578 newswires, 46 topics (Keras reuters)",
            chapters="3.6",
            files=(
                FileSpec(
                    "reuters/reuters.npz",
                    urls=(f"{KERAS}/reuters.npz", "https://s3.amazonaws.com/text-datasets/reuters.npz"),
                    sha256="d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916",  # Keras file_hash
                    size=2_110_848,
                    variants=(
                        Variant(
                            "03b29a1853b44ef4b0ffcd992bac574b6cd44782f16fb07a43ab156bacdc37d6",
                            2_075_911,
                            "rebuilt from Reuters-21578 with the Keras recipe; word ranks differ among "
                            "tied frequencies (shared mirror)",
                            source_name="reuters/reuters_rebuilt.npz",
                        ),
                    ),
                ),
                FileSpec(
                    "reuters/reuters_word_index.json",
                    urls=(f"{KERAS}/reuters_word_index.json",),
                    md5="4d44cc38712099c9e383dc6e5f11a921",  # Keras file_hash (reuters.get_word_index)
                    size=550_378,
                    variants=(
                        Variant(
                            "a7ec46004fedb4264834b9171693a6efdecdc970b8d56275adc8d2ae66a1b6dd",
                            550_383,
                            "word index of the rebuilt npz (shared mirror)",
                            source_name="reuters/reuters_word_index_rebuilt.json",
                        ),
                    ),
                ),
                FileSpec(
                    "reuters/reuters21578.tar.gz",
                    urls=("https://kdd.ics.uci.edu/databases/reuters21578/reuters21578.tar.gz",),
                    required=False,
                    variants=(
                        Variant(
                            "018a7bf7d34f139684d99ae7b13f9ef094dba8786708513d695d00d193e46b48",
                            8_093_014,
                            "all 31 files of Distribution 1.0, re-packed deterministically (shared mirror)",
                        ),
                    ),
                    note="the raw SGML that reuters.npz was built from; read with data.from_raw=true",
                ),
            ),
            licence="Reuters-21578 Distribution 1.0: research use only",
            citation="D. D. Lewis. Reuters-21578 text categorization test collection, Distribution 1.0.",
            tensors="Keras reuters.load_data semantics: seed-113 shuffle, 80/20 split (8,982 / 2,246), "
            "[1] + [rank + 3], labels 0-45",
        ),
        Dataset(
            name="boston_housing",
            title="Boston housing prices (Keras boston_housing)",
            chapters="3.7",
            files=(
                FileSpec(
                    "boston_housing/boston_housing.npz",
                    urls=(
                        f"{KERAS}/boston_housing.npz",
                        "https://s3.amazonaws.com/keras-datasets/boston_housing.npz",
                    ),
                    sha256="f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5",
                    size=57_026,
                    variants=(
                        Variant(
                            "9a38dd3bf92f3c2809445778cc12336e985c0faf67eb64379f6809dca11ef4bc",
                            57_162,
                            "array-identical re-pack built from scikit-learn's csv (shared mirror)",
                        ),
                    ),
                ),
            ),
            licence="StatLib / UCI (Harrison & Rubinfeld 1978)",
            citation="D. Harrison, D. L. Rubinfeld. Hedonic prices and the demand for clean air. 1978.",
            tensors="Keras boston_housing.load_data: RandomState(113) shuffle, 404 train / 102 test x 13",
        ),
        Dataset(
            name="dogs_vs_cats",
            title="Dogs vs. Cats, the book's small 2,000/1,000/1,000 subset",
            chapters="5.2-5.4",
            files=(
                FileSpec(
                    "dogs_vs_cats/SHA256SUMS",
                    # dlwp's own list is the canonical one: pinned by sha256, so a list with any other
                    # bytes (a mirror's own, say) is corrupt, never written, and verifies no image
                    sha256="ea373d3de583a824e5bb87fcea3c3772da0f0893cae4fbc8fa16cce62f9349bd",
                    size=593_780,
                    note="checksums of the shared mirror's 5,000 JPEGs",
                ),
            ),
            tree_checksums="dogs_vs_cats/SHA256SUMS",
            licence="Kaggle Dogs vs. Cats (Asirra): research and non-commercial use",
            citation="J. Elson et al. Asirra: a CAPTCHA that exploits interest-aligned manual image "
            "categorization. CCS 2007.",
            tensors="train = Kaggle cat/dog 0-999, val = 1000-1499, test = 1500-1999; 150x150, /255; "
            "cats = 0, dogs = 1",
            manual="needs a Kaggle login: `kaggle competitions download -c dogs-vs-cats`, then build "
            "the 2,000/1,000/1,000 split (book 5.2); or use a mirror holding dogs_vs_cats/",
        ),
        Dataset(
            name="jena_climate",
            title="Jena climate 2009-2016, 10-minute weather records",
            chapters="6.3, 6.4",
            files=(
                FileSpec(
                    "jena_climate/jena_climate_2009_2016.csv.zip",
                    urls=("https://s3.amazonaws.com/keras-datasets/jena_climate_2009_2016.csv.zip",),
                    size=13_568_290,
                    extract_to="jena_climate/extracted",
                ),
                FileSpec(
                    "jena_climate/jena_climate_2009-01-01_2009-05-19_partial.csv.gz",
                    sha256="493af83d231ae196abe78f02271adbd5616f3b37374a5e24d8958aaea5d9e25d",
                    size=401_599,
                    alternative_to="jena_climate/jena_climate_2009_2016.csv.zip",
                    note="the first 20,002 canonical rows, some columns empty (shared mirror): not the full series",
                ),
            ),
            licence="Max Planck Institute for Biogeochemistry, free for research",
            citation="Max Planck Institute for Biogeochemistry, Jena weather station (Olaf Kolle).",
            tensors="420,551 rows x 14 features; book: lookback 1440, step 6, delay 144",
        ),
        Dataset(
            name="nietzsche",
            title="Nietzsche, Beyond Good and Evil (character-level text)",
            chapters="8.1",
            files=(
                FileSpec(
                    "nietzsche/nietzsche.txt",
                    urls=("https://s3.amazonaws.com/text-datasets/nietzsche.txt",),
                    size=600_901,
                    variants=(
                        Variant(
                            "23cf69874ab69d3d256099ab530ea4be24d47d9675b673bcc67cbcd6298ec647",
                            600_901,
                            "repaired copy, content-verified against the book's counts (shared mirror)",
                        ),
                    ),
                ),
            ),
            licence="public domain (Project Gutenberg)",
            citation="F. Nietzsche, Beyond Good and Evil, tr. H. Zimmern (Project Gutenberg).",
            tensors=".lower(); maxlen 60, step 3 -> 200,278 sequences over 57 characters",
        ),
        Dataset(
            name="cifar10",
            title="CIFAR-10 (the GAN of 8.5 uses the 5,000 frogs)",
            chapters="8.5",
            files=(
                FileSpec(
                    "cifar10/cifar-10-python.tar.gz",
                    urls=("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
                    md5="c58f30108f718f92721af3b95e74349a",
                    size=170_498_071,
                ),
                FileSpec(
                    "cifar10/cifar10_jpeg_train_all_classes.tar.gz",
                    sha256="87c978cc678634fd70de66aa51ee37104ff904f6e06389f8ec72e72d86f8ff64",
                    size=16_197_257,
                    alternative_to="cifar10/cifar-10-python.tar.gz",
                    note="the 50,000 training images as JPEG (lossy re-encoding; shared mirror)",
                ),
            ),
            licence="no licence stated; cite Krizhevsky 2009",
            citation="A. Krizhevsky. Learning Multiple Layers of Features from Tiny Images. 2009.",
            tensors="50,000 train 32x32x3 uint8, labels 0-9 (frog = 6); /255",
        ),
        Dataset(
            name="glove",
            title="GloVe 6B word vectors (100-d used by 6.1c)",
            chapters="6.1",
            files=(
                FileSpec(
                    "glove/glove.6B.zip",
                    urls=("https://nlp.stanford.edu/data/glove.6B.zip",),
                    size=862_182_613,
                    extract_to="glove/glove.6B",
                ),
                FileSpec(
                    "glove/glove.6B.100d.sample.txt.gz",
                    sha256="156a9262a32df5a06156f0a4ee6e99730ec8c30142b223ede686bf283c8d07aa",
                    size=34_314,
                    alternative_to="glove/glove.6B.zip",
                    note="the first 100 words of glove.6B.100d.txt only (shared mirror): for tests",
                ),
            ),
            licence="PDDL 1.0",
            citation="J. Pennington, R. Socher, C. D. Manning. GloVe: Global Vectors for Word "
            "Representation. EMNLP 2014.",
            tensors="400,000 x 100 float vectors; rows for the task's top-10,000 words",
        ),
    )
}


def get(name: str) -> Dataset:
    from dlwp.errors import ConfigError

    if name not in DATASETS:
        raise ConfigError(f"unknown dataset '{name}'; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def identify(sha256: str) -> dict[str, str] | None:
    """Which registered file these bytes are: its dataset, its path, and `canonical` or the label
    of the recorded variant (e.g. the mirror's rebuilt Reuters npz). None for unknown bytes."""
    for dataset in DATASETS.values():
        for spec in dataset.files:
            if spec.sha256 == sha256:
                return {"dataset": dataset.name, "file": spec.path, "variant": "canonical"}
            for variant in spec.variants:
                if variant.sha256 == sha256:
                    return {"dataset": dataset.name, "file": spec.path, "variant": variant.label}
    return None
