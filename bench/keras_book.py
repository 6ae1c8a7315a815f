"""The book's own code (Keras, ported only as far as Keras 3 requires) for the benchmarked tasks.

Runs inside bench/.venv-keras (see bench/keras_setup.sh), on arrays exported by bench/keras_compare.py
so both frameworks train on the same data. Prints one JSON line per epoch and one with the test result.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np


def book_5_2_model(keras, models, layers, dropout: bool = False):
    """Book 5.2a's convnet (5.2b's with `dropout`: Dropout(0.5) after Flatten), compiled as the book does."""
    model = models.Sequential([keras.Input((150, 150, 3)), layers.Conv2D(32, (3, 3), activation="relu"),
                               layers.MaxPooling2D((2, 2)), layers.Conv2D(64, (3, 3), activation="relu"),
                               layers.MaxPooling2D((2, 2)), layers.Conv2D(128, (3, 3), activation="relu"),
                               layers.MaxPooling2D((2, 2)), layers.Conv2D(128, (3, 3), activation="relu"),
                               layers.MaxPooling2D((2, 2)), layers.Flatten(), *[layers.Dropout(0.5)] * dropout,
                               layers.Dense(512, activation="relu"),
                               layers.Dense(1, activation="sigmoid")])  # fmt: skip
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=1e-4), loss="binary_crossentropy",
                  metrics=["accuracy"])  # fmt: skip
    return model


IMDB = {  # book 6.1-6.4 on padded reviews: (maxlen, the layers after the input, batch size, RMSprop's lr)
    "imdb_embedding": (20, lambda layers: [layers.Embedding(10000, 8), layers.Flatten(),
                                           layers.Dense(1, activation="sigmoid")], 32, 1e-3),  # 6.1
    "imdb_conv1d": (500, lambda layers: [layers.Embedding(10000, 128), layers.Conv1D(32, 7, activation="relu"),
                                         layers.MaxPooling1D(5), layers.Conv1D(32, 7, activation="relu"),
                                         layers.GlobalMaxPooling1D(),
                                         layers.Dense(1)], 128, 1e-4),  # 6.4: no sigmoid, as the notebook has it
    "imdb_lstm": (500, lambda layers: [layers.Embedding(10000, 32), layers.LSTM(32),
                                       layers.Dense(1, activation="sigmoid")], 128, 1e-3),  # 6.2
    "imdb_simplernn": (500, lambda layers: [layers.Embedding(10000, 32), layers.SimpleRNN(32),
                                            layers.Dense(1, activation="sigmoid")], 128, 1e-3),  # 6.2
    "imdb_bilstm": (500, lambda layers: [layers.Embedding(10000, 32), layers.Bidirectional(layers.LSTM(32)),
                                         layers.Dense(1, activation="sigmoid")], 128, 1e-3),  # 6.3, reversed reviews
}  # fmt: skip
JENA = {  # book 6.3's recurrent layers before Dense(1), fed by the book's generator
    "jena_gru": lambda layers: [layers.GRU(32)],
    "jena_gru_dropout": lambda layers: [layers.GRU(32, dropout=0.2, recurrent_dropout=0.2)],
    "jena_gru_stacked": lambda layers: [layers.GRU(32, dropout=0.1, recurrent_dropout=0.5, return_sequences=True),
                                        layers.GRU(64, activation="relu", dropout=0.1, recurrent_dropout=0.5)],
    "jena_bigru": lambda layers: [layers.Bidirectional(layers.GRU(32))],
    "jena_dense": lambda layers: [layers.Flatten(), layers.Dense(32, activation="relu")],
    "jena_conv1d": lambda layers: [layers.Conv1D(32, 5, activation="relu"), layers.MaxPooling1D(3),  # book 6.4
                                   layers.Conv1D(32, 5, activation="relu"), layers.MaxPooling1D(3),
                                   layers.Conv1D(32, 5, activation="relu"), layers.GlobalMaxPooling1D()],
    "jena_conv_gru": lambda layers: [layers.Conv1D(32, 5, activation="relu"), layers.MaxPooling1D(3),  # step 3
                                     layers.Conv1D(32, 5, activation="relu"),
                                     layers.GRU(32, dropout=0.1, recurrent_dropout=0.5)],
}  # fmt: skip


def book_8_4_vae(keras, layers):
    """Book 8.4's VAE. Keras 3 needs two changes: the loss layer takes z_mean and z_log_var as inputs
    (a layer can no longer close over another layer's symbolic outputs), and the sampling is a layer
    of its own with a seed generator (Keras 3's `Lambda` cannot hold random state)."""
    from keras import ops

    latent_dim = 2
    input_img = keras.Input(shape=(28, 28, 1))
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(input_img)
    x = layers.Conv2D(64, 3, padding="same", activation="relu", strides=(2, 2))(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    shape_before_flattening = x.shape
    x = layers.Flatten()(x)
    x = layers.Dense(32, activation="relu")(x)
    z_mean = layers.Dense(latent_dim)(x)
    z_log_var = layers.Dense(latent_dim)(x)

    class Sampling(layers.Layer):
        def __init__(self):
            super().__init__()
            self.seed = keras.random.SeedGenerator(0)

        def call(self, inputs):
            z_mean, z_log_var = inputs  # z = mu + exp(log_var) * eps, as the book writes it
            return z_mean + ops.exp(z_log_var) * keras.random.normal(ops.shape(z_mean), seed=self.seed)

    z = Sampling()([z_mean, z_log_var])
    decoder_input = keras.Input((latent_dim,))
    x = layers.Dense(int(np.prod(shape_before_flattening[1:])), activation="relu")(decoder_input)
    x = layers.Reshape(shape_before_flattening[1:])(x)
    x = layers.Conv2DTranspose(32, 3, padding="same", activation="relu", strides=(2, 2))(x)
    x = layers.Conv2D(1, 3, padding="same", activation="sigmoid")(x)
    decoder = keras.Model(decoder_input, x)
    z_decoded = decoder(z)

    class CustomVariationalLayer(layers.Layer):
        def vae_loss(self, x, z_decoded, z_mean, z_log_var):
            x, z_decoded = ops.reshape(x, (-1,)), ops.reshape(z_decoded, (-1,))
            xent_loss = keras.losses.binary_crossentropy(x, z_decoded)
            kl_loss = -5e-4 * ops.mean(1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)
            return ops.mean(xent_loss + kl_loss)

        def call(self, inputs):
            self.add_loss(self.vae_loss(*inputs))
            return inputs[0]

    vae = keras.Model(input_img, CustomVariationalLayer()([input_img, z_decoded, z_mean, z_log_var]))
    vae.compile(optimizer="rmsprop", loss=None)
    return vae


def main() -> None:
    parser = argparse.ArgumentParser()
    tasks = [
        "mnist_dense",
        "mnist_convnet",
        "imdb_dense",
        "boston_fold",
        "cats_dogs_scratch",
        "cats_dogs_scratch_flow",
        "cats_dogs_augmented_flow",
        *IMDB,
        *JENA,
        "nietzsche_char_lstm",
        "mnist_vae",
    ]
    parser.add_argument("--task", choices=tasks, required=True)
    parser.add_argument("--arrays", required=True, help="npz exported by keras_compare.py (a directory for _flow)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras
    from keras import layers, models

    d = np.load(args.arrays) if args.arrays.endswith(".npz") else None

    class EpochTimes(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            row = {"epoch": epoch + 1, "epoch_s": round(time.perf_counter() - self.t0, 4)}
            row |= {k: float(v) for k, v in (logs or {}).items()}
            print(json.dumps(row), flush=True)

    if args.task == "mnist_dense":  # book 2.1
        train_images = d["x_train"].reshape((60000, 28 * 28)).astype("float32") / 255
        test_images = d["x_test"].reshape((10000, 28 * 28)).astype("float32") / 255
        train_labels = keras.utils.to_categorical(d["y_train"])
        test_labels = keras.utils.to_categorical(d["y_test"])
        network = models.Sequential([keras.Input((28 * 28,)), layers.Dense(512, activation="relu"),
                                     layers.Dense(10, activation="softmax")])  # fmt: skip
        network.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
        network.fit(train_images, train_labels, epochs=args.epochs or 5, batch_size=128, verbose=0,
                    callbacks=[EpochTimes()])  # fmt: skip
        test_loss, test_acc = network.evaluate(test_images, test_labels, verbose=0)
    elif args.task == "mnist_convnet":  # book 5.1
        train_images = d["x_train"].reshape((60000, 28, 28, 1)).astype("float32") / 255
        test_images = d["x_test"].reshape((10000, 28, 28, 1)).astype("float32") / 255
        train_labels = keras.utils.to_categorical(d["y_train"])
        test_labels = keras.utils.to_categorical(d["y_test"])
        model = models.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(32, (3, 3), activation="relu"),
                                   layers.MaxPooling2D((2, 2)), layers.Conv2D(64, (3, 3), activation="relu"),
                                   layers.MaxPooling2D((2, 2)), layers.Conv2D(64, (3, 3), activation="relu"),
                                   layers.Flatten(), layers.Dense(64, activation="relu"),
                                   layers.Dense(10, activation="softmax")])  # fmt: skip
        model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
        model.fit(train_images, train_labels, epochs=args.epochs or 5, batch_size=64, verbose=0,
                  callbacks=[EpochTimes()])  # fmt: skip
        test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=0)
    elif args.task == "imdb_dense":  # book 3.5 (b)

        def vectorize_sequences(sequences, lengths, dimension=10000):
            results = np.zeros((len(lengths), dimension), dtype="float32")
            for i, (row, n) in enumerate(zip(sequences, lengths, strict=True)):
                results[i, row[:n]] = 1.0
            return results

        x_train = vectorize_sequences(d["train_seq"], d["train_len"])
        x_test = vectorize_sequences(d["test_seq"], d["test_len"])
        y_train, y_test = d["y_train"].astype("float32"), d["y_test"].astype("float32")
        model = models.Sequential([keras.Input((10000,)), layers.Dense(16, activation="relu"),
                                   layers.Dense(16, activation="relu"),
                                   layers.Dense(1, activation="sigmoid")])  # fmt: skip
        model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
        model.fit(x_train, y_train, epochs=args.epochs or 4, batch_size=512, verbose=0, callbacks=[EpochTimes()])
        test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)
    elif args.task == "cats_dogs_scratch":  # book 5.2a; arrays instead of flow_from_directory (same images)
        x_train, x_val, x_test = (d[f"x_{s}"].astype("float32") / 255 for s in ("train", "val", "test"))
        y_train, y_val, y_test = (d[f"y_{s}"].astype("float32") for s in ("train", "val", "test"))
        model = book_5_2_model(keras, models, layers)
        model.fit(x_train, y_train, epochs=args.epochs or 30, batch_size=20, validation_data=(x_val, y_val),
                  verbose=0, callbacks=[EpochTimes()])  # fmt: skip
        test_loss, test_acc = model.evaluate(x_test, y_test, batch_size=20, verbose=0)
    elif args.task == "cats_dogs_scratch_flow":  # book 5.2a verbatim: JPEGs decoded by flow_from_directory
        from keras._tf_keras.keras.preprocessing.image import ImageDataGenerator

        base = Path(args.arrays)
        datagen = ImageDataGenerator(rescale=1.0 / 255)
        flows = {split: datagen.flow_from_directory(base / split, target_size=(150, 150), batch_size=20,
                                                    class_mode="binary")
                 for split in ("train", "validation", "test")}  # fmt: skip
        model = book_5_2_model(keras, models, layers)
        model.fit(flows["train"], steps_per_epoch=100, epochs=args.epochs or 30, validation_data=flows["validation"],
                  validation_steps=50, verbose=0, callbacks=[EpochTimes()])  # fmt: skip
        test_loss, test_acc = model.evaluate(flows["test"], steps=50, verbose=0)
    elif args.task == "cats_dogs_augmented_flow":  # book 5.2b verbatim: augmented JPEGs, Dropout(0.5), batch 32
        from keras._tf_keras.keras.preprocessing.image import ImageDataGenerator

        base = Path(args.arrays)
        train_datagen = ImageDataGenerator(rescale=1.0 / 255, rotation_range=40, width_shift_range=0.2,
                                           height_shift_range=0.2, shear_range=0.2, zoom_range=0.2,
                                           horizontal_flip=True)  # fmt: skip
        test_datagen = ImageDataGenerator(rescale=1.0 / 255)
        train_generator = train_datagen.flow_from_directory(base / "train", target_size=(150, 150), batch_size=32,
                                                            class_mode="binary")  # fmt: skip
        validation_generator = test_datagen.flow_from_directory(base / "validation", target_size=(150, 150),
                                                                batch_size=32, class_mode="binary")  # fmt: skip
        test_generator = test_datagen.flow_from_directory(base / "test", target_size=(150, 150), batch_size=20,
                                                          class_mode="binary")  # fmt: skip
        model = book_5_2_model(keras, models, layers, dropout=True)
        model.fit(train_generator, steps_per_epoch=100, epochs=args.epochs or 100,
                  validation_data=validation_generator, validation_steps=50, verbose=0,
                  callbacks=[EpochTimes()])  # fmt: skip
        test_loss, test_acc = model.evaluate(test_generator, steps=50, verbose=0)
    elif args.task == "mnist_vae":  # book 8.4: 10 epochs x 16, the 10,000 test images as validation
        x_train = d["x_train"].astype("float32").reshape((60000, 28, 28, 1)) / 255
        x_test = d["x_test"].astype("float32").reshape((10000, 28, 28, 1)) / 255
        vae = book_8_4_vae(keras, layers)
        history = vae.fit(x=x_train, y=None, shuffle=True, epochs=args.epochs or 10, batch_size=16,
                          validation_data=(x_test, None), verbose=0, callbacks=[EpochTimes()])  # fmt: skip
        test_loss = test_acc = history.history["val_loss"][-1]
    elif args.task in IMDB:  # book 6.1-6.4: Embedding -> ... -> Dense(1), validation_split=0.2
        maxlen, network, batch_size, lr = IMDB[args.task]
        model = models.Sequential([keras.Input((maxlen,)), *network(layers)])
        model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=lr), loss="binary_crossentropy",
                      metrics=["acc"])  # fmt: skip
        model.fit(d["x_train"], d["y_train"].astype("float32"), epochs=args.epochs or 10, batch_size=batch_size,
                  validation_split=0.2, verbose=0, callbacks=[EpochTimes()])  # fmt: skip
        test_loss, test_acc = model.evaluate(d["x_test"], d["y_test"].astype("float32"), batch_size=1024, verbose=0)
    elif args.task in JENA:  # book 6.3: recurrent layers -> Dense(1), the book's generator verbatim
        from book_generator import generator  # bench/book_generator.py

        float_data = d["float_data"]  # normalised with the training rows' statistics, as dlwp's
        lookback, step, delay, batch_size = (int(d[k]) for k in ("lookback", "step", "delay", "batch_size"))

        (t0, t1), (v0, v1) = d["train_rows"], d["val_rows"]  # dlwp's [start, stop): max_index = stop - delay
        train_gen = generator(float_data, lookback, delay, t0, t1 - delay, shuffle=True, step=step,
                              batch_size=batch_size)  # fmt: skip
        val_gen = generator(float_data, lookback, delay, v0, v1 - delay, step=step, batch_size=batch_size)
        val_steps = (v1 - delay - v0 - lookback) // batch_size
        model = models.Sequential([keras.Input((lookback // step, float_data.shape[-1])), *JENA[args.task](layers),
                                   layers.Dense(1)])  # fmt: skip
        model.compile(optimizer=keras.optimizers.RMSprop(), loss="mae")
        history = model.fit(train_gen, steps_per_epoch=int(d["steps_per_epoch"]), epochs=args.epochs or 20,
                            validation_data=val_gen, validation_steps=val_steps, verbose=0,
                            callbacks=[EpochTimes()])  # fmt: skip
        test_loss = test_acc = history.history["val_loss"][-1]  # the book never evaluated on test
    elif args.task == "nietzsche_char_lstm":  # book 8.1 verbatim: one-hot arrays of every window, fit per epoch
        text = str(d["text"]).lower()
        maxlen, step = 60, 3
        sentences = [text[i : i + maxlen] for i in range(0, len(text) - maxlen, step)]
        next_chars = [text[i + maxlen] for i in range(0, len(text) - maxlen, step)]
        chars = sorted(set(text))
        char_indices = {c: chars.index(c) for c in chars}
        x = np.zeros((len(sentences), maxlen, len(chars)), dtype=bool)
        y = np.zeros((len(sentences), len(chars)), dtype=bool)
        for i, sentence in enumerate(sentences):
            for t, char in enumerate(sentence):
                x[i, t, char_indices[char]] = 1
            y[i, char_indices[next_chars[i]]] = 1
        model = models.Sequential([keras.Input((maxlen, len(chars))), layers.LSTM(128),
                                   layers.Dense(len(chars), activation="softmax")])  # fmt: skip
        model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.RMSprop(learning_rate=0.01))
        history = model.fit(x, y, batch_size=128, epochs=args.epochs or 59, verbose=0, callbacks=[EpochTimes()])
        test_loss = test_acc = history.history["loss"][-1]  # the book reads the training loss
    else:  # book 3.7, fold 0 of 4, batch size 1
        train_data, train_targets = d["x_train"], d["y_train"]
        mean, std = train_data.mean(axis=0), train_data.std(axis=0)
        train_data = (train_data - mean) / std
        num_val = len(train_data) // 4
        val_data, val_targets = train_data[:num_val], train_targets[:num_val]
        partial_data, partial_targets = train_data[num_val:], train_targets[num_val:]
        model = models.Sequential([keras.Input((13,)), layers.Dense(64, activation="relu"),
                                   layers.Dense(64, activation="relu"), layers.Dense(1)])  # fmt: skip
        model.compile(optimizer="rmsprop", loss="mse", metrics=["mae"])
        model.fit(partial_data, partial_targets, validation_data=(val_data, val_targets), epochs=args.epochs or 100,
                  batch_size=1, verbose=0, callbacks=[EpochTimes()])  # fmt: skip
        test_loss, test_acc = model.evaluate(val_data, val_targets, verbose=0)
    import resource

    peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps({"test_loss": float(test_loss), "test_metric": float(test_acc), "peak_rss_mb": peak_rss_mb,
                      "keras": keras.__version__, "tensorflow": tf.__version__}))  # fmt: skip


if __name__ == "__main__":
    main()
