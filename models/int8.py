"""int8 quantization of an exported encoder graph that keeps every sentence's result its own.

ONNX Runtime's and PyTorch's dynamic quantization scale a layer's input by one range for the
whole tensor, that is for the whole batch. A sentence's vector then depends on the sentences
it is batched with: measured on the default model, 30 of 400 sentiment labels changed when
the same sentences were batched differently. A pipeline whose labels depend on what else was
in the input cannot promise that a backfill gives what running each date alone gives.

Here each token row gets its own scale (symmetric absmax, int8 codes stored as uint8 around
128), the weights one scale per output channel, and the product is computed in integers by
``MatMulInteger``. Every quantity a sentence's rows see comes from those rows alone, so its
vector is the same in any batch (to float rounding, about 1e-7), and the finer scales are
also more accurate than a per-tensor range: 97-98% of sentence labels agree with float32,
against 93% for per-tensor dynamic quantization.

The word-embedding table, most of the file even after vocabulary trimming, is stored in
float16 and cast back on lookup when that loses nothing: the default encoder's weights are
float16 already. A table with other values (a fine-tuned encoder's) stays float32.

**The same integers on every CPU.** The file holds one formulation, uint8 codes × int8 weights,
whose exact integer product is what every result is computed from. How ONNX Runtime's kernels
add those products up depends on the CPU:

- with AVX-512 VNNI, AVX-VNNI or AMX, four u8×s8 products go straight into a 32-bit sum: exact;
- with AVX2 or AVX-512 without VNNI, ``vpmaddubsw`` first adds two u8×s8 products into a
  *saturating* 16-bit lane: 255 × 127 × 2 = 64,770 does not fit in 32,767, so codes near the
  ends of their range give silently wrong sums (about half of the output's range on a toy graph);
- on ARM64, the u8×s8 kernels move the uint8 operand to int8 and use ``sdot`` or widening
  multiplies, and uint8 × uint8 uses ``udot`` or ``umull``: both exact by construction, but the
  probe below decides there too instead of trusting that reading.

uint8 × uint8 (the weights shifted by 128, with a zero point of 128) is computed everywhere by
widening to 16 bits and multiply-adding into 32 (``vpmaddwd``, VNNI-INT8, ``udot``/``umull``), which
cannot saturate: 255 × 255 × 2 = 130,050 is far inside a 32-bit lane. Both formulations give the
same exact integers, so the results, the file and the model version are the same whichever one
runs. `integer_kernel` decides once per process, by running ONNX Runtime on a product that
overflows a 16-bit pair sum and checking it exactly: the fast u8×s8 kernels where they are exact,
else `with_unsigned_weights` rewrites the loaded graph to u8×u8.
"""

from __future__ import annotations

import functools
import typing
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import onnx

# Bump when the rewrite computes anything differently: fast-encoder folders built by an older
# rewrite are rebuilt (models/fast_encoder.py).
INT8_VERSION = 1
# symmetric codes in [-127, 127], shifted into uint8 so MatMulInteger can use its fast u8×s8
# kernels; the shift is the same for every row, so one zero point serves them all
_LEVELS = 127
_ZERO_POINT = 128
_EMBEDDING_ROWS = 1000  # a Gather over a float table this long is an embedding lookup

IntegerKernel = Literal["u8s8", "u8u8"]


