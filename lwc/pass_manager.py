"""The pass API: ``Pass``, its registry (built-ins and the ``lwc.passes`` entry-point group),
``PassContext`` and ``PassManager``.

A pass is a dataclass whose fields are its typed options (after xDSL), tagged exact or
approximate (after onnxoptimizer); ``run`` returns ``PassResult(changed)`` (after FX) so cached
analyses are dropped only when something changed. Pipelines are text such as
``"canonicalize,fold-bn,fuse,factorize-depthwise{multiplier=1}"`` (see ``lwc.pipeline``) or lists of
pass instances; instruments (``lwc.instruments``) time, verify and print around every pass::

    @register_pass
    @dataclass(frozen=True)
    class ZeroBias(Pass):
        '''Set every conv bias to zero (a toy: approximate, so parity is not checked).'''
        name: ClassVar[str] = "zero-bias"
        exact: ClassVar[bool] = False
        scale: float = 0.0

        def run(self, graph: Graph, ctx: PassContext) -> PassResult: ...
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, overload

from lwc.analysis import AnalysisManager
from lwc.errors import PassError
from lwc.ir.core import Graph, Node

log = logging.getLogger("lwc.passes")

ENTRY_POINT_GROUP = "lwc.passes"
"""Third-party packages declare passes under this group in their ``pyproject.toml``."""


@dataclass(frozen=True)
class PassResult:
    """What a pass reports: whether it changed the graph, plus optional counters for ``--stats``."""

    changed: bool
    stats: dict[str, int] = field(default_factory=dict)
    preserves: tuple[Callable[..., Any], ...] = ()
    """Analyses (functions from ``lwc.analysis``) whose cached results are still valid."""


@dataclass(frozen=True)
class Record:
    """One per-layer figure set reported through ``ctx.record`` (MACs before/after, error, ...)."""

    pass_name: str
    node: str
    op: str
    stats: dict[str, Any]


@dataclass(frozen=True)
class PassRun:
    """One executed pass in a pipeline run: its name, options, outcome and wall time."""

    name: str
    options: dict[str, Any]
    changed: bool
    seconds: float
    stats: dict[str, int]


class Pass:
    """Base class of every pass. Subclasses are dataclasses; their fields are the pass options.

    Set the class variables ``name`` (kebab-case, as written in pipelines) and ``exact`` (True when
    outputs are preserved up to float rounding; the ``Parity`` instrument checks those) and write
    ``run``. The class docstring's first line is what ``lwc passes`` shows.
    """

    name: ClassVar[str] = ""
    exact: ClassVar[bool] = True

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        raise NotImplementedError(f"pass {self.name} does not implement run")

    def schedule_space(self, graph: Graph) -> Sequence[Pass]:
        """Option settings worth trying (for an autotuner); by default just this one."""
        return [self]

    @classmethod
    def options(cls) -> list[dataclasses.Field[Any]]:
        """The declared options, in order (empty for a non-dataclass pass)."""
        return list(dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else []

    @classmethod
    def summary(cls) -> str:
        """First line of the docstring (one-line doc for listings)."""
        doc = inspect.getdoc(cls) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    def option_values(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in self.options()}

    def __str__(self) -> str:
        from lwc.pipeline import format_pass

        return format_pass(self)


# ----- registry -----------------------------------------------------------------------------------

_REGISTRY: dict[str, type[Pass]] = {}
_loaded_plugins = False


@overload
def register_pass(cls: type[Pass], /) -> type[Pass]: ...
@overload
def register_pass(name: str, /, *, exact: bool = True) -> Callable[[type[Pass]], type[Pass]]: ...


def register_pass(arg: Any, /, *, exact: bool | None = None) -> Any:
    """Register a pass class, either bare (``@register_pass``, with ``name``/``exact`` set on the
    class) or as ``@register_pass("name", exact=...)``. A non-dataclass subclass is made one so
    its annotated fields become options. Re-registering a name replaces the old pass."""
    if isinstance(arg, str):
        def deco(cls: type[Pass]) -> type[Pass]:
            cls.name = arg
            cls.exact = True if exact is None else exact
            return _register(cls)
        return deco
    return _register(arg)


def _register(cls: type[Pass]) -> type[Pass]:
    if not (isinstance(cls, type) and issubclass(cls, Pass)):
        raise TypeError(f"{cls!r} is not a Pass subclass")
    if not cls.name:
        raise ValueError(f"pass class {cls.__name__} must set a name")
    if not dataclasses.is_dataclass(cls) or "__dataclass_fields__" not in cls.__dict__:
        cls = dataclass(cls)
    _REGISTRY[cls.name] = cls
    return cls


def function_pass(name: str, *, exact: bool = True) -> Callable[[Callable[..., Any]], type[Pass]]:
    """Make a pass from ``fn(graph, ctx, *, opt=default, ...)``; keyword-only parameters with
    defaults and annotations become typed options. ``fn`` may return a ``PassResult`` or a bool."""

    def deco(fn: Callable[..., Any]) -> type[Pass]:
        sig = inspect.signature(fn)
        hints = inspect.get_annotations(fn, eval_str=True)
        opts = []
        for p in list(sig.parameters.values())[2:]:
            if p.default is inspect.Parameter.empty:
                raise TypeError(f"function pass {name}: option {p.name} needs a default")
            opts.append((p.name, hints.get(p.name, type(p.default)), field(default=p.default)))

        def run(self: Pass, graph: Graph, ctx: PassContext) -> PassResult:
            out = fn(graph, ctx, **self.option_values())
            return out if isinstance(out, PassResult) else PassResult(changed=bool(out))

        cls_name = "".join(part.title() for part in name.replace("_", "-").split("-")) + "Pass"
        ns = {"name": name, "exact": exact, "run": run, "__doc__": fn.__doc__,
              "__module__": fn.__module__}
        cls = dataclasses.make_dataclass(cls_name, opts, bases=(Pass,), namespace=ns, frozen=True)
        return _register(cls)

    return deco


def _load_builtins() -> None:
    from lwc.passes import BUILTIN_PASSES

    for pname, target in BUILTIN_PASSES.items():
        if pname not in _REGISTRY:
            _import_target(target, pname)


def _import_target(target: str, pname: str) -> None:
    import importlib

    module = target.split(":")[0]
    try:
        importlib.import_module(module)
    except ImportError as e:
        raise PassError(f"pass {pname}: cannot import {module}: {e}") from e


def load_plugins(force: bool = False) -> list[str]:
    """Load passes declared under the ``lwc.passes`` entry-point group; return their names.

    An entry point may name a ``Pass`` subclass (registered under its ``name``), a module
    (importing it registers its passes) or any callable that registers passes when called.
    """
    global _loaded_plugins
    if _loaded_plugins and not force:
        return []
    _loaded_plugins = True
    from importlib.metadata import entry_points

    names = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as e:  # a broken plugin must not break lwc itself
            log.warning("lwc.passes entry point %s (%s) failed to load: %s", ep.name, ep.value, e)
            continue
        if isinstance(obj, type) and issubclass(obj, Pass):
            names.append(_register(obj).name)
        elif callable(obj) and not isinstance(obj, type):
            obj()
            names.append(ep.name)
        else:
            names.append(ep.name)
    return names


def registered_passes() -> dict[str, type[Pass]]:
    """Every pass: built-ins (imported now) and plugins, by name, sorted."""
    _load_builtins()
    load_plugins()
    return dict(sorted(_REGISTRY.items()))


def get_pass(name: str) -> type[Pass]:
    """The pass class registered as ``name``; the error lists close and all names."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    from lwc.passes import BUILTIN_PASSES

    if name in BUILTIN_PASSES:
        _import_target(BUILTIN_PASSES[name], name)
    if name not in _REGISTRY:
        load_plugins()
    if (cls := _REGISTRY.get(name)) is not None:
        return cls
    import difflib

    known = sorted(set(registered_passes()))
    from lwc.pipeline import PIPELINES

    close = difflib.get_close_matches(name, known + sorted(PIPELINES), n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise PassError(f"unknown pass {name!r}; {hint}registered passes: {', '.join(known)}")


# ----- running ------------------------------------------------------------------------------------


class PassContext:
    """State shared by the passes of one pipeline run: instruments, cached analyses, records."""

    def __init__(self, instruments: Iterable[Any] = (), *, config: dict[str, Any] | None = None,
                 seed: int = 0) -> None:
        self.instruments = list(instruments)
        self.config: dict[str, Any] = dict(config or {})
        self.seed = seed
        self.analyses = AnalysisManager()
        self.records: list[Record] = []
        self.history: list[PassRun] = []
        self.current: Pass | None = None

    def record(self, node: Node | str, **stats: Any) -> None:
        """Report per-layer figures (``macs_before=..., error=...``) for ``lwc opt --json``."""
        label, op = (node, "") if isinstance(node, str) else (node.label, node.op)
        pname = self.current.name if self.current is not None else ""
        self.records.append(Record(pname, label, op, dict(stats)))

    def analysis(self, fn: Callable[[Graph], Any], graph: Graph) -> Any:
        """A cached analysis result (``lwc.analysis.use_counts`` etc.), recomputed after changes."""
        return self.analyses.get(fn, graph)


class PassManager:
    """Runs a pipeline (text or a list of passes) on a graph, with instruments around each pass.

    ``verify`` adds the ``Verify`` instrument (graph.verify() after every pass). ``max_rounds`` > 1
    repeats the whole pipeline until no pass reports a change (at most that many times).
    """

    def __init__(self, pipeline: str | Sequence[Pass | str], *, instruments: Iterable[Any] = (),
                 verify: bool = True, max_rounds: int = 1) -> None:
        from lwc.instruments import Verify
        from lwc.pipeline import parse_pipeline

        self.passes: list[Pass] = parse_pipeline(pipeline)
        self.instruments = list(instruments)
        if verify and not any(isinstance(i, Verify) for i in self.instruments):
            self.instruments.insert(0, Verify())
        self.max_rounds = max_rounds

    def run(self, graph: Graph, ctx: PassContext | None = None) -> PassContext:
        """Run every pass in order (in place); return the context holding history and records."""
        import time

        ctx = ctx or PassContext()
        own = [i for i in ctx.instruments if all(i is not j for j in self.instruments)]
        ctx.instruments = [*self.instruments, *own]
        for inst in ctx.instruments:
            inst.enter(ctx, graph)
        for _ in range(self.max_rounds):
            round_changed = False
            for p in self.passes:
                if not all(inst.should_run(p, graph, ctx) for inst in ctx.instruments):
                    continue
                for inst in ctx.instruments:
                    inst.before(p, graph, ctx)
                ctx.current = p
                t0 = time.perf_counter()
                result = self._run_one(p, graph, ctx)
                dt = time.perf_counter() - t0
                ctx.current = None
                if result.changed:
                    ctx.analyses.invalidate(keep=result.preserves)
                round_changed |= result.changed
                ctx.history.append(PassRun(p.name, p.option_values(), result.changed, dt,
                                           dict(result.stats)))
                for inst in ctx.instruments:
                    inst.after(p, graph, ctx, result)
            if not round_changed:
                break
        for inst in ctx.instruments:
            inst.exit(ctx, graph)
        return ctx

    @staticmethod
    def _run_one(p: Pass, graph: Graph, ctx: PassContext) -> PassResult:
        try:
            result = p.run(graph, ctx)
        except PassError:
            raise
        except Exception as e:
            raise PassError(f"pass {p.name} failed{failed_after(ctx)}: "
                            f"{type(e).__name__}: {e}") from e
        if not isinstance(result, PassResult):
            raise PassError(f"pass {p.name} returned {type(result).__name__}, not PassResult")
        return result


def failed_after(ctx: PassContext) -> str:
    """`` (after a, b, c)``: the passes that ran before the failing one, for error messages."""
    names = [r.name for r in ctx.history]
    return f" (after {', '.join(names)})" if names else " (first pass)"


def run_pipeline(graph: Graph, pipeline: str | Sequence[Pass | str], **kwargs: Any) -> PassContext:
    """Shorthand: ``PassManager(pipeline, **kwargs).run(graph)``."""
    return PassManager(pipeline, **kwargs).run(graph)


__all__ = ["ENTRY_POINT_GROUP", "Pass", "PassContext", "PassManager", "PassResult", "PassRun",
           "Record", "function_pass", "get_pass", "load_plugins", "register_pass",
           "registered_passes", "run_pipeline"]
