"""Reading a converted TFLite flatbuffer: which operators it runs, in order."""

from __future__ import annotations

import collections

from tensorflow.lite.python import schema_py_generated as schema

__all__ = ["op_histogram", "op_names"]

_BUILTIN_NAMES = {
    code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")
}


def op_names(flatbuffer: bytes) -> list[str]:
    """The operators of the flatbuffer's main subgraph, in execution order.

    Builtin operators by their TFLite name (`CONV_2D`, `FULLY_CONNECTED`, ...), custom
    ones by their custom code (`LceBconv2d`, `LceQuantize`, `LceDequantize`, ...).
    """
    model = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    codes = []
    for opcode in model.operatorCodes:
        # Builtin codes past 127 live in `builtinCode`; older files use the deprecated byte.
        builtin = max(opcode.builtinCode, opcode.deprecatedBuiltinCode)
        if builtin == schema.BuiltinOperator.CUSTOM:
            custom = opcode.customCode
            codes.append(custom.decode() if isinstance(custom, bytes) else custom)
        else:
            codes.append(_BUILTIN_NAMES[builtin])
    return [codes[op.opcodeIndex] for op in model.subgraphs[0].operators]


def op_histogram(flatbuffer: bytes) -> dict[str, int]:
    """How many times each operator occurs in the flatbuffer's main subgraph."""
    return dict(collections.Counter(op_names(flatbuffer)))
