"""Reading ClickHouse text (SQL, type names) at the top level: quotes blanked, commas outside brackets.

Shared by the cluster DDL translation (skyline/db/cluster.py) and chDB's type parsing
(skyline/db/chdb/types.py), so "a, f(b, c), 'd,e'" splits one way everywhere.
"""


def masked(sql):
    """`sql` with the insides of quotes blanked, so keywords and brackets in strings never match."""
    out, quote = [], None
    for index, char in enumerate(sql):
        if quote:
            if char == quote and sql[index - 1] != "\\":
                quote = None
                out.append(char)
            else:
                out.append(" ")
        else:
            if char in "'\"`":
                quote = char
            out.append(char)
    return "".join(out)


def split_top_level(text):
    """The non-empty parts of `text` between commas outside brackets and quotes, stripped:
    'A, B(C, D), E' -> ['A', 'B(C, D)', 'E']."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(masked(text)):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index].strip())
            start = index + 1
    parts.append(text[start:].strip())
    return [part for part in parts if part]