class _Builder:
    """Collects the nodes and initializers of the rewritten graph."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        from onnx import numpy_helper

        self.weights = {t.name: t for t in graph.initializer}
        self.nodes: list[onnx.NodeProto] = []
        self.added: list[onnx.TensorProto] = [
            numpy_helper.from_array(np.array(1.0 / _LEVELS, np.float32), "q8_inverse_levels"),
            numpy_helper.from_array(np.array(1e-12, np.float32), "q8_tiny"),
            numpy_helper.from_array(np.array([_ZERO_POINT], np.uint8), "q8_zero_point_1d"),
            numpy_helper.from_array(np.array(_ZERO_POINT, np.uint8), "q8_zero_point"),
            numpy_helper.from_array(np.array([-1], np.int64), "q8_last_axis"),
            numpy_helper.from_array(np.array([0], np.int64), "q8_first"),
        ]
        self.quantized: dict[str, tuple[str, str, str]] = {}  # input → (codes, row scales, leading shape)
        self.halved: set[str] = set()  # tables already copied to float16

    def node(self, op: str, inputs: list[str], output: str, **attributes: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], **attributes))
        return output

    def constant(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.added.append(numpy_helper.from_array(value, name))
        return name

    def quantize_rows(self, x: str, width: int) -> tuple[str, str, str]:
        """``x`` [..., width] as uint8 codes [M, width] with one scale per row [M]; done once per
        input (the query, key and value projections share theirs)."""
        if x in self.quantized:
            return self.quantized[x]
        p = f"q8_{len(self.quantized)}"
        shape = self.node("Shape", [x], f"{p}_shape")
        lead = self.node("Slice", [shape, "q8_first", "q8_last_axis"], f"{p}_lead")
        rows = self.node(
            "Reshape", [x, self.constant(f"{p}_2d", np.array([-1, width], dtype=np.int64))], f"{p}_x"
        )
        top = self.node("ReduceMax", [rows, "q8_last_axis"], f"{p}_max", keepdims=1)
        bottom = self.node("ReduceMin", [rows, "q8_last_axis"], f"{p}_min", keepdims=1)
        absmax = self.node("Max", [top, self.node("Neg", [bottom], f"{p}_neg"), "q8_tiny"], f"{p}_absmax")
        scale_2d = self.node("Mul", [absmax, "q8_inverse_levels"], f"{p}_scale_2d")
        scale = self.node("Reshape", [scale_2d, "q8_last_axis"], f"{p}_scale")
        zero = self.node("Expand", ["q8_zero_point_1d", self.node("Shape", [scale], f"{p}_m")], f"{p}_zero")
        codes = self.node("QuantizeLinear", [rows, scale, zero], f"{p}_codes", axis=0)
        self.quantized[x] = (codes, scale, lead)
        return self.quantized[x]

    def int8_matmul(self, node: onnx.NodeProto, weight: np.ndarray) -> None:
        """``node`` (x @ W with W constant [K, N]) as an integer product of row-scaled codes."""
        p = f"q8w_{len(self.nodes)}"
        column_scale = np.maximum(np.abs(weight).max(axis=0), 1e-12) / _LEVELS
        weight_codes = np.clip(np.round(weight / column_scale), -_LEVELS, _LEVELS).astype(np.int8)
        codes, row_scale, lead = self.quantize_rows(node.input[0], weight.shape[0])
        weight_name = self.constant(f"{p}_w", weight_codes)
        product = self.node("MatMulInteger", [codes, weight_name, "q8_zero_point"], f"{p}_int")
        rows_scaled = self.node("DequantizeLinear", [product, row_scale], f"{p}_rows", axis=0)
        column_name = self.constant(f"{p}_ws", column_scale.astype(np.float32))
        scaled = self.node("Mul", [rows_scaled, column_name], f"{p}_y")
        width = self.constant(f"{p}_n", np.array([weight.shape[1]], dtype=np.int64))
        shape = self.node("Concat", [lead, width], f"{p}_shape", axis=0)
        # allowzero: a 0 in the shape is a dimension of size 0, not "copy the input's"
        self.node("Reshape", [scaled, shape], node.output[0], allowzero=1)

    def half_lookup(self, node: onnx.NodeProto, table: np.ndarray) -> None:
        """A Gather from a float16 copy of ``table``, cast back to float32."""
        half = f"{node.input[0]}_fp16"
        if half not in self.halved:
            self.constant(half, table.astype(np.float16))
            self.halved.add(half)
        attributes = {a.name: a.i for a in node.attribute}  # axis
        looked_up = self.node("Gather", [half, node.input[1]], f"{node.output[0]}_fp16", **attributes)
        self.node("Cast", [looked_up], node.output[0], to=1)  # 1 = FLOAT


def _float16_exact(table: np.ndarray) -> bool:
    return bool(np.array_equal(table.astype(np.float16).astype(np.float32), table))


def quantize_per_token(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with every MatMul by a constant 2-D float weight in int8 (per-token
    activations, per-channel weights), and large embedding tables whose values float16 holds
    exactly stored in float16."""
    import onnx
    from onnx import TensorProto, numpy_helper

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 18:
        raise ValueError(f"per-token quantization needs ONNX opset 18 or newer, the graph has {opset}")
    result = onnx.ModelProto()
    result.CopyFrom(model)
    graph = result.graph
    build = _Builder(graph)
    for node in graph.node:
        weight = build.weights.get(node.input[1]) if len(node.input) > 1 else None
        table = build.weights.get(node.input[0]) if node.input else None
        if (
            node.op_type == "MatMul"
            and weight is not None
            and len(weight.dims) == 2
            and weight.data_type == TensorProto.FLOAT
        ):
            build.int8_matmul(node, numpy_helper.to_array(weight).astype(np.float32))
        elif (
            node.op_type == "Gather"
            and table is not None
            and table.data_type == TensorProto.FLOAT
            and len(table.dims) == 2
            and table.dims[0] >= _EMBEDDING_ROWS
            and _float16_exact(values := numpy_helper.to_array(table))
        ):
            build.half_lookup(node, values)
        else:
            build.nodes.append(node)
    used = {name for node in build.nodes for name in node.input}
    initializers = [t for t in [*graph.initializer, *build.added] if t.name in used]
    del graph.node[:]
    graph.node.extend(build.nodes)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    onnx.checker.check_model(result)
    return result


