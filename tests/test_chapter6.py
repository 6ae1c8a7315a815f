"""Chapter 6 on text: Keras-exact recurrent layers against the Keras 2.0.8 equations written out
by hand, the layer list of `SequenceNet`, reversed sequences, and the IMDB tasks learning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import MIRROR, dlwp, metric_rows, record, run_dirs
from dlwp.errors import ConfigError
from dlwp.model.recurrent import KerasRecurrent, Recurrent, hard_sigmoid
from dlwp.model.sequence import SequenceNet

# -- the Keras 2.0.8 equations, step by step in numpy ---------------------------------------------


def hsig(x):
    return np.clip(0.2 * x + 0.5, 0.0, 1.0)


def keras_steps(kind: str, layer: KerasRecurrent, x: np.ndarray) -> np.ndarray:
    """Keras 2.0.8's `step` of SimpleRNN / LSTM / GRU (implementation 0), no dropout; gate order
    LSTM i, f, c, o; GRU z, r, h. Returns the last h."""
    W, U, b = (p.detach().double().numpy() for p in (layer.kernel, layer.recurrent_kernel, layer.bias))
    n = layer.units
    h = np.zeros((x.shape[0], n))
    c = np.zeros_like(h)
    for t in range(x.shape[1]):
        xt = x[:, t]
        if kind == "simplernn":
            h = np.tanh(xt @ W + b + h @ U)
        elif kind == "lstm":
            k = [slice(g * n, (g + 1) * n) for g in range(4)]
            i = hsig(xt @ W[:, k[0]] + b[k[0]] + h @ U[:, k[0]])
            f = hsig(xt @ W[:, k[1]] + b[k[1]] + h @ U[:, k[1]])
            c = f * c + i * np.tanh(xt @ W[:, k[2]] + b[k[2]] + h @ U[:, k[2]])
            o = hsig(xt @ W[:, k[3]] + b[k[3]] + h @ U[:, k[3]])
            h = o * np.tanh(c)
        else:
            k = [slice(g * n, (g + 1) * n) for g in range(3)]
            z = hsig(xt @ W[:, k[0]] + b[k[0]] + h @ U[:, k[0]])
            r = hsig(xt @ W[:, k[1]] + b[k[1]] + h @ U[:, k[1]])
            hh = np.tanh(xt @ W[:, k[2]] + b[k[2]] + (r * h) @ U[:, k[2]])  # reset gate before the matmul
            h = z * h + (1 - z) * hh
    return h


@pytest.mark.parametrize("kind", ["simplernn", "lstm", "gru"])
def test_keras_cells_follow_the_keras_2_0_8_equations(kind):
    torch.manual_seed(0)
    layer = KerasRecurrent(kind, in_features=5, units=4).double()
    with torch.no_grad():
        layer.bias.uniform_(-0.5, 0.5)  # non-zero biases, so their place in each gate is checked too
    x = np.random.default_rng(0).normal(size=(3, 6, 5))
    got = layer(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, keras_steps(kind, layer, x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("kind", ["simplernn", "lstm", "gru"])
def test_keras_cells_run_in_float32_under_bf16_autocast(kind, dropout):
    """trainer.precision=bf16-mixed: the state is not rounded to bf16 at every step (and the GRU's
    update does not meet a bf16 gate and a float32 state), forward and backward."""
    torch.manual_seed(0)
    layer = KerasRecurrent(kind, 5, 4, dropout=dropout, recurrent_dropout=dropout)
    x = torch.randn(3, 30, 5).to(torch.bfloat16)  # as a bf16 layer before it hands over
    torch.manual_seed(1)
    expected = layer(x.float(), return_sequences=True)
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = layer(x, return_sequences=True)
    assert got.dtype == torch.float32 and torch.equal(got, expected)
    got.sum().backward()
    assert torch.isfinite(layer.recurrent_kernel.grad).all() and layer.recurrent_kernel.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["simplernn", "lstm", "gru"])
def test_the_dropout_path_with_masks_of_ones_equals_the_fused_path(kind, monkeypatch):
    """Two code paths compute each cell: per-gate masked matmuls (dropout) and the fused one."""
    torch.manual_seed(0)
    layer = KerasRecurrent(kind, 5, 4, dropout=0.3, recurrent_dropout=0.3).double().eval()
    x = torch.randn(3, 6, 5, dtype=torch.float64)
    fused = layer(x, return_sequences=True)
    monkeypatch.setattr(
        layer,
        "_masks",
        lambda like, width, rate: torch.ones(
            3 if kind == "gru" else 4 if kind == "lstm" else 1, 3, width, dtype=like.dtype
        ),
    )
    assert torch.allclose(layer.train()(x, return_sequences=True), fused, atol=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("dropout", [0.0, 0.4])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_gru_scan_gives_autograd_s_values_and_gradients(activation, dropout, return_sequences, monkeypatch):
    """KerasGRUScan's hand-written BPTT against autograd through the per-step GRU (same masks)."""
    torch.manual_seed(0)
    layer = KerasRecurrent("gru", 5, 4, dropout=dropout, recurrent_dropout=dropout, activation=activation,
                           native=False).double()  # fmt: skip
    with torch.no_grad():
        layer.bias.uniform_(-0.5, 0.5)
    x = torch.randn(3, 7, 5, dtype=torch.float64, requires_grad=True)
    masks = {w: (torch.rand(3, 3, w, dtype=torch.float64) > dropout) / (1 - dropout) for w in (5, 4)}
    weight = torch.randn(3, 7, 4, dtype=torch.float64) if return_sequences else torch.randn(3, 4, dtype=torch.float64)
    results = []
    for scan in (True, False):
        if scan:  # the scan itself, also without dropout (where the layer keeps autograd's fused step)
            m = (masks[5], masks[4]) if dropout else (None, None)
            out = layer._gru_scan(x, *m, return_sequences)
        else:  # the reference: the per-step path with masks (of ones without dropout), whose clamp
            # is exact, while torch's hardsigmoid backward uses a float32 1/6 even in float64
            monkeypatch.setattr(layer, "_masks", lambda like, width, rate: masks[width])
            monkeypatch.setattr(layer, "use_scan", False)
            out = layer(x, return_sequences=return_sequences)
        grads = torch.autograd.grad((out * weight).sum(), [x, *layer.parameters()])
        results.append((out.detach(), grads))
    (out_scan, grads_scan), (out_ref, grads_ref) = results
    torch.testing.assert_close(out_scan, out_ref, rtol=1e-10, atol=1e-12)
    for got, want in zip(grads_scan, grads_ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)


