"""TileLang's tilelang.quantize: expression helpers that unpack low-bit weights inside a kernel
(called while the kernel is parsed, e.g. `B_local[i] = _tir_packed_to_unsigned_convert("uint",
8)(4, B_packed[i // 2], i % 2, dtype="float16")`) and host helpers that make packed weights.

The fast-decoding helpers (`get_lop3_intrin_group`, `get_mxfp_intrin_group`, and
`interleave_weight`, which lays weights out for them) give CUDA inline-assembly sources called
through `T.import_source` / `T.call_extern`, which tilewise does not provide (the emulator cannot run
inline assembly): they raise, naming
the plain path (`fast_decoding=False` / `fast_dequant=False` in TileLang's examples)."""
from .convert import (  # noqa: F401
    _tir_packed_int_to_int_convert,
    _tir_packed_to_fp4_to_f16,
    _tir_packed_to_signed_convert,
    _tir_packed_to_unsigned_convert,
    _tir_packed_to_unsigned_convert_with_zeros,
    _tir_u8_to_f4_to_bf16,
    _tir_u8_to_f8_e4m3_to_f16,
    _tir_u32_to_f4_to_f32,
)
from .host import gen_quant4, general_compress, get_lop3_intrin_group, get_mxfp_intrin_group, interleave_weight  # noqa: F401
