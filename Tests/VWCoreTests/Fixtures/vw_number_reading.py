"""How VW itself reads number tokens (the oracle of ExampleGrammarVWNumberTests).

Reads one token per line on stdin and prints, per token, `<class> <strtof> <labels>`:
  class   `number` (VW reads `|a x:<token> y` without a warning, the rest of the line kept, the
          value finite), `string` (the same, but x hashed with the token as a string value), or
          `bad` (a warning, the rest of the line dropped, or inf);
  strtof  `eq` when VW's value equals C's strtof of the token, else `ne` (VW's own fast path
          reads some exponents as another number);
  labels  `same` when `<token> |a x`, `0 <token> |a x` and `0 1 <token> |a x` give the label,
          importance and initial value VW read for the feature, else `differ` (read by a second
          vw: a negative importance weight draws a warning of its own, later).
"""

import ctypes
import math
import sys

import vowpalwabbit

libc = ctypes.CDLL(None)
libc.strtof.restype = ctypes.c_float
libc.strtof.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p)]

vw = vowpalwabbit.Workspace(arg_list=["--no_stdin"], enable_logging=True)
label_vw = vowpalwabbit.Workspace(arg_list=["--no_stdin", "--quiet"])


def warnings():
    return sum("warning" in message for message in vw.get_driver_output() + vw.get_log_output())


def parse(line):
    """The example and whether VW logged a warning (on either channel) while parsing it."""
    before = warnings()
    example = vw.parse(line)
    return example, warnings() > before


def features(line):
    example, warned = parse(line)
    found = [(index, value) for index, value in example.iter_features() if index != constant]
    vw.finish_example(example)
    return found, warned


example, _ = parse("|a x y")
constant = list(example.iter_features())[-1][0]
vw.finish_example(example)
(x_index, _), (y_index, _) = features("|a x y")[0]

for token in sys.stdin.read().split("\n")[:-1]:
    found, warned = features(f"|a x:{token} y")
    indices = {index: value for index, value in found}
    value = indices.get(x_index, 0.0)
    others = [index for index in indices if index not in (x_index, y_index)]
    if warned or y_index not in indices or not math.isfinite(value):
        kind = "bad"
    elif others:
        kind = "string"
    else:
        kind = "number"
    reference = libc.strtof(token.encode(), None)
    same = "eq" if reference == value or (reference != reference and value != value) else "ne"
    labels = []
    for line, read in ((f"{token} |a x", "get_simplelabel_label"),
                       (f"0 {token} |a x", "get_simplelabel_weight"),
                       (f"0 1 {token} |a x", "get_simplelabel_initial")):
        example = label_vw.parse(line)
        labels.append(getattr(example, read)() == value)
        label_vw.finish_example(example)
    print(kind, same, "same" if all(labels) else "differ", flush=False)
vw.finish()
label_vw.finish()