def test_gru_scan_passes_gradcheck():
    from dlwp.model.gru_scan import KerasGRUScan

    torch.manual_seed(1)
    xp = torch.randn(2, 5, 9, dtype=torch.float64, requires_grad=True)
    u = (0.5 * torch.randn(3, 9, dtype=torch.float64)).requires_grad_()
    masks = (torch.rand(3, 2, 3, dtype=torch.float64) > 0.3).double()
    for m in (None, masks):
        assert torch.autograd.gradcheck(lambda a, b, m=m: KerasGRUScan.apply(a, b, m, False), (xp, u))


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("dropout", [0.0, 0.4])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_native_loops_give_autograd_s_values_and_gradients(kind, activation, dropout, return_sequences, monkeypatch):
    """The C loops (`native: true`, float64) against autograd through the per-step cell, with
    the same input and recurrent dropout masks."""
    torch.manual_seed(0)
    layer = KerasRecurrent(kind, 5, 4, dropout=dropout, recurrent_dropout=dropout, activation=activation).double()
    with torch.no_grad():
        layer.bias.uniform_(-0.5, 0.5)
    gates = {"gru": 3, "lstm": 4}[kind]
    masks = {w: (torch.rand(gates, 3, w, dtype=torch.float64) > dropout) / (1 - dropout) for w in (5, 4)}
    x = torch.randn(3, 7, 5, dtype=torch.float64)
    results = []
    for native in (True, False):
        monkeypatch.setattr(layer, "native", native)
        monkeypatch.setattr(layer, "use_scan", False)  # the reference: autograd through each step, always
        # with masks (of ones without dropout): their step's clamp is exact, while torch's hardsigmoid
        # backward uses a float32 1/6 even in float64
        monkeypatch.setattr(layer, "_masks", lambda like, width, rate, native=native:
                            masks[width] if rate or not native else None)  # fmt: skip
        results.append(_run_layer(layer, x, return_sequences=return_sequences))
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_native_loops_pass_gradcheck(kind):
    from dlwp.model import native_rnn

    torch.manual_seed(1)
    gates, n = native_rnn.GATES[kind], 3
    xp = torch.randn(2, 5, gates * n, dtype=torch.float64, requires_grad=True)
    u = (0.5 * torch.randn(n, gates * n, dtype=torch.float64)).requires_grad_()
    masks = (torch.rand(gates, 2, n, dtype=torch.float64) > 0.3).double()
    loops = native_rnn.load(kind, torch.float64)
    for m in (None, masks):
        assert torch.autograd.gradcheck(lambda a, b, m=m: native_rnn.NativeScan.apply(a, b, m, False, loops), (xp, u))