def with_unsigned_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose ``MatMulInteger`` weights are uint8 (code + 128, zero point 128)
    instead of int8: the same integer products, computed by kernels that cannot saturate."""
    import onnx
    from onnx import TensorProto, numpy_helper

    result = onnx.ModelProto()
    result.CopyFrom(model)
    graph = result.graph
    by_name = {t.name: t for t in graph.initializer}
    shifted: set[str] = set()
    for node in graph.node:
        if node.op_type != "MatMulInteger" or node.input[1] not in by_name:
            continue
        weight = by_name[node.input[1]]
        if weight.data_type != TensorProto.INT8:
            continue
        if weight.name not in shifted:
            codes = numpy_helper.to_array(weight).astype(np.int16) + _ZERO_POINT
            weight.CopyFrom(numpy_helper.from_array(codes.astype(np.uint8), weight.name))
            shifted.add(weight.name)
        while len(node.input) < 4:
            node.input.append("")
        node.input[3] = "q8_zero_point"
    if shifted and "q8_zero_point" not in by_name:
        graph.initializer.append(numpy_helper.from_array(np.array(_ZERO_POINT, np.uint8), "q8_zero_point"))
    return result


_PROBE_DEPTH, _PROBE_WIDTH = 64, 32


def _probe_weights() -> np.ndarray:
    """Weights at ±127, with one sign for each pair of rows (the pairs a 16-bit kernel adds)."""
    pair, column = np.indices((_PROBE_DEPTH, _PROBE_WIDTH))
    return np.where((pair // 2 + column) % 3, _LEVELS, -_LEVELS).astype(np.int8)


def _probe_codes(rows: int) -> np.ndarray:
    """Codes at 255 or 1 in pairs: next to `_probe_weights`, 255 × 127 × 2 = 64,770 overflows a
    16-bit pair sum, and the positive and negative sums do not cancel."""
    row, pair = np.indices((rows, _PROBE_DEPTH))
    return np.where((pair // 2 + row) % 4, 255, 1).astype(np.uint8)


def _probe_model(kernel: IntegerKernel) -> onnx.ModelProto:
    """One ``MatMulInteger`` of codes by a constant weight, laid out as `quantize_per_token`
    lays out its products, in the given formulation."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["codes", "w", "q8_zero_point"], ["y"])],
        "overflow_probe",
        [helper.make_tensor_value_info("codes", TensorProto.UINT8, ["rows", _PROBE_DEPTH])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, ["rows", _PROBE_WIDTH])],
        [
            numpy_helper.from_array(_probe_weights(), "w"),
            numpy_helper.from_array(np.array(_ZERO_POINT, np.uint8), "q8_zero_point"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    return with_unsigned_weights(model) if kernel == "u8u8" else model


def computes_exactly(kernel: IntegerKernel) -> bool:
    """Whether ONNX Runtime, on this CPU, gives the exact integer product in this formulation
    for codes at the ends of their range, where two u8×s8 products overflow 16 bits.

    One row and many rows are both tried: ONNX Runtime has separate kernels for them."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        _probe_model(kernel).SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    for rows in (1, 64):
        codes = _probe_codes(rows)
        exact = (codes.astype(np.int64) - _ZERO_POINT) @ _probe_weights().astype(np.int64)
        if not np.array_equal(session.run(None, {"codes": codes})[0], exact):
            return False
    return True


class NoExactKernelError(RuntimeError):
    """ONNX Runtime computes neither formulation exactly on this CPU."""


@functools.cache
def integer_kernel() -> IntegerKernel:
    """The formulation this process runs `quantize_per_token`'s graphs in: u8×s8 where this CPU
    computes it exactly (VNNI, AMX), else u8×u8."""
    for kernel in typing.get_args(IntegerKernel):
        if computes_exactly(kernel):
            return kernel
    raise NoExactKernelError("ONNX Runtime computes no int8 matrix product exactly on this CPU")


def for_this_cpu(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` (from `quantize_per_token`) in the formulation `integer_kernel` chose."""
    return model if integer_kernel() == "u8s8" else with_unsigned_weights(model)
