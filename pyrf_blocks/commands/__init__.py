"""
Subcommands of ``pyrf-blocks``, one module each.

Their ``--help`` descriptions are their module docstrings, written in reST
for the documentation; :func:`plain_text` shows them in a terminal as the
documentation reads, without the markup.
"""

import re
import textwrap

__all__ = ["plain_text"]

_ROLE = re.compile(r":(?:[\w-]+:)?(?P<role>[\w-]+):`(?P<text>[^`<]*?)\s*(?:<(?P<target>[^>`]*)>)?`")
_LITERAL = re.compile(r"``(.+?)``", re.S)
_LINK = re.compile(r"`(?P<text>[^`<]+?)\s*(?:<[^>`]*>)?`__?")
_STRONG = re.compile(r"(?<![\w*\\])\*\*(\S(?:.*?\S)?)\*\*(?![\w*])")
_EMPHASIS = re.compile(r"(?<![\w*\\])\*(\S(?:[^*]*?\S)?)\*(?![\w*])")
_DIRECTIVE = re.compile(r"^[ \t]*\.\. (?:code-block|code|sourcecode)::.*\n(?:[ \t]*\n)?", re.M)
_LITERAL_BLOCK = re.compile(r"(\S)::$", re.M)
_CALLABLE_ROLES = ("func", "meth")
_PARAGRAPHS = re.compile(r"(\n[ \t]*\n)")
_NOT_PROSE = re.compile(r"^(?:[ \t]|[-*+•] |\d+[.)] )")


def _role(match):
    text = match["text"]
    if match["target"] is not None and text:
        return text  # `title <target>`
    text = (match["target"] or text).lstrip("!")
    if text.startswith("~"):
        text = text[1:].rsplit(".", 1)[-1]
    if match["role"] in _CALLABLE_ROLES and not text.endswith(")"):
        text += "()"
    return text


def plain_text(doc):
    """
    ``doc`` (reST, as in our docstrings) as plain text: roles become the
    text Sphinx shows (``:class:`~a.B``` → ``B``, ``:func:`f``` →
    ``f()``), ````literals```` and links lose their quotes, emphasis its
    stars, a paragraph's closing ``::`` becomes ``:`` and code-block
    directives go (their indented lines stay).  A prose paragraph that
    lost markup is filled again to its widest line; the rest keeps its
    lines.  None stays None.
    """
    if doc is None:
        return None
    pieces = _PARAGRAPHS.split(_DIRECTIVE.sub("", doc))
    for i in range(0, len(pieces), 2):
        pieces[i] = _paragraph(pieces[i])
    return "".join(pieces)


def _paragraph(source):
    text = _LITERAL_BLOCK.sub(r"\1:", source)
    text = _ROLE.sub(_role, text)
    text = _LITERAL.sub(r"\1", text)
    text = _LINK.sub(r"\g<text>", text)
    text = _EMPHASIS.sub(r"\1", _STRONG.sub(r"\1", text))
    lines = source.strip("\n").splitlines()
    if text == source or len(lines) < 2 or any(_NOT_PROSE.match(line) for line in lines):
        return text
    fill = textwrap.fill(" ".join(line.strip() for line in text.strip("\n").splitlines()),
                         width=max(map(len, lines)),
                         break_on_hyphens=False, break_long_words=False)
    return source[:len(source) - len(source.lstrip("\n"))] + fill + (
        "\n" if source.endswith("\n") else "")