def _run_layer(layer, x, threads: int | None = None, return_sequences: bool = True):
    """(output, input gradient, parameter gradients) of one forward and backward."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        x = x.detach().requires_grad_()
        out = layer(x, return_sequences=return_sequences)
        grads = torch.autograd.grad((out * torch.linspace(-1, 1, out.shape[-1])).sum(), [x, *layer.parameters()])
        return [out.detach(), *grads]
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("recurrent_dropout", [0.0, 0.3])
def test_native_loops_match_torch_ops_and_ignore_the_thread_count(kind, recurrent_dropout):
    """float32, a batch of three thread blocks (40 = 16 + 16 + 8 samples): the C loops give the
    torch ops' values to float rounding, and the same bits on one thread and on two (the output and
    the recurrent kernel's gradient: the input projection's matmuls are torch's, whose sums follow
    the thread count)."""
    torch.manual_seed(0)
    native = KerasRecurrent(kind, 6, 32, recurrent_dropout=recurrent_dropout)
    reference = KerasRecurrent(kind, 6, 32, recurrent_dropout=recurrent_dropout, native=False)
    reference.load_state_dict(native.state_dict())
    x = torch.randn(40, 50, 6)
    runs = []
    for layer, threads in ((native, 1), (native, 2), (reference, None)):
        torch.manual_seed(1)  # the same dropout masks
        runs.append(_run_layer(layer, x, threads))
    for i, (one, two, ref) in enumerate(zip(*runs, strict=True)):
        assert i not in (0, 3) or torch.equal(one, two)  # out, x, kernel, recurrent kernel, bias
        # the kernel's gradient sums 2,000 products in torch's matmul, in an order that follows the
        # thread count: on an AVX-512 host 1 and 2 threads differ by up to 3e-5 relative
        torch.testing.assert_close(one, two, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(one, ref, rtol=1e-4, atol=1e-4)


def test_native_loops_run_only_where_the_recurrent_kernel_is_small():
    from dlwp.model import native_rnn

    x = torch.zeros(2, 3, 4)
    assert native_rnn.loops_for("gru", x) is not None and native_rnn.loops_for("lstm", x) is not None
    assert native_rnn.loops_for("simplernn", x) is None and native_rnn.loops_for("gru", x.bfloat16()) is None
    assert native_rnn.fits("gru", 64) and native_rnn.fits("lstm", 32)
    assert not native_rnn.fits("lstm", 64) and not native_rnn.fits("gru", 65)  # torch's batched matmuls win there


def test_native_loops_restore_the_callers_denormal_mode():
    """The C loops flush denormals on their own thread only: the caller's numbers keep theirs."""
    tiny = torch.tensor([1e-39])
    torch.set_flush_denormal(False)
    try:
        _run_layer(KerasRecurrent("gru", 3, 4), torch.randn(2, 5, 3), threads=1)
        assert (tiny * 1.0).item() != 0.0
    finally:
        torch.set_flush_denormal(True)


