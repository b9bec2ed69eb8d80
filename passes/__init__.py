"""Built-in passes, imported lazily: ``BUILTIN_PASSES`` maps a pass name to the module that
registers it, so ``import lwc`` stays fast and a pipeline only imports the passes it names.

Add a line here for every new built-in pass (one pass per module; ``module:Class`` is informative,
importing the module is what registers the pass). Third-party passes use the ``lwc.passes``
entry-point group instead (see docs/writing-a-pass.md).
"""

BUILTIN_PASSES: dict[str, str] = {
    "const-fold": "lwc.passes.graph.const_fold:ConstFold",
    "dce": "lwc.passes.graph.dce:DeadCodeElimination",
    "cse": "lwc.passes.graph.cse:CommonSubexpressionElimination",
    "remove-identity": "lwc.passes.graph.remove_identity:remove_identity",
    "simplify-reshape": "lwc.passes.graph.simplify_reshape:simplify_reshape",
    "fold-bn": "lwc.passes.graph.fold_bn:fold_bn",
    "fuse": "lwc.passes.graph.fuse:fuse",
    "convert-layout": "lwc.passes.graph.convert_layout:ConvertLayout",
    "quantize-int8": "lwc.passes.compress.quantize:QuantizeInt8",
}

BUILTIN_PASSES.update({
    "im2col": "lwc.passes.conv.im2col:Im2ColLowering",
    "conv1x1-to-gemm": "lwc.passes.conv.conv1x1_gemm:Conv1x1ToGemm",
    "winograd": "lwc.passes.conv.winograd:Winograd",
    "channel-shuffle": "lwc.passes.conv.channel_shuffle:channel_shuffle",
    "eliminate-shuffle": "lwc.passes.conv.shuffle_elim:EliminateShuffle",
    "factorize-depthwise": "lwc.passes.conv.factorize_depthwise:FactorizeDepthwise",
    "factorize-spatial": "lwc.passes.conv.factorize_spatial:FactorizeSpatial",
    "low-rank": "lwc.passes.conv.low_rank:LowRank",
    "group-shuffle": "lwc.passes.conv.group_shuffle:GroupShuffle",
    "label-blocks": "lwc.passes.conv.blocks:LabelBlocks",
})
"""Conv rewrites: exact lowerings and shuffle passes, opt-in approximate factorisations (each
records MACs/params before/after and its error), and the block recogniser."""

BUILTIN_PASSES["prune-channels"] = "lwc.passes.compress.channel_prune:PruneChannels"
"""Structured (filter/channel) pruning: approximate, leaves a smaller dense graph."""

BUILTIN_PASSES.update({
    "binarize": "lwc.passes.compress.binarize:Binarize",
    "lower-xnor": "lwc.passes.compress.binarize:LowerXnor",
    "fold-bn-sign": "lwc.passes.compress.binarize:FoldBnSign",
})
"""Binary/ternary networks (BNN, XNOR-Net, TBN): training form, xnor lowering, BN+sign folding."""
