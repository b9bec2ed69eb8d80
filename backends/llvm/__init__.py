"""The LLVM CPU backend: whole-model JIT (``compile``) and ahead-of-time shared libraries
(``CompiledModel.save``), built through llvmlite.

    model = lwc.backends.llvm.compile(graph, opt_level=3)
    outputs = model.run({"input": x})
    model.save("model.so")      # + model.h, loadable from C
"""

from lwc.backends.llvm.compiler import Artifact, CompiledModel, build, compile

__all__ = ["Artifact", "CompiledModel", "build", "compile"]
