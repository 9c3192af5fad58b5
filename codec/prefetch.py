"""A cache prefetch hint for compiled kernels: `prefetch(table, i, j)` asks the CPU to
start loading `table[i, j]` and returns at once.

The context-mixing coder (mixing.py) reads one byte per context from tables of tens
of megabytes at hashed places: each read misses every cache, and the kernel used to
wait for them one after another (about 65 ns each on this project's 2-core EPYC
machine: 810-930 ns a bit for 13 contexts, 265-315 with the reads hinted a bit
ahead; `python -m fpcodec.bench.mixer_reads`). The hint changes no result, only
when memory arrives, so encoder and decoder stay bit-exact with or without it. numba
has no such call; this one emits LLVM's `llvm.prefetch` (read, high locality, data
cache).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def prefetch(typingctx, table, i, j):
    """Hint that table[i, j] (a 2-D C-contiguous array) will be read soon. Indices are
    not checked: a prefetch of any address is harmless, so callers may pass one that
    the next read might not use."""
    sig = types.void(table, i, j)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ii = context.cast(builder, args[1], signature.args[1], types.intp)
        jj = context.cast(builder, args[2], signature.args[2], types.intp)
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [ii, jj], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        # rw 0 (read), locality 3 (keep in all levels), cache type 1 (data)
        builder.call(
            fn,
            [
                builder.bitcast(ptr, i8p),
                ir.Constant(i32, 0),
                ir.Constant(i32, 3),
                ir.Constant(i32, 1),
            ],
        )
        return context.get_dummy_value()

    return sig, codegen
