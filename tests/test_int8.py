"""Per-token int8 quantization of an ONNX graph (models/int8.py) on graphs small enough to check
by hand: accuracy against float32 within the bound the rounding allows, exact integer products
where 16-bit kernels would saturate, rows independent of each other, embeddings kept exact.

Graphs run as the fast path runs them, in the formulation `integer_kernel` chose for this CPU;
`test_holds_on_a_cpu_without_vnni` runs this module again on an emulated AVX2-only CPU."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from models.int8 import (
    IntegerKernel,
    computes_exactly,
    for_this_cpu,
    integer_kernel,
    quantize_per_token,
    with_unsigned_weights,
)

RNG = np.random.default_rng(0)
WEIGHT = RNG.normal(size=(16, 8)).astype(np.float32)
TABLE = RNG.normal(size=(1200, 16)).astype(np.float16).astype(np.float32)  # float16 values, like e5's


def _graph(opset: int = 18) -> onnx.ModelProto:
    """ids [B, S] → embedding lookup → x @ W (twice, sharing the input) → sum of both."""
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["x"]),
        helper.make_node("MatMul", ["x", "w"], ["y1"]),
        helper.make_node("MatMul", ["x", "w"], ["y2"]),
        helper.make_node("Add", ["y1", "y2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "sequence", 8])],
        [numpy_helper.from_array(TABLE, "table"), numpy_helper.from_array(WEIGHT, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(for_this_cpu(model).SerializeToString(), providers=["CPUExecutionProvider"])


def _run(model: onnx.ModelProto, ids: np.ndarray) -> Any:
    return _session(model).run(None, {"ids": ids})[0]


def rounding_bound(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The most ``x @ w`` can move when each row of ``x`` and each column of ``w`` is rounded to
    127 steps of its own absolute maximum: each element moves by at most half a step, so
    |x̂ŵ − xw| ≤ Σₖ |xₖ|·s_w/2 + s_x/2·|wₖ| + s_x·s_w/4, with a little float slack on top."""
    step_x = np.abs(x).max(axis=-1, keepdims=True) / 127
    step_w = np.abs(w).max(axis=0) / 127
    bound = (
        np.abs(x).sum(axis=-1, keepdims=True) * step_w / 2
        + step_x / 2 * np.abs(w).sum(axis=0)
        + x.shape[-1] * step_x * step_w / 4
    )
    return bound * (1 + 1e-4) + 1e-5 * np.abs(x @ w) + 1e-6


def test_close_to_float32_within_the_rounding_bound() -> None:
    ids = RNG.integers(0, len(TABLE), size=(4, 7))
    expected = 2 * TABLE[ids] @ WEIGHT
    got = _run(quantize_per_token(_graph()), ids)
    assert got.shape == expected.shape
    assert (np.abs(got - expected) <= 2 * rounding_bound(TABLE[ids], WEIGHT)).all()


