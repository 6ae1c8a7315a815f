#!/usr/bin/env bash
# Optional: a separate environment with Keras 3 + TensorFlow (CPU) for bench/keras_book.py.
# Kept out of the project's own environment: the comparison must not change what dlwp runs on.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv-keras
.venv-keras/bin/pip install --quiet --upgrade pip
.venv-keras/bin/pip install --quiet "keras>=3" "tensorflow-cpu>=2.16" numpy pillow scipy  # pillow: flow_from_directory (book 5.2); scipy: its augmentation (5.2b)
.venv-keras/bin/python -c "import keras, tensorflow as tf; print('keras', keras.__version__, 'tensorflow', tf.__version__)"
