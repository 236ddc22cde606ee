"""A dataclass field's documentation, read from the comments it is written with in the source.

Config keys are documented once, by the comment beside a field or the comment lines right above it; `mythbench
config show` prints that text as the key's help (tyro and simple_parsing read field comments the same way), so
the help cannot drift from the code.
"""

from __future__ import annotations

import ast
import functools
import inspect
import io
import textwrap
import tokenize


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Field name -> its comment: the one on the field's line, else the block of comment lines just above it
    ('' when it has neither)."""
    source = textwrap.dedent(inspect.getsource(cls))
    lines = source.splitlines()
    comments = {token.start[0]: token.string.lstrip("#").strip()
                for token in tokenize.generate_tokens(io.StringIO(source).readline)
                if token.type == tokenize.COMMENT}
    (class_def,) = ast.parse(source).body
    docs = {}
    for statement in class_def.body:
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
            continue
        name, line = statement.target.id, statement.lineno
        if line in comments:
            docs[name] = comments[line]
            continue
        above = []
        while line - 1 in comments and lines[line - 2].lstrip().startswith("#"):
            line -= 1
            above.append(comments[line])
        docs[name] = " ".join(reversed(above))
    return docs