@pytest.mark.parametrize("compiler", ["missing", "failing"])
def test_without_a_working_c_compiler_the_gru_warns_once_and_runs_torch_ops(compiler, monkeypatch, tmp_path):
    from dlwp.model import native_rnn

    monkeypatch.setenv("DLWP_CACHE_DIR", str(tmp_path))  # nothing built yet
    if compiler == "missing":
        monkeypatch.setenv("PATH", str(tmp_path))
        monkeypatch.setenv("CC", "")
    else:
        monkeypatch.setenv("CC", "false")
    native_rnn.load.cache_clear()
    try:
        torch.manual_seed(0)
        layer = KerasRecurrent("gru", 3, 4).double()
        x = torch.randn(2, 5, 3, dtype=torch.float64)
        with pytest.warns(UserWarning, match="(?s)native GRU loop is unavailable.*C compiler"):
            out = layer(x)
        assert native_rnn.loops_for("gru", x) is None  # decided once: no second warning
        layer.native = False
        assert torch.equal(out, layer(x))
    finally:
        native_rnn.load.cache_clear()


def test_keras_initialisation_forget_bias_orthogonal_recurrent_kernels():
    lstm = KerasRecurrent("lstm", 10, 8)
    assert torch.equal(lstm.bias, torch.cat([torch.zeros(8), torch.ones(8), torch.zeros(16)]))  # unit_forget_bias
    u = lstm.recurrent_kernel.detach().double()  # [8, 32]: orthonormal rows
    assert torch.allclose(u @ u.T, torch.eye(8, dtype=torch.float64), atol=1e-5)
    limit = (6 / (10 + 32)) ** 0.5  # glorot-uniform over Keras' [in, 4 * units] kernel
    biggest = float(lstm.kernel.detach().abs().max())
    assert 0.8 * limit < biggest <= limit
    assert torch.equal(hard_sigmoid(torch.tensor([-3.0, 0.0, 1.0, 3.0])), torch.tensor([0.0, 0.5, 0.7, 1.0]))


def test_gal_dropout_masks_are_drawn_once_per_sequence_and_only_in_training():
    """Every time step gets the same input: with the recurrent kernel at zero, each step's output
    depends only on that step's (masked) input, so equal outputs over time mean one mask."""
    torch.manual_seed(0)
    layer = Recurrent("simplernn", 6, 5, dropout=0.5, recurrent_dropout=0.5, return_sequences=True)
    with torch.no_grad():
        layer.layer.recurrent_kernel.zero_()
    x = torch.ones(4, 7, 6)
    out = layer.train()(x)
    assert torch.allclose(out, out[:, :1].expand_as(out)), "a mask drawn per time step would differ over time"
    assert not torch.allclose(out[0], out[1]), "each sequence draws its own masks"
    clean = layer.eval()(x)
    assert torch.allclose(clean, torch.tanh(x @ layer.layer.kernel + layer.layer.bias)[:, :1].expand_as(clean))


def test_bidirectional_go_backwards_and_the_torch_implementation():
    torch.manual_seed(0)
    x = torch.randn(2, 9, 3)
    bi = Recurrent("lstm", 3, 4, bidirectional=True)
    out = bi(x)
    assert out.shape == (2, 8)
    assert torch.allclose(out[:, :4], bi.layer(x)) and torch.allclose(out[:, 4:], bi.backward_layer(x.flip(1)))
    back = Recurrent("gru", 3, 4, go_backwards=True)
    assert torch.allclose(back(x), back.layer(x.flip(1)))
    fused = Recurrent("lstm", 3, 4, impl="torch", bidirectional=True, return_sequences=True)
    assert fused(x).shape == (2, 9, 8)
    with pytest.raises(ConfigError, match=r"impl=torch has no .* dropout"):
        Recurrent("gru", 3, 4, impl="torch", recurrent_dropout=0.2)
    with pytest.raises(ConfigError, match=r"choose keras .* or torch"):
        Recurrent("gru", 3, 4, impl="cudnn")


# -- SequenceNet: the layer list -------------------------------------------------------------------


