"""The cpu form's layers whose backward is written by hand (``bprop``, ``src/models/cpu_kernels.py``): values and
gradients against MindSpore's own kernels and their automatic gradients, in graph mode, and against NumPy; and the
native LayerNorm against NumPy."""
import numpy as np
import mindspore as ms
import pytest
from mindspore import nn, ops

from src.models.cpu_kernels import CpuLayerNorm, RowBiasAdd, RowPermutation, Softmax, head_rows
from src.models.layers import LayerNorm

RNG = np.random.default_rng(7)


def tensor(*shape, scale=1.0, shift=0.0):
    return ms.Tensor((RNG.standard_normal(shape) * scale + shift).astype(np.float32))


class WeightedSum(nn.Cell):
    """sum(f(x) * w + f(x)^2): a loss whose gradient reaches every output element with a different weight."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def construct(self, x, w):
        y = self.fn(x)
        return (y * w + y * y).sum()


def gradients(cell, *args, weights=None):
    grad = ms.jit(ms.grad(cell, grad_position=0, weights=weights))
    out = grad(*args)
    if weights is None:
        return [out.asnumpy()]
    dx, dw = out
    return [dx.asnumpy()] + [g.asnumpy() for g in dw]


def test_softmax_values_and_gradient_match_mindspore_softmax():
    x, w = tensor(2, 3, 6, 9, scale=4.0), tensor(2, 3, 6, 9)
    ours, theirs = Softmax(9), ops.Softmax(axis=-1)
    np.testing.assert_array_equal(ours(x).asnumpy(), theirs(x).asnumpy())
    got, = gradients(WeightedSum(ours), x, w)
    expected, = gradients(WeightedSum(theirs), x, w)
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


class Gathers(nn.Cell):
    """The three parts of a packed projection split by ``ops.gather`` (MindSpore's own gradient)."""

    def __init__(self, index_lists):
        super().__init__()
        self.index = [ms.Tensor(np.asarray(i, np.int32)) for i in index_lists]

    def construct(self, x):
        return tuple(ops.gather(x, i, 1) for i in self.index)


class PartsLoss(nn.Cell):
    def __init__(self, split):
        super().__init__()
        self.split = split

    def construct(self, x, w):
        a, b, c = self.split(x)
        return (a * w).sum() + (b * b).sum() - (c * w * 3.0).sum()


def test_row_permutation_matches_gather_and_its_gradient():
    tokens, heads = 5, 3
    lists = [head_rows(tokens, heads, part, 3) for part in range(3)]
    x, w = tensor(2, 3 * tokens * heads, 4), tensor(2, tokens * heads, 4)
    ours, theirs = RowPermutation(lists), Gathers(lists)
    for a, b in zip(ours(x), theirs(x)):
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())
    got, = gradients(PartsLoss(ours), x, w)
    expected, = gradients(PartsLoss(theirs), x, w)
    np.testing.assert_array_equal(got, expected)


def test_row_permutation_merge_inverts_split():
    index = head_rows(4, 2, 0, 1)
    x = tensor(3, 8, 5)
    split, merge = RowPermutation([index]), RowPermutation([np.argsort(index)])
    np.testing.assert_array_equal(merge(split(x)[0])[0].asnumpy(), x.asnumpy())


def test_row_permutation_refuses_index_lists_that_are_not_a_permutation():
    with pytest.raises(ValueError, match="permutation"):
        RowPermutation([[0, 1], [1, 3]])


def numpy_layer_norm(x, gamma, beta, eps=1e-5):
    x = x.astype(np.float64)
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


class KernelLayerNorm(nn.Cell):
    """MindSpore's LayerNorm kernel with the parameters of ``norm`` (automatic gradient: LayerNormGrad)."""

    def __init__(self, norm):
        super().__init__()
        self.norm = norm
        self.kernel = ops.LayerNorm(begin_norm_axis=-1, begin_params_axis=-1, epsilon=1e-5)

    def construct(self, x):
        y, _, _ = self.kernel(x.reshape(-1, x.shape[-1]), self.norm.gamma, self.norm.beta)
        return y.reshape(x.shape)


def test_native_layer_norm_matches_numpy():
    """The native form's LayerNorm: MindSpore's kernel with PyTorch's eps (1e-5, not MindSpore's default 1e-7)."""
    dim = 12
    norm = LayerNorm(dim)
    norm.gamma.set_data(tensor(dim, shift=1.0))
    norm.beta.set_data(tensor(dim))
    x = tensor(2, 7, dim, scale=5.0, shift=3.0)
    expected = numpy_layer_norm(x.asnumpy(), norm.gamma.asnumpy(), norm.beta.asnumpy())
    np.testing.assert_allclose(norm(x).asnumpy(), expected, rtol=1e-5, atol=2e-6)


def test_cpu_layer_norm_values_and_gradients_match_the_kernel_and_numpy():
    dim = 12
    norm = CpuLayerNorm(dim)
    norm.gamma.set_data(tensor(dim, shift=1.0))
    norm.beta.set_data(tensor(dim))
    x, w = tensor(2, 7, dim, scale=5.0, shift=3.0), tensor(2, 7, dim)  # a mean far from 0: centring matters
    expected = numpy_layer_norm(x.asnumpy(), norm.gamma.asnumpy(), norm.beta.asnumpy())
    np.testing.assert_allclose(norm(x).asnumpy(), expected, rtol=1e-5, atol=2e-6)
    kernel = KernelLayerNorm(norm)
    np.testing.assert_allclose(norm(x).asnumpy(), kernel(x).asnumpy(), rtol=1e-5, atol=2e-6)
    params = [norm.gamma, norm.beta]
    got = gradients(WeightedSum(norm), x, w, weights=params)
    wanted = gradients(WeightedSum(kernel), x, w, weights=params)
    for name, a, b in zip(("x", "gamma", "beta"), got, wanted):
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=name)


def test_row_bias_add_gradient_matches_bias_add():
    class Loss(nn.Cell):
        def __init__(self, add):
            super().__init__()
            self.add = add

        def construct(self, x, b):
            y = self.add(x, b)
            return (y * y * x).sum()

    x, b = tensor(6, 5), tensor(5)
    for ours, theirs in zip(ms.jit(ms.grad(Loss(RowBiasAdd()), grad_position=(0, 1)))(x, b),
                            ms.jit(ms.grad(Loss(ops.BiasAdd()), grad_position=(0, 1)))(x, b)):
        np.testing.assert_allclose(ours.asnumpy(), theirs.asnumpy(), rtol=1e-5, atol=1e-6)
