#!/usr/bin/env python3
"""Finds import circles between the modules of each crate (Python 3 standard library only).

Why: a module that imports another which imports it back cannot be read, tested or moved on
its own; the planner that needs the sender for one constant is the typical case. The compiler
accepts such circles, so this script is what keeps them out.

For every crate under crates/ and bench/ (each of its roots, `src/lib.rs` and `src/main.rs`, is a
separate module tree), it follows the `mod` declarations from the root, then reads each module
file for the modules it refers to:
  - `use` trees starting with `crate::`, `self::`, `super::` (resolved) or a child module's name;
  - paths in code: `crate::x::…`, `super::…`, `self::x::…`, `child::…`.
A path names the deepest known module on it; a name re-exported (`pub use`) by that module is
followed to the module that defines it. A parent declaring a child (`mod x;`) or re-exporting
from it is not an import edge; a child importing its parent is. Test code is left out: items
under `#[cfg(test)]` (so `mod tests { … }` blocks and `#[path = "x_tests.rs"] mod tests;` files),
as test modules importing their parent is fine.

The circles are the strongly connected components of that graph (Tarjan); each is printed with
the file:line of every edge inside it. Exit status 1 if there is any, 0 otherwise.

    scripts/module-cycles.py [--root DIR] [CRATE_DIR ...]
"""

import argparse
import os
import re
import sys

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def blank(text, start, end):
    """The text with [start, end) replaced by spaces, newlines kept (so line numbers hold)."""
    mid = "".join("\n" if c == "\n" else " " for c in text[start:end])
    return text[:start] + mid + text[end:]