def test_sequence_nets_have_the_books_parameter_counts():
    def params(layers, length):
        return sum(p.numel() for p in SequenceNet(layers, input_length=length).parameters())

    emb = {"type": "embedding", "input_dim": 10000}
    assert params([emb | {"output_dim": 8}, {"type": "flatten"}, {"type": "dense", "units": 1}], 20) == 80_161
    # Keras' SimpleRNN(32) has 2,080 and LSTM(32) 8,320 parameters on 32 inputs
    assert params(
        [emb | {"output_dim": 32}, {"type": "simplernn", "units": 32}, {"type": "dense", "units": 1}], 500
    ) == (320_000 + 2_080 + 33)
    assert params([emb | {"output_dim": 32}, {"type": "lstm", "units": 32}, {"type": "dense", "units": 1}], 500) == (
        320_000 + 8_320 + 33
    )
    conv = [emb | {"output_dim": 128}, {"type": "conv1d", "filters": 32, "kernel_size": 7, "activation": "relu"},
            {"type": "maxpool1d", "pool_size": 5}, {"type": "conv1d", "filters": 32, "kernel_size": 7},
            {"type": "globalmaxpool1d"}, {"type": "dense", "units": 1}]  # fmt: skip
    assert params(conv, 500) == 1_280_000 + 28_704 + 7_200 + 33  # book 6.4's summary: 1,315,937


def test_conv1d_and_maxpool1d_compute_keras_layers_on_channels_last_views():
    """Book 6.4's Conv1D and MaxPooling1D on `[batch, time, channels]`: the same values and gradients
    as torch's `conv1d` / `max_pool1d` on the transposed input, with an odd length that the pool
    truncates, and the layers pass views (no copy of the activations between them)."""
    from dlwp.model.sequence import Conv1d, MaxPool1d, as_nhwc

    torch.manual_seed(0)
    conv, pool = Conv1d(7, 5, 3, "relu"), MaxPool1d(3)
    x = torch.randn(4, 26, 7, dtype=torch.float64, requires_grad=True)
    conv.double()
    out = pool(conv(x))
    assert out.shape == (4, 8, 5) and out.is_contiguous()  # 26 - 3 + 1 = 24 steps, pooled by 3
    w, b = conv.conv.weight, conv.conv.bias
    ref = torch.nn.functional.max_pool1d(torch.relu(torch.nn.functional.conv1d(x.transpose(1, 2), w, b)), 3)
    torch.testing.assert_close(out, ref.transpose(1, 2))
    grads = torch.autograd.grad(out.square().sum(), (x, w, b))
    ref_grads = torch.autograd.grad(ref.square().sum(), (x, w, b))
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want)
    hidden = conv(x.detach())  # the conv's channels-last output, read back as [batch, time, channels]: no copy
    assert hidden.is_contiguous()
    image = as_nhwc(hidden)  # what the pool reads: the same memory, in the layout oneDNN takes without a copy
    assert image.data_ptr() == hidden.data_ptr() and image.is_contiguous(memory_format=torch.channels_last)


def test_sequence_net_errors_name_the_layer_and_what_it_takes():
    with pytest.raises(ConfigError, match=r"model.layers\[1\]: type 'lstn' is not a layer; choose from"):
        SequenceNet([{"type": "embedding", "input_dim": 10, "output_dim": 4}, {"type": "lstn", "units": 3}], 5)
    with pytest.raises(ConfigError, match=r"model.layers\[1\]: lstm has no argument 'unit'; it takes units, impl"):
        SequenceNet([{"type": "embedding", "input_dim": 10, "output_dim": 4}, {"type": "lstm", "unit": 3}], 5)
    with pytest.raises(ConfigError, match=r"lstm needs a sequence \[time, features\] as input, but gets shape \[20\]"):
        SequenceNet([{"type": "embedding", "input_dim": 10, "output_dim": 4}, {"type": "flatten"},
                     {"type": "lstm", "units": 3}], 5)  # fmt: skip


def test_an_unsigmoided_output_is_scored_with_keras_clipped_loss():
    """Book 6.4: Dense(1) with no sigmoid; Keras' loss takes the output as p, clipped to [1e-7, 1 - 1e-7]."""
    from dlwp.model.sequence import ProbabilityAsLogit
    from dlwp.task.heads import BinaryHead

    p = torch.tensor([0.3, 0.9, 1.7, -0.2], requires_grad=True)
    y = torch.tensor([0.0, 1.0, 1.0, 0.0])
    loss = BinaryHead().loss(ProbabilityAsLogit()(p), y)
    clipped = p.detach().clamp(1e-7, 1 - 1e-7)
    expected = -(y * clipped.log() + (1 - y) * (1 - clipped).log()).mean()
    assert torch.allclose(loss, expected)
    loss.backward()
    assert p.grad[2] == 0 and p.grad[3] == 0 and p.grad[0] != 0, "no gradient where Keras clips"