def _overflowing_inputs(rows: int, depth: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """x and w at ±1 whose codes are ±127 with one sign per pair of positions: each pair of u8×s8
    products sums to 255 × 127 × 2 = 64,770, past a 16-bit lane's 32,767."""
    pair, column = np.indices((depth, width))
    w = np.where((pair // 2 + column) % 3, 1.0, -1.0).astype(np.float32)
    row, position = np.indices((rows, depth))
    x = np.where((position // 2 + row) % 4, 1.0, -1.0).astype(np.float32)
    return x, w


@pytest.mark.parametrize("kernel", ["chosen for this CPU", "u8u8"])
def test_products_that_overflow_a_16_bit_pair_sum_are_exact(kernel: str) -> None:
    """Codes at the ends of their range: a saturating kernel gets these badly wrong, an exact one
    gives x @ w (the values are exactly ±127 steps). u8×u8 is checked on every CPU, because it is
    what CPUs without VNNI run."""
    x, w = _overflowing_inputs(rows=6, depth=64, width=16)
    quantized = quantize_per_token(_matmul_graph(["rows", 64], w))
    model = for_this_cpu(quantized) if kernel != "u8u8" else with_unsigned_weights(quantized)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x})[0]
    np.testing.assert_allclose(got, x @ w, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("kernel", ["u8s8", "u8u8"])
def test_both_formulations_compute_the_same_integers(kernel: IntegerKernel) -> None:
    """Where a formulation is exact on this CPU, it gives the other's results bit for bit, so the
    kernel a CPU runs never shows in the numbers."""
    if not computes_exactly(kernel):
        pytest.skip(f"{kernel} saturates on this CPU; the fast path runs the other one here")
    quantized = quantize_per_token(_graph())
    model = quantized if kernel == "u8s8" else with_unsigned_weights(quantized)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ids = RNG.integers(0, len(TABLE), size=(3, 5))
    np.testing.assert_array_equal(session.run(None, {"ids": ids})[0], _run(quantized, ids))


def test_the_chosen_kernel_is_exact_and_the_fallback_is_exact_everywhere() -> None:
    assert computes_exactly(integer_kernel())
    assert computes_exactly("u8u8")


QEMU = shutil.which("qemu-x86_64")


@pytest.mark.slow
@pytest.mark.skipif(
    QEMU is None or platform.machine() != "x86_64",
    reason="needs qemu-x86_64 on an x86-64 machine (.ci/run installs qemu-user)",
)
def test_holds_on_a_cpu_without_vnni() -> None:
    """This module, run again on an emulated Haswell (AVX2, no AVX-512, no VNNI): the probe must
    find u8×s8 saturating there and choose u8×u8, and every test above must pass."""
    script = (
        "import sys, pytest\n"
        "from models.int8 import computes_exactly, integer_kernel\n"
        "print('u8s8 exact:', computes_exactly('u8s8'), 'chosen:', integer_kernel(), flush=True)\n"
        "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '-k', 'not without_vnni', __file__]))\n"
    ).replace("__file__", repr(__file__))
    result = subprocess.run(
        [str(QEMU), "-cpu", "Haswell", sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.stdout.startswith("u8s8 exact: False chosen: u8u8"), result.stdout
    assert result.returncode == 0, result.stdout[-3000:]


def test_each_row_is_quantized_on_its_own() -> None:
    """A row gives bit-identical results alone or batched with rows of any size."""
    ids = RNG.integers(0, len(TABLE), size=(3, 5))
    ids[1, :] = 7  # a row of small values next to others: a shared range would change it
    quantized = quantize_per_token(_graph())
    together = _run(quantized, ids)
    for b in range(ids.shape[0]):
        np.testing.assert_array_equal(_run(quantized, ids[b : b + 1]), together[b : b + 1])


def test_rewrites_matmuls_and_keeps_the_table_in_float16() -> None:
    quantized = quantize_per_token(_graph())
    ops = [node.op_type for node in quantized.graph.node]
    assert "MatMul" not in ops and ops.count("MatMulInteger") == 2
    assert ops.count("QuantizeLinear") == 1  # both products share the quantized input
    tables = {t.name: t.data_type for t in quantized.graph.initializer}
    assert tables["table_fp16"] == TensorProto.FLOAT16
    assert "table" not in tables and "w" not in tables  # float32 copies dropped
    ids = RNG.integers(0, len(TABLE), size=(2, 3))
    lookup = onnx.ModelProto()
    lookup.CopyFrom(quantized)
    lookup.graph.output[0].CopyFrom(helper.make_tensor_value_info("x", TensorProto.FLOAT, None))
    np.testing.assert_array_equal(_run(lookup, ids), TABLE[ids])  # exact: the values were float16


def test_needs_opset_18() -> None:
    with pytest.raises(ValueError, match="opset 18"):
        quantize_per_token(_graph(opset=17))


def _matmul_graph(input_shape: list[Any], weight: np.ndarray = WEIGHT) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [*input_shape[:-1], weight.shape[1]])],
        [numpy_helper.from_array(weight, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize("shape", [(16,), (5, 16), (2, 3, 16), (2, 2, 3, 16), (2, 0, 16)])
def test_any_number_of_leading_dimensions(shape: tuple[int, ...]) -> None:
    x = RNG.normal(size=shape).astype(np.float32)
    quantized = quantize_per_token(_matmul_graph([f"d{i}" for i in range(len(shape) - 1)] + [16]))
    got = _session(quantized).run(None, {"x": x})[0]
    expected = x @ WEIGHT
    assert got.shape == expected.shape
    assert (np.abs(got - expected) <= rounding_bound(x, WEIGHT)).all()


def test_one_half_copy_per_table_and_inexact_tables_kept() -> None:
    """A table read by two lookups is copied once; a table float16 cannot hold exactly (a
    fine-tuned encoder's) stays float32."""
    exact = quantize_per_token(_graph())
    inexact_model = _graph()
    inexact_values = RNG.normal(size=TABLE.shape).astype(np.float32)  # not float16 values
    inexact_model.graph.initializer[0].CopyFrom(numpy_helper.from_array(inexact_values, "table"))
    inexact = quantize_per_token(inexact_model)
    assert "Cast" not in [node.op_type for node in inexact.graph.node]
    assert {t.name for t in inexact.graph.initializer} >= {"table"}
    twice = _graph()
    twice.graph.node.insert(1, helper.make_node("Gather", ["table", "ids"], ["x_again"]))
    names = [t.name for t in quantize_per_token(twice).graph.initializer]
    assert names.count("table_fp16") == 1
    assert [t.name for t in exact.graph.initializer].count("table_fp16") == 1
