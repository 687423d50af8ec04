"""MkDocs hook: formulas rendered to MathML at build time (no script, no network).

``pymdownx.arithmatex`` (generic mode) wraps each formula in
``<span class="arithmatex">\\(...\\)</span>`` or
``<div class="arithmatex">\\[...\\]</div>``; this hook replaces the
wrapper by the MathML that ``latex2mathml`` produces, which browsers draw
natively. The site needs no MathJax or KaTeX script, online or offline.
"""

import html
import re

from latex2mathml.converter import convert

_FORMULA = re.compile(
    r'<(?P<tag>span|div) class="arithmatex">\s*(?:\\\((?P<inline>.*?)\\\)|\\\[(?P<block>.*?)\\\])\s*</(?P=tag)>',
    re.DOTALL,
)


def _render(match):
    block = match.group("block") is not None
    tex = html.unescape(match.group("block") if block else match.group("inline")).strip()
    mathml = convert(tex, display="block" if block else "inline")
    if block:
        return f'<div class="arithmatex">{mathml}</div>'
    return f'<span class="arithmatex">{mathml}</span>'


def on_page_content(html_text, page, config, files):
    return _FORMULA.sub(_render, html_text)