# -- data: reversed sequences ----------------------------------------------------------------------


def test_reversed_reviews_keep_their_first_words_last_first():
    from dlwp.data.text import Ragged, WordIndexDataModule, pad_sequences

    seqs = Ragged.from_lists([[1, 5, 6, 7, 8], [1, 9], []])
    assert seqs.reversed().tolist() == [[8, 7, 6, 5, 1], [9, 1], []]
    # book 6.3: [x[::-1] for x in x_train], then pad_sequences(maxlen): the review's first words
    assert pad_sequences(seqs.reversed(), maxlen=3).tolist() == [[6, 5, 1], [0, 9, 1], [0, 0, 0]]
    module = WordIndexDataModule(num_words=20, encoding="sequence", maxlen=3, reverse=True)
    assert module.inputs(seqs).tolist() == [[6, 5, 1], [0, 9, 1], [0, 0, 0]]
    with pytest.raises(ConfigError, match="reverse"):
        WordIndexDataModule(num_words=20, encoding="multi_hot", reverse=True)


# -- the tasks, learning on small subsets ----------------------------------------------------------

IMDB = MIRROR / "imdb"


@pytest.fixture(scope="module")
def imdb_data(tmp_path_factory) -> Path | None:
    """A data dir whose imdb/ links to the mirror's reviews (tokenised once, cached there for the
    module's tests); None without the mirror: the real-data tests then skip with a reason."""
    reviews, index = IMDB / "aclImdb_v1_labeled.tar.gz", IMDB / "imdb_word_index.json"
    if not (reviews.is_file() and index.is_file()):
        return None
    data = tmp_path_factory.mktemp("data")
    (data / "imdb").mkdir()
    (data / "imdb" / "aclImdb_v1.tar.gz").symlink_to(reviews)
    (data / "imdb" / "imdb_word_index.json").symlink_to(index)
    return data


@pytest.mark.parametrize(
    ("task", "subset", "extra"),
    [
        ("imdb_embedding", 8000, ["trainer.max_epochs=6"]),
        ("imdb_lstm", 2000, ["data.maxlen=80", "trainer.max_epochs=4", "model.layers.1.impl=torch"]),
        ("imdb_conv1d", 4000, ["data.maxlen=150", "trainer.max_epochs=4", "task.optimizer.lr=1e-3"]),
        ("imdb_conv1d_tensorboard", 4000, ["data.maxlen=150", "trainer.max_epochs=4"]),  # book 7.2.2
    ],
    ids=["embedding", "lstm-torch", "conv1d", "conv1d-tensorboard"],
)
def test_imdb_sequence_tasks_learn_on_real_reviews(task, subset, extra, imdb_data, tmp_path):
    if imdb_data is None:
        pytest.skip("the real IMDB reviews of the data mirror are absent")
    _learns(task, [f"paths.data_dir={imdb_data}", *_sizes(subset), *extra], tmp_path)


@pytest.mark.parametrize(
    ("task", "extra"),
    [
        ("imdb_simplernn", ["data.subset=3000", "data.val_size=750", "trainer.max_epochs=4"]),  # slower to learn
        ("imdb_lstm", []),
        ("imdb_lstm_reversed", ["model.layers.0.output_dim=32"]),
        ("imdb_bilstm", []),
    ],
    ids=["simplernn-keras", "lstm-keras", "lstm-reversed-keras", "bilstm-keras"],
)
def test_keras_recurrent_tasks_learn_on_synthetic_reviews(task, extra, tmp_path):
    """The Keras-exact cells loop over time in Python: short synthetic reviews (marker words per
    class; data.source=synthetic, named so) keep these quick."""
    args = ["data.source=synthetic", *_sizes(1000), "data.maxlen=40", "trainer.max_epochs=3", "data.batch_size=32"]
    _learns(task, [*args, *extra], tmp_path)


def _sizes(subset: int) -> list[str]:
    return [f"data.subset={subset}", f"data.val_size={subset // 4}"]


