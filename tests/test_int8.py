"""Per-token int8 quantization of an ONNX graph (models/int8.py) on graphs small enough to check
by hand: accuracy against float32, rows independent of each other, embeddings kept exact."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from models.int8 import quantize_per_token

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


def _run(model: onnx.ModelProto, ids: np.ndarray) -> Any:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"ids": ids})[0]


def test_close_to_float32() -> None:
    ids = RNG.integers(0, len(TABLE), size=(4, 7))
    expected = 2 * TABLE[ids] @ WEIGHT
    got = _run(quantize_per_token(_graph()), ids)
    assert got.shape == expected.shape
    # 8-bit codes on both sides: about 1% of the typical magnitude
    assert np.abs(got - expected).max() < 0.03 * np.abs(expected).max()


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


def _matmul_graph(input_shape: list[Any]) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [*input_shape[:-1], WEIGHT.shape[1]])],
        [numpy_helper.from_array(WEIGHT, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize("shape", [(16,), (5, 16), (2, 3, 16), (2, 2, 3, 16), (2, 0, 16)])
def test_any_number_of_leading_dimensions(shape: tuple[int, ...]) -> None:
    x = RNG.normal(size=shape).astype(np.float32)
    quantized = quantize_per_token(_matmul_graph([f"d{i}" for i in range(len(shape) - 1)] + [16]))
    session = ort.InferenceSession(quantized.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x})[0]
    expected = x @ WEIGHT
    assert got.shape == expected.shape
    if expected.size:
        assert np.abs(got - expected).max() < 0.03 * np.abs(expected).max()


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
