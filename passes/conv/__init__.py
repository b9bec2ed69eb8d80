"""Conv rewrites: exact lowerings (im2col, 1x1 as GEMM, Winograd), channel-shuffle recognition and
elimination, approximate factorisations (depthwise-separable, spatial, low-rank, group+shuffle)
and the architecture-block recognisers. One pass per module; ``lwc.passes.BUILTIN_PASSES`` maps
names to modules."""