def _learns(task: str, args: list[str], tmp_path) -> None:
    dlwp("train", f"task={task}", *args, runs=tmp_path)
    (run_dir,) = run_dirs(tmp_path, task)
    rows = metric_rows(run_dir)
    rec = record(run_dir)
    assert rows[-1]["train/loss"] < rows[0]["train/loss"]
    assert rec["metrics"]["best"]["val/acc"]["value"] > 0.62, rows  # balanced classes: chance is 0.5


# -- 6.1c: raw text, Keras' Tokenizer, GloVe -------------------------------------------------------

GLOVE_SAMPLE = MIRROR / "glove" / "glove.6B.100d.sample.txt.gz"


def test_keras_tokenizer_ranks_by_count_then_first_appearance():
    from dlwp.data.imdb_text import KerasTokenizer
    from dlwp.data.text import Ragged

    words = ["a", "b", "c", "d", "e"]  # ids 0..4; "e" appears only in test texts
    train = Ragged.from_lists([[0, 1, 1, 2], [2, 2, 0, 3]])  # counts a 2, b 2, c 3, d 1
    tok = KerasTokenizer(num_words=4).fit(train, words, np.array([0, 1, 2, 3]))
    assert tok.word_index == {"c": 1, "a": 2, "b": 3, "d": 4}  # a before b: equal counts keep appearance
    # texts_to_sequences: indices >= num_words (d = 4) and unknown words (e) are dropped
    assert tok.encode(Ragged.from_lists([[3, 0, 4, 2], [1]])).tolist() == [[2, 1], [3]]


def test_glove_rows_follow_the_word_index_and_bad_files_name_the_line(tmp_path):
    from dlwp.data.glove import embedding_matrix
    from dlwp.errors import DataMissingError

    glove = tmp_path / "glove.6B.3d.txt"
    glove.write_text("the 0.1 0.2 0.3\nzebra 1 1 1\nof -1 0 2\n")
    matrix, found = embedding_matrix(glove, {"of": 1, "the": 3, "cat": 2, "rare": 9}, num_words=5, dim=3)
    assert found == 2 and matrix.shape == (5, 3)
    np.testing.assert_allclose(matrix[3], [0.1, 0.2, 0.3], rtol=1e-6)
    np.testing.assert_allclose(matrix[1], [-1, 0, 2])
    assert not matrix[[0, 2, 4]].any(), "padding and words GloVe lacks keep zero rows, as the book's matrix"
    with pytest.raises(DataMissingError, match=r"line 1 \('the'\) has 3 values, expected 50"):
        embedding_matrix(glove, {"the": 1}, num_words=5, dim=50)
    glove.write_text("the 0.1 0.2 0.3\nof 0.1 x 0.3\n")
    with pytest.raises(DataMissingError, match=r"line 2 \('of'\) is malformed"):
        embedding_matrix(glove, {"of": 1}, num_words=5, dim=3)
    with pytest.raises(DataMissingError, match="dlwp data fetch glove"):
        embedding_matrix(tmp_path / "missing.txt", {}, 5, 3)


def test_glove_task_tokenises_the_raw_reviews_as_keras_and_keeps_glove_frozen(imdb_data, tmp_path):
    if imdb_data is None or not GLOVE_SAMPLE.is_file():
        pytest.skip("needs the real IMDB reviews and the GloVe sample of the data mirror")
    dlwp("train", "task=imdb_glove", f"paths.data_dir={imdb_data}", f"data.glove={GLOVE_SAMPLE}",
         "trainer.max_epochs=4", "data.val_samples=2000", runs=tmp_path)  # fmt: skip
    (run_dir,) = run_dirs(tmp_path, "imdb_glove")
    rec = record(run_dir)
    assert rec["data"]["sizes"] == {"train": 200, "val": 2000, "test": 25000}
    # the sample holds GloVe's first 100 words; 85 of them are among the tokenizer's top 9,999
    assert rec["pretrained_embedding"] == {"glove": str(GLOVE_SAMPLE), "words_found": 85, "words": 9999,
                                           "trainable": False}  # fmt: skip
    from dlwp.checkpoints import load
    from dlwp.data.glove import embedding_matrix
    from dlwp.data.imdb_text import IMDBTextDataModule

    module = IMDBTextDataModule(reviews=str(imdb_data / "imdb" / "aclImdb_v1.tar.gz"), seed=0)
    module.setup("fit")
    assert len(module.word_index) == 9999 and module.word_index["the"] == 1 and module.word_index["br"] == 7
    matrix, _ = embedding_matrix(GLOVE_SAMPLE, module.word_index, 10000, 100)
    trained = load(run_dir / "checkpoints" / "last.ckpt")["state_dict"]["network.layers.0.weight"]
    assert torch.equal(trained, torch.from_numpy(matrix)), "a frozen Embedding ends as GloVe's vectors"
    rows = metric_rows(run_dir)
    assert rows[-1]["train/loss"] < rows[0]["train/loss"] and rows[-1]["train/acc"] > 0.8  # 200 reviews: learnt


