"""The README's filter examples are true: each `expr  # value` line is checked."""
from __future__ import annotations

import ast
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_filter_examples_hold():
    text = README.read_text()
    filters = text[text.index("## The filters"):]  # the first example of that section
    block = re.search(r"```python\n(.*?)```", filters, re.S).group(1)
    namespace: dict = {}
    checked = 0
    for line in block.splitlines():
        code, _, comment = line.partition("  # ")
        if not code.strip():
            continue
        comment = comment.strip()
        try:
            expected = eval(comment, {})  # the comment is a value, e.g. b'...'
        except Exception:
            exec(code, namespace)
            continue
        if isinstance(ast.parse(code.strip()).body[0], ast.Assign):
            exec(code, namespace)
            continue
        assert eval(code.strip(), namespace) == expected, line
        checked += 1
    assert checked >= 9
