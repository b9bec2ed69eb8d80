"""Kernel generators. Each one turns a frozen spec (op, shapes, schedule) into one LLVM function
``void k(ptr *args, i64 lo, i64 hi)``; the spec's repr is the kernel cache key."""