@pytest.mark.parametrize("task", ["imdb_no_glove", "imdb_glove_trainable"])
def test_the_200_review_models_fit_their_training_reviews(task, imdb_data, tmp_path):
    """Book 6.1c's lesson is that 200 reviews do not generalise; what must hold is that they are learnt."""
    if imdb_data is None or (task == "imdb_glove_trainable" and not GLOVE_SAMPLE.is_file()):
        pytest.skip("needs the real IMDB reviews (and the GloVe sample) of the data mirror")
    glove = [f"data.glove={GLOVE_SAMPLE}"] if task == "imdb_glove_trainable" else []
    dlwp("train", f"task={task}", f"paths.data_dir={imdb_data}", *glove, "trainer.max_epochs=4",
         "data.val_samples=1000", runs=tmp_path)  # fmt: skip
    (run_dir,) = run_dirs(tmp_path, task)
    rows = metric_rows(run_dir)
    assert rows[-1]["train/loss"] < rows[0]["train/loss"] and rows[-1]["train/acc"] > 0.8, rows


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_the_compiled_loop_gives_the_eager_loop_s_values_and_gradients(kind, monkeypatch):
    """`compile=true` runs the same equations through inductor in chunks (here 2 chunks of 4
    steps); training and no-grad calls both compile."""
    from dlwp.model import fused_loop

    try:
        fused_loop.check_cpu_compiler()
    except ConfigError as e:
        pytest.skip(str(e))
    monkeypatch.setattr(fused_loop, "CHUNK_STEPS", 4)
    torch.manual_seed(0)
    eager = Recurrent(kind, 5, 4, return_sequences=True, native=False)  # torch ops, as compiled
    compiled = Recurrent(kind, 5, 4, return_sequences=True, compile=True)
    compiled.load_state_dict(eager.state_dict())
    x = torch.randn(3, 8, 5)
    results = []
    for layer in (eager, compiled):
        out = layer(x)
        grads = torch.autograd.grad(out.square().sum(), list(layer.parameters()))
        with torch.no_grad():
            results.append((out.detach(), grads, layer(x)))
    (out_e, grads_e, nograd_e), (out_c, grads_c, nograd_c) = results
    torch.testing.assert_close(out_c, out_e, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(nograd_c, nograd_e, rtol=1e-5, atol=1e-6)
    for got, want in zip(grads_c, grads_e, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_compile_on_a_cpu_without_a_cxx_compiler_says_what_to_install(monkeypatch, tmp_path):
    from dlwp.model import fused_loop

    monkeypatch.setenv("PATH", str(tmp_path))  # no g++, c++ or clang++ there
    monkeypatch.delenv("CXX", raising=False)
    fused_loop.check_cpu_compiler.cache_clear()
    with pytest.raises(ConfigError, match=r"needs a C\+\+ compiler .*apt-get install g\+\+"):
        Recurrent("gru", 3, 4, compile=True)(torch.randn(2, 5, 3))
    fused_loop.check_cpu_compiler.cache_clear()


def test_compile_is_refused_where_there_is_no_loop_to_compile():
    with pytest.raises(ConfigError, match="compile=true compiles the Keras cell's loop without dropout"):
        Recurrent("gru", 3, 4, compile=True, recurrent_dropout=0.2)
    with pytest.raises(ConfigError, match="torch's fused kernels need no compiling"):
        Recurrent("lstm", 3, 4, compile=True, impl="torch")
