"""What an exported ONNX graph feeds into its LSTM/GRU/RNN nodes and what it returns from them.

``torch.onnx.export`` does not write bare nodes: it slices ``h0`` per layer, squeezes the
operator's ``[T, dirs, B, H]`` output, transposes for ``batch_first``, concatenates the layers'
``Y_h`` and names everything after its own counter ("input", "92"). The audit treats the graph as
a black box but has to know which graph input is X, h0, c0 or the lengths and which graph output
is y, h_n or c_n. It finds out by following values through the shape-only operators between a
graph input (or output) and an RNN node's input (or output) slot."""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import FileFormatError

RNN_OPS = ("LSTM", "GRU", "RNN")
# operators that move or select values without computing new ones; the roles flow through them
SHAPE_OPS = {"Transpose", "Squeeze", "Unsqueeze", "Reshape", "Identity", "Cast", "Slice",
             "Gather", "Concat", "Expand", "Flatten", "Split", "ReverseSequence"}
_IN_ROLES = {0: "X", 4: "sequence_lens", 5: "initial_h", 6: "initial_c"}
_OUT_ROLES = ("y", "h", "c")


@dataclass
class Route:
    """One graph value's route to (or from) an RNN node slot."""
    role: str
    node: int          # index among the RNN nodes, in graph order
    swaps_time_batch: bool   # a Transpose with perm [1, 0, 2] on the way (batch_first)


def _perm(node):
    for a in node.attribute:
        if a.name == "perm":
            return list(a.ints)
    return None


def rnn_nodes(graph):
    return [n for n in graph.node if n.op_type in RNN_OPS and n.domain in ("", "ai.onnx")]


def input_routes(graph, feed_names, where) -> dict:
    """{graph input name: Route} for every fed input that reaches an RNN node's X,
    sequence_lens, initial_h or initial_c through shape-only operators."""
    nodes = rnn_nodes(graph)
    index = {id(n): k for k, n in enumerate(nodes)}
    consumers = {}
    for n in graph.node:
        for slot, v in enumerate(n.input):
            if v:
                consumers.setdefault(v, []).append((n, slot))
    routes = {}
    for name in feed_names:
        found = set()
        stack, seen = [(name, False)], set()
        while stack:
            v, swapped = stack.pop()
            if (v, swapped) in seen:
                continue
            seen.add((v, swapped))
            for n, slot in consumers.get(v, []):
                if id(n) in index and slot in _IN_ROLES:
                    found.add((_IN_ROLES[slot], index[id(n)], swapped))
                elif n.op_type in SHAPE_OPS and (slot == 0 or n.op_type == "Concat"):
                    flip = n.op_type == "Transpose" and _perm(n) == [1, 0, 2]
                    stack.extend((o, swapped ^ flip) for o in n.output if o)
        roles = {r for r, _, _ in found}
        if len(roles) > 1:
            raise FileFormatError(f"{where}: graph input {name!r} reaches the RNN nodes as "
                                  f"{' and '.join(sorted(roles))}; the audit cannot tell which "
                                  f"it is.")
        if roles:
            role, k, swapped = min(found, key=lambda f: f[1])
            if role == "X" and k != 0:
                raise FileFormatError(f"{where}: graph input {name!r} is the X of RNN node {k}, "
                                      f"not of the first one; the oracle stacks the nodes as "
                                      f"layers.")
            routes[name] = Route(role, k, swapped)
    return routes


def output_routes(graph) -> dict:
    """{graph output name: Route} for every output that a shape-only path leads back to an RNN
    node's Y, Y_h or Y_c."""
    nodes = rnn_nodes(graph)
    index = {id(n): k for k, n in enumerate(nodes)}
    producer = {o: n for n in graph.node for o in n.output if o}
    routes = {}
    for out in graph.output:
        found = set()
        stack = [(out.name, False)]
        while stack:
            v, swapped = stack.pop()
            n = producer.get(v)
            if n is None:
                continue
            if id(n) in index:
                slot = list(n.output).index(v)
                if slot < len(_OUT_ROLES):
                    found.add((_OUT_ROLES[slot], index[id(n)], swapped))
            elif n.op_type in SHAPE_OPS:
                flip = n.op_type == "Transpose" and _perm(n) == [1, 0, 2]
                srcs = n.input if n.op_type == "Concat" else n.input[:1]
                stack.extend((s, swapped ^ flip) for s in srcs if s)
        if not found and out.name in ("Y", "Y_h", "Y_c"):   # a hand-built graph's own names
            found.add((_OUT_ROLES[("Y", "Y_h", "Y_c").index(out.name)], len(nodes) - 1, False))
        roles = {r for r, _, _ in found}
        if len(roles) == 1:
            role = roles.pop()
            k = max(f[1] for f in found)
            routes[out.name] = Route(role, k, any(f[2] for f in found))
    return routes
