#!/usr/bin/env python3
"""Rewrites C/C++ calls of the tsd 0.1 API into tsd 0.2's (issue 12: output
parameters first, one meaning per name, options for the TorchScript opens).

    python3 scripts/migrate_0_2.py FILE...     # rewrites the files in place

Only calls are rewritten (`name(args)` whose first argument is not a
declaration); each argument keeps its own text, the list is joined with ", ",
so run clang-format (git clang-format) over the result. Prints every file it
changed and every call it left alone (a declaration, or a wrong number of
arguments), which need a look by hand. Running it twice would reorder twice:
run it once per file.
"""
import re
import sys

# name -> (new name, new order as indices of the old arguments)
REORDER = {
    "tsd_checkpoint_entry": (None, [2, 0, 1]),
    "tsd_checkpoint_find": (None, [1, 0, 2]),
    "tsd_checkpoint_select_auto": (None, [1, 0]),
    "tsd_checkpoint_file_metadata": (None, [2, 3, 0, 1]),
    "tsd_checkpoint_output_bytes": (None, [1, 0]),
    "tsd_checkpoint_view": (None, [2, 0, 1]),
    "tsd_checkpoint_read": (None, [3, 4, 0, 1, 2]),
    "tsd_checkpoint_read_range": (None, [5, 6, 0, 1, 2, 3, 4]),
    "tsd_model_tensor": (None, [2, 0, 1]),
    "tsd_model_find": (None, [1, 0, 2]),
    "tsd_model_read": (None, [3, 4, 0, 1, 2]),
    "tsd_model_read_range": (None, [5, 6, 0, 1, 2, 3, 4]),
    "tsd_report_mismatch": (None, [3, 0, 1, 2]),
}
# name -> number of arguments in 0.1: a NULL options argument is appended.
APPEND_NULL = {
    "tsd_checkpoint_open_torchscript": 2,
    "tsd_model_open_torchscript_state": 2,
    "tsd_model_save": 2,
}
# tsd_model_open_torchscript(out, path, device): the device moved into
# tsd_torchscript_options; "cpu" and NULL become NULL options, any other
# device is left for a hand-made options struct.
DEVICE_TO_OPTIONS = "tsd_model_open_torchscript"

RENAME = {
    "tsd_checkpoint_metadata_string": "tsd_checkpoint_file_metadata_string",
    "tsd_model_save_ex": "tsd_model_save",
}

DECL = re.compile(r"^(const\s+)?(struct\s+)?[A-Za-z_]\w*\s*[\s*]\s*\**\s*[A-Za-z_]\w*$")


def split_args(text, start):
    """text[start] is '('. Returns (args, end) with end just past ')'."""
    depth, i, args, cur = 0, start, [], start + 1
    while i < len(text):
        c = text[i]
        if c in "\"'":
            q = c
            i += 1
            while i < len(text) and text[i] != q:
                i += 2 if text[i] == "\\" else 1
        elif text.startswith("//", i):
            i = text.find("\n", i)
            if i < 0:
                return None
            continue
        elif text.startswith("/*", i):
            i = text.find("*/", i) + 1
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                args.append(text[cur:i])
                return args, i + 1
        elif c == "," and depth == 1:
            args.append(text[cur:i])
            cur = i + 1
        i += 1
    return None


def migrate(text, path):
    out, pos, left = [], 0, []
    names = sorted(list(REORDER) + list(RENAME) + list(APPEND_NULL) +
                   [DEVICE_TO_OPTIONS], key=len, reverse=True)
    pat = re.compile(r"\b(" + "|".join(names) + r")\b(\s*)\(")
    for m in pat.finditer(text):
        if m.start() < pos:
            continue
        name = m.group(1)
        line = text.count("\n", 0, m.start()) + 1
        if name in RENAME:
            out.append(text[pos:m.start()] + RENAME[name])
            pos = m.start(1) + len(name)
            continue
        got = split_args(text, m.end() - 1)
        if got is None:
            left.append((line, name, "unbalanced"))
            continue
        args, end = got
        stripped = [a.strip() for a in args]
        if stripped and DECL.match(stripped[0]) and not stripped[0].startswith("return"):
            left.append((line, name, "declaration"))
            continue
        if name in APPEND_NULL or name == DEVICE_TO_OPTIONS:
            if name in APPEND_NULL and len(args) == APPEND_NULL[name]:
                stripped.append("NULL")
            elif (name == DEVICE_TO_OPTIONS and len(args) == 3 and
                  stripped[2] in ('"cpu"', "NULL", "nullptr")):
                stripped[2] = "NULL"
            else:
                left.append((line, name, "%d arguments" % len(args)))
                continue
            out.append(text[pos:m.start()] + name + m.group(2) + "(" +
                       ", ".join(stripped) + ")")
            pos = end
            continue
        new_name, order = REORDER[name]
        if len(args) != len(order) or "..." in stripped:
            left.append((line, name, "%d arguments" % len(args)))
            continue
        out.append(text[pos:m.start()])
        out.append((new_name or name) + m.group(2) + "(" +
                   ", ".join(stripped[k] for k in order) + ")")
        pos = end
    out.append(text[pos:])
    for line, name, why in left:
        print("%s:%d: %s left alone (%s)" % (path, line, name, why))
    return "".join(out)


def main():
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        new = migrate(text, path)
        if new != text:
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
            print("rewrote", path)


if __name__ == "__main__":
    main()
