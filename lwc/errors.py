"""Typed errors. Each one prints as a single line that names what is wrong (file, node, op, shape)."""

from __future__ import annotations


class LwcError(Exception):
    """Base of every error lwc raises on purpose; the CLI prints it as one line and exits with 2."""


class ParseError(LwcError):
    """Textual IR that does not follow the grammar (names file, line and column)."""


class VerifyError(LwcError):
    """A graph that breaks an IR invariant (types, shapes, dominance, dangling uses)."""


class UnsupportedOpError(LwcError):
    """An op that the frontend or a backend cannot handle."""


class ModelFormatError(LwcError):
    """A model file that is missing, truncated, malformed or unsafe."""


class InputError(LwcError):
    """Run-time inputs that do not match the graph (name, shape or dtype)."""


class PassError(LwcError):
    """A pass that failed or left the graph invalid."""
