"""Graph-level passes: cleanup, folding and fusion (all exact)."""