def strip_comments_and_strings(src):
    """Comments, string and char literals blanked, so `crate::` in a doc or message is not code."""
    out = []
    i, n = 0, len(src)

    def keep_newlines(s):
        return "".join("\n" if c == "\n" else " " for c in s)

    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(keep_newlines(src[i:j]))
            i = j
        elif c == "r" or (c == "b" and i + 1 < n and src[i + 1] == "r"):
            prev = src[i - 1] if i else " "
            k = i + (2 if c == "b" else 1)
            hashes = 0
            while k < n and src[k] == "#":
                hashes += 1
                k += 1
            if not (prev.isalnum() or prev == "_") and k < n and src[k] == '"':
                close = '"' + "#" * hashes
                j = src.find(close, k + 1)
                j = n if j < 0 else j + len(close)
                out.append(keep_newlines(src[i:j]))
                i = j
            else:
                out.append(c)
                i += 1
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(keep_newlines(src[i:j]))
            i = j
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a): only the former is blanked.
            if i + 1 < n and src[i + 1] == "\\":
                j = src.find("'", i + 2)
                j = n if j < 0 else j + 1
                out.append(keep_newlines(src[i:j]))
                i = j
            elif i + 2 < n and src[i + 2] == "'":
                out.append("   ")
                i += 3
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching_close(text, open_pos):
    """Index just past the brace that closes the one at open_pos."""
    depth = 0
    for j in range(open_pos, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(text)


CFG_TEST = re.compile(r"#\[\s*cfg\s*\(\s*test\s*\)\s*\]")
ATTR = re.compile(r"\s*#!?\[")


def item_end(text, pos):
    """End of the item starting at pos: its `;`, or the brace block it opens (whichever first)."""
    depth = 0
    for j in range(pos, len(text)):
        ch = text[j]
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth <= 0 and ch == ";":
            return j + 1
        elif depth <= 0 and ch == "{":
            return matching_close(text, j)
    return len(text)


def skip_attrs(text, pos):
    while True:
        m = ATTR.match(text, pos)
        if not m:
            return pos
        depth, j = 0, m.end() - 1
        while j < len(text):
            if text[j] == "[":
                depth += 1
            elif text[j] == "]":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        pos = j + 1


def drop_test_items(text):
    """Every item under `#[cfg(test)]` blanked (attribute included)."""
    while True:
        m = CFG_TEST.search(text)
        if not m:
            return text
        start = skip_attrs(text, m.end())
        text = blank(text, m.start(), item_end(text, start))


def line_of(text, pos):
    return text.count("\n", 0, pos) + 1


def split_top(s):
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def expand_use(tree, prefix=()):
    """`a::{b, c::{d as e, self}, *}` into [(path segments, alias or None)]."""
    tree = re.sub(r"\s+", " ", tree).strip()
    tree = re.sub(r"\s*::\s*", "::", tree)
    brace = tree.find("{")
    if brace >= 0 and tree.endswith("}"):
        head = [s for s in tree[:brace].split("::") if s]
        out = []
        for part in split_top(tree[brace + 1 : -1]):
            out.extend(expand_use(part, prefix + tuple(head)))
        return out
    alias = None
    m = re.match(r"^(.*?)\s+as\s+(\w+)$", tree)
    if m:
        tree, alias = m.group(1), m.group(2)
    segs = [s for s in tree.split("::") if s]
    if segs and segs[-1] == "self":
        segs = segs[:-1]
    path = prefix + tuple(segs)
    if not path:
        return []
    return [(path, alias)]


class Module:
    def __init__(self, path, file, parent):
        self.path = path  # tuple of names, () for the root
        self.file = file
        self.parent = parent
        self.children = {}  # name -> tuple path (file-backed) or None (inline: same node)
        self.text = ""
        self.raw = ""
        self.inline = []  # (start, end) of inline (non-test) module blocks
        self.uses = []  # (pos, path segments, alias, is_pub)
        self.reexports = {}  # name -> path segments (as written, resolved from this module)

    def name(self):
        return "::".join(self.path) or "crate"


MOD_DECL = re.compile(r"(?<![\w:])((?:pub\s*(?:\([^)]*\))?\s*)?)mod\s+(\w+)\s*([;{])")
PATH_ATTR = re.compile(r'#\[\s*path\s*=\s*"([^"]+)"\s*\]')
USE_STMT = re.compile(r"(?<![\w:$])((?:pub\s*(?:\([^)]*\))?\s+)?)use\s+([^;]*);")
CODE_PATH = re.compile(r"(?<![\w:$])([A-Za-z_]\w*)((?:\s*::\s*[A-Za-z_]\w*)+)")


def child_file(decl_file, name, path_attr):
    d = os.path.dirname(decl_file)
    if path_attr:
        return os.path.normpath(os.path.join(d, path_attr))
    base = os.path.basename(decl_file)
    if base not in ("mod.rs", "lib.rs", "main.rs"):
        d = os.path.join(d, os.path.splitext(base)[0])
    for cand in (os.path.join(d, name + ".rs"), os.path.join(d, name, "mod.rs")):
        if os.path.exists(cand):
            return cand
    return None


def load_tree(root_file):
    modules = {}
    todo = [Module((), root_file, None)]
    while todo:
        m = todo.pop()
        modules[m.path] = m
        with open(m.file, encoding="utf-8") as f:
            m.raw = f.read()
        text = drop_test_items(strip_comments_and_strings(m.raw))
        path_attrs = [(a.end(), a.group(1)) for a in PATH_ATTR.finditer(m.raw)]
        for d in MOD_DECL.finditer(text):
            name, kind = d.group(2), d.group(3)
            if kind == "{":
                end = matching_close(text, d.end() - 1)
                m.inline.append((d.end() - 1, end))
                m.children[name] = None
                continue
            attr = None
            for end, value in path_attrs:
                between = text[end : d.start()]
                if end <= d.start() and re.fullmatch(r"(\s*#\[[^\]]*\])*\s*", between):
                    attr = value
            f = child_file(m.file, name, attr)
            if f is None:
                print(f"warning: {m.file}: module {name} has no file", file=sys.stderr)
                continue
            m.children[name] = m.path + (name,)
            todo.append(Module(m.path + (name,), f, m))
        # `use` statements are parsed as trees, then blanked so the code scan does not see them.
        for u in USE_STMT.finditer(text):
            is_pub = bool(u.group(1).strip())
            for path, alias in expand_use(u.group(2)):
                m.uses.append((u.start(), path, alias, is_pub))
                if is_pub and path[-1] != "*":
                    m.reexports[alias or path[-1]] = path
        for u in reversed(list(USE_STMT.finditer(text))):
            text = blank(text, u.start(), u.end())
        m.text = text
    return modules


def resolve(modules, mod, segs, pos, depth=0):
    """The module a path written in `mod` at `pos` refers to, or None (extern crate, local item)."""
    if not segs or depth > 8:
        return None
    inline_depth = sum(1 for s, e in mod.inline if s <= pos < e)
    head = segs[0]
    if head == "crate":
        base, rest = (), list(segs[1:])
    elif head == "self":
        base, rest = mod.path, list(segs[1:])
    elif head == "super":
        k = 0
        while k < len(segs) and segs[k] == "super":
            k += 1
        k -= inline_depth
        if k <= 0:
            return None  # `super` of an inline module: the file's own module
        if k > len(mod.path):
            return None
        base, rest = mod.path[: len(mod.path) - k], list(segs[k:])
    elif head in mod.children and mod.children[head] is not None:
        base, rest = mod.path, list(segs)
    else:
        return None
    cur = base
    for seg in rest:
        if cur + (seg,) in modules:
            cur = cur + (seg,)
            continue
        target = modules[cur].reexports.get(seg)
        if target is not None and cur != mod.path:
            found = resolve(modules, modules[cur], target, -1, depth + 1)
            if found is not None:
                return found
        break
    return cur


def build_edges(modules):
    """(from, to) -> [(file, line, snippet)]."""
    edges = {}

    def add(mod, target, pos):
        if target is None or target == mod.path:
            return
        # A parent's `pub use child::X` belongs to declaring the child.
        if target[: len(mod.path)] == mod.path and pos in mod.reexport_positions:
            return
        line = line_of(mod.raw, pos)
        snippet = mod.raw.splitlines()[line - 1].strip() if mod.raw else ""
        edges.setdefault((mod.path, target), []).append((mod.file, line, snippet))

    for mod in modules.values():
        mod.reexport_positions = {p for p, _, _, is_pub in mod.uses if is_pub}
        for pos, path, _alias, _ in mod.uses:
            segs = [s for s in path if s != "*"]
            add(mod, resolve(modules, mod, segs, pos), pos)
        for c in CODE_PATH.finditer(mod.text):
            segs = [c.group(1)] + re.findall(r"\w+", c.group(2))
            add(mod, resolve(modules, mod, segs, c.start()), c.start())
    return edges


def tarjan(nodes, succ):
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in succ.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def crate_roots(crate_dir):
    for name in ("lib.rs", "main.rs"):
        f = os.path.join(crate_dir, "src", name)
        if os.path.exists(f):
            yield name[:-3], f
    bins = os.path.join(crate_dir, "src", "bin")
    if os.path.isdir(bins):
        for name in sorted(os.listdir(bins)):
            if name.endswith(".rs"):
                yield "bin " + name[:-3], os.path.join(bins, name)


def check(crate_dir, repo):
    found = 0
    for kind, root in crate_roots(crate_dir):
        modules = load_tree(root)
        edges = build_edges(modules)
        succ = {}
        for a, b in edges:
            succ.setdefault(a, set()).add(b)
        for comp in tarjan(list(modules), succ):
            if len(comp) < 2:
                continue
            found += 1
            members = set(comp)
            names = sorted(modules[p].name() for p in comp)
            print(f"{os.path.relpath(crate_dir, repo)} ({kind}): circle of {len(comp)} modules: "
                  + ", ".join(names))
            for (a, b), ev in sorted(edges.items()):
                if a in members and b in members:
                    file, line, snippet = ev[0]
                    more = f" (+{len(ev) - 1} more)" if len(ev) > 1 else ""
                    print(f"  {modules[a].name()} -> {modules[b].name()}: "
                          f"{os.path.relpath(file, repo)}:{line}: {snippet}{more}")
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("crates", nargs="*", help="crate folders (default: crates/* and bench)")
    args = ap.parse_args()
    repo = os.path.abspath(args.root)
    crates = args.crates or sorted(
        [os.path.join(repo, "crates", d) for d in os.listdir(os.path.join(repo, "crates"))]
        + [os.path.join(repo, "bench")]
    )
    crates = [os.path.abspath(c) for c in crates if os.path.isdir(os.path.join(c, "src"))]
    total = sum(check(c, repo) for c in crates)
    if total:
        print(f"{total} module circle(s) in {len(crates)} crates", file=sys.stderr)
        return 1
    print(f"no module circles in {len(crates)} crates", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
