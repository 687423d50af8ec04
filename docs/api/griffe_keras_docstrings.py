"""Griffe extension: read Keras-style example sections as examples.

The package writes its docstrings the way Keras does, with the doctest of
an ``Example:`` section at the same indentation as the section title::

    Example:

    >>> import keras_brnpa
    >>> ...

Griffe's Google parser only takes a section whose body is indented, so
without help such an example would be rendered as quoted text. This
extension indents the body of ``Example:`` / ``Examples:`` sections (up to
the next ``Title:`` line at the left margin) before the docstring is
parsed. It also joins an ``Args:`` entry that documents several arguments
at once over two lines (``model, images, layer_name,`` then
``from_logits: as for grad_cam``) into one line, which griffe would
otherwise reject. It changes nothing in the code, only what the site
shows.

Used by ``mkdocs.yml`` (``extensions`` of the mkdocstrings python handler).
"""

import re

import griffe

_EXAMPLE = re.compile(r"^Examples?:\s*$")
_SECTION = re.compile(r"^[A-Z][A-Za-z ]*:\s*$")
_ARGS = re.compile(r"^(Args|Arguments|Call arguments):\s*$")
_NAMES_GO_ON = re.compile(r"^(\s+)\w+(\s*,\s*\w+)*\s*,\s*$")


def join_grouped_args(text):
    """Join ``a, b,`` / ``c: description`` argument entries into one line."""
    lines = text.splitlines()
    out = []
    in_args = False
    for line in lines:
        if _SECTION.match(line):
            in_args = bool(_ARGS.match(line))
        previous = out[-1] if out else ""
        match = _NAMES_GO_ON.match(previous)
        if in_args and match and line.startswith(match.group(1)) and line.strip():
            out[-1] = previous.rstrip() + " " + line.strip()
            continue
        out.append(line)
    return "\n".join(out)


def indent_examples(text):
    """Return ``text`` with the bodies of its example sections indented."""
    lines = text.splitlines()
    out = []
    i = 0
    while i < len(lines):
        if not _EXAMPLE.match(lines[i]):
            out.append(lines[i])
            i += 1
            continue
        out.append("Examples:")
        i += 1
        while i < len(lines) and not lines[i].strip():
            i += 1
        while i < len(lines) and not _SECTION.match(lines[i]):
            out.append("    " + lines[i] if lines[i].strip() else "")
            i += 1
        if i < len(lines) and out[-1]:
            out.append("")
    return "\n".join(out)


_CALL_ARGS = re.compile(r"^Call arguments:\s*$")


def bullet_call_arguments(text):
    """Turn the entries of a ``Call arguments:`` section into a list."""
    out = []
    inside = False
    base = None
    for line in text.splitlines():
        if _SECTION.match(line):
            inside = bool(_CALL_ARGS.match(line))
            base = None
            out.append(line)
            continue
        if inside and line.strip():
            indent = len(line) - len(line.lstrip())
            if base is None:
                base = indent
            if indent == base:
                line = line[:indent] + "- " + line[indent:]
            else:
                line = " " * 2 + line
        out.append(line)
    return "\n".join(out)


class KerasExamples(griffe.Extension):
    """Rewrite Keras-style docstrings into what griffe parses, before it does."""

    def on_instance(self, *, node, obj, agent, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = indent_examples(
                bullet_call_arguments(join_grouped_args(obj.docstring.value))
            )
