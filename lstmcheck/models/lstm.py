"""LSTM: one cell; every variant is a flag on it.

One step (u = W_ih x_t + b_ih + b_hh comes precomputed), in PyTorch's gate order i, f, g, o:

    z   = u + W_hh h_prev             [+ W_gr a_prev: fgr, recurrence from the i,f,o activations]
    z_i += p_i * c_prev;  z_f += p_f * c_prev                              (peephole)
    i = act_f(z_i)     (1 without an input gate)
    f = act_f(z_f)     (1 - i when coupled, 1 without a forget gate)
    g = act_g(z_g)     (tanh; identity for niaf)
    c = f * c_prev + i * g                    (clipped to +-cell_clip when set)
    z_o += p_o * c                                                         (peephole)
    o = act_f(z_o)     (1 without an output gate)
    h = o * act_h(c)   (tanh; identity for noaf / no_output_tanh), then W_hr h with a projection

``clip`` bounds every gate pre-activation to [-clip, clip] (ONNX). Gate blocks that a variant
lacks are left out of the stacked weights. The fused, threaded execution of whole sequences
lives in fused_lstm.py and is tested against this step.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import activations as A
from .cell import Cell, Outer
from .recurrent import Recurrent, positive_int, positive_number
from ..errors import OptionError

VARIANTS = {
    # name: flag overrides (Greff et al. 2015 ablations are taken relative to "vanilla")
    "vanilla": {},
    "peephole": {"peephole": True},
    "cifg": {"coupled": True},
    "no_output_tanh": {"act_h": "identity"},
    "nig": {"input_gate": False},
    "nfg": {"forget_gate": False},
    "nog": {"output_gate": False},
    "niaf": {"act_g": "identity"},
    "noaf": {"act_h": "identity"},
    "fgr": {"gate_recurrence": True},
}


@dataclass(frozen=True)
class LSTMFlags:
    input_gate: bool = True
    forget_gate: bool = True
    output_gate: bool = True
    coupled: bool = False          # f = 1 - i (CIFG, ONNX input_forget)
    peephole: bool = False
    gate_recurrence: bool = False  # FGR
    act_f: str = "sigmoid"         # gate activation (ONNX 'f')
    act_g: str = "tanh"            # cell input activation (ONNX 'g')
    act_h: str = "tanh"            # output activation (ONNX 'h')
    clip: float | None = None
    cell_clip: float | None = None


def _bound(xp, z, limit):
    """z clipped to [-limit, limit] (on the real part: the complex step sees a flat function
    there) and where it was inside."""
    if limit is None:
        return z, None
    inside = abs(z.real) < limit
    return xp.where(inside, z, xp.clip(z.real, -limit, limit)), inside


def _masked(d, inside):
    return d if inside is None else d * inside


class LSTMCell(Cell):
    name = "lstm"
    state_names = ("h", "c")
    memory_gate = "f"         # None for the variants without a forget gate
    batchable = True

    # (a variant whose tensors the target's parameters lack, such as peephole, is skipped)
    alternatives = {"variant": tuple(VARIANTS)}

    def __init__(self, flags: LSTMFlags = LSTMFlags(), proj_size: int = 0):
        self.flags, self.proj_size = flags, proj_size
        fl = flags
        self.f_act, self.g_act, self.h_act = A.get(fl.act_f), A.get(fl.act_g), A.get(fl.act_h)
        self.gates = tuple(("i" if fl.input_gate else "") + ("f" if fl.forget_gate and not fl.coupled else "")
                           + "g" + ("o" if fl.output_gate else ""))
        self.peep_gates = tuple(g for g in self.gates if g in "ifo")   # act_f gates, i,f,o order
        self.unit_gates = self.peep_gates
        self.memory_gate = "f" if "f" in self.gates else None
        self.hidden_states = ("a",) if fl.gate_recurrence and self.peep_gates else ()
        self.closed_jacobian = flags == LSTMFlags() and not proj_size
        from .fused_lstm import FusedLSTM
        self.fused = FusedLSTM(self)

    # ---- structure
    def extra_params(self, H):
        extra = {}
        if self.flags.peephole and self.peep_gates:
            extra["weight_peep"] = (len(self.peep_gates), H)
        if self.hidden_states:
            n = len(self.peep_gates) * H
            extra["weight_gr"] = (n, n)
        if self.proj_size:
            extra["weight_hr"] = (self.proj_size, H)
        return extra

    def state_sizes(self, H):
        return (self.proj_size or H, H) + ((len(self.peep_gates) * H,) if self.hidden_states else ())

    def config(self):
        fl = self.flags
        cfg = {"variant": variant_name(fl)}
        implied = parse_variant(cfg["variant"])
        acts = ("act_f", "act_g", "act_h")
        if any(getattr(fl, a) != getattr(implied, a) for a in acts):
            cfg["activations"] = [getattr(fl, a) for a in acts]
        for name in ("clip", "cell_clip"):
            if getattr(fl, name) is not None:
                cfg[name] = getattr(fl, name)
        return cfg

    def describe(self):
        return "".join(f", {k}={v!r}" for k, v in self.config().items()
                       if not (k == "variant" and v == "vanilla"))

    def locate(self, base, idx, H):
        if base == "weight_peep":
            return {"gate": self.peep_gates[idx[0]], "row": int(idx[1])}
        if base == "weight_gr":
            return {"gate": self.peep_gates[idx[0] // H], "row": int(idx[0] % H),
                    "from_gate": self.peep_gates[idx[1] // H], "column": int(idx[1] % H)}
        return super().locate(base, idx, H)

    def _blocks(self, z, H):
        return {g: z[:, j * H:(j + 1) * H] for j, g in enumerate(self.gates)}

    # ---- one step
    def step(self, xp, p, u, state):
        fl = self.flags
        h_prev, c_prev = state[:2]
        H = c_prev.shape[-1]
        z = u + h_prev @ p["weight_hh"].T
        zb = self._blocks(z, H)
        if self.hidden_states:                     # fgr: the previous step's i, f, o
            r = state[2] @ p["weight_gr"].T
            for j, g in enumerate(self.peep_gates):
                zb[g] = zb[g] + r[:, j * H:(j + 1) * H]
        peep = dict(zip(self.peep_gates, p["weight_peep"])) if fl.peephole else {}
        for g in "if":
            if g in peep:
                zb[g] = zb[g] + peep[g] * c_prev
        inside = {}
        a = {}
        for g in self.gates:
            if g != "o":
                zg, inside[g] = _bound(xp, zb[g], fl.clip)
                a[g] = (self.g_act if g == "g" else self.f_act)(xp, zg)
        i = a.get("i", 1.0)
        f = 1.0 - i if fl.coupled else a.get("f", 1.0)
        g = a["g"]
        c, inside["c"] = _bound(xp, f * c_prev + i * g, fl.cell_clip)
        if "o" in self.gates:
            zo, inside["o"] = _bound(xp, zb["o"] + peep["o"] * c if "o" in peep else zb["o"], fl.clip)
            a["o"] = self.f_act(xp, zo)
        o = a.get("o", 1.0)
        a_h = self.h_act(xp, c)
        m = o * a_h
        h = m @ p["weight_hr"].T if self.proj_size else m
        new = (h, c)
        if self.hidden_states:
            new += (xp.concatenate([a[g] for g in self.peep_gates], axis=1),)
        return new, dict(a=a, i=i, f=f, g=g, o=o, c=c, c_prev=c_prev, h_prev=h_prev, a_h=a_h, m=m,
                         inside=inside, a_prev=state[2] if self.hidden_states else None)

    def _dc(self, xp, p, k, dh, dc, da):
        """dL/do's pre-activation and the whole dL/dc_t: carried, through h = o act_h(c), and
        through o's peephole (da: fgr's gradient into this step's o)."""
        dm = dh @ p["weight_hr"] if self.proj_size else dh
        dc = dc + dm * k["o"] * self.h_act.grad(xp, k["a_h"])
        dzo = None
        if "o" in self.gates:
            do = dm * k["a_h"] + (da["o"] if da is not None else 0.0)
            dzo = _masked(do * self.f_act.grad(xp, k["o"]), k["inside"]["o"])
            if self.flags.peephole:
                dc = dc + dzo * p["weight_peep"][len(self.peep_gates) - 1]
        return dzo, _masked(dc, k["inside"]["c"])

    def _split(self, da, H):
        return None if da is None else {g: da[:, j * H:(j + 1) * H] for j, g in enumerate(self.peep_gates)}

    def step_backward(self, xp, p, k, dstate):
        fl = self.flags
        dh, dc = dstate[:2]
        H = dc.shape[-1]
        da = self._split(dstate[2], H) if self.hidden_states else None   # fgr: into i, f, o of t
        peep = dict(zip(self.peep_gates, p["weight_peep"])) if fl.peephole else {}
        dz, grads = {}, {}
        dz["o"], dc = self._dc(xp, p, k, dh, dc, da)
        d = {"g": dc * k["i"]}                                  # dL/d(activations)
        if "i" in self.gates:
            d["i"] = dc * k["g"] - (dc * k["c_prev"] if fl.coupled else 0.0)
        if "f" in self.gates:
            d["f"] = dc * k["c_prev"]
        for g, dg in d.items():
            if da is not None and g in da:
                dg = dg + da[g]
            act = self.g_act if g == "g" else self.f_act
            dz[g] = _masked(dg * act.grad(xp, k["a"][g]), k["inside"][g])
        du = xp.concatenate([dz[g] for g in self.gates], axis=1)
        dc_prev = dc * k["f"]
        for g in "if":
            if g in peep:
                dc_prev = dc_prev + dz[g] * peep[g]
        dprev = (du @ p["weight_hh"], dc_prev)
        grads["weight_hh"] = Outer(du, k["h_prev"])
        if peep:
            at = {"i": k["c_prev"], "f": k["c_prev"], "o": k["c"]}
            grads["weight_peep"] = xp.stack([(dz[g] * at[g]).sum(axis=0) for g in self.peep_gates])
        if self.hidden_states:
            dz_pg = xp.concatenate([dz[g] for g in self.peep_gates], axis=1)
            grads["weight_gr"] = Outer(dz_pg, k["a_prev"])
            dprev += (dz_pg @ p["weight_gr"],)
        if self.proj_size:
            grads["weight_hr"] = Outer(dh, k["m"])
        return du, dprev, grads

    def step_jacobian(self, xp, p, u, state):
        """Closed form for the vanilla cell: d(h, c)/d(h_prev, c_prev); VJPs otherwise."""
        if not self.closed_jacobian:
            return super().step_jacobian(xp, p, u, state)
        _, k = self.step(xp, p, u, state)
        i, f, g, o, tc, c_prev = k["i"], k["f"], k["g"], k["o"], k["a_h"], k["c_prev"]
        H = c_prev.shape[-1]
        W = p["weight_hh"]
        rows = lambda a, blk: a[:, :, None] * W[None, blk * H:(blk + 1) * H]   # noqa: E731
        dc_dh = rows(c_prev * f * (1 - f), 1) + rows(g * i * (1 - i), 0) + rows(i * (1 - g * g), 2)
        do = o * (1 - tc * tc)                                   # dh/dc_t
        J = xp.zeros((i.shape[0], 2 * H, 2 * H), u.dtype)
        J[:, :H, :H] = rows(tc * o * (1 - o), 3) + do[:, :, None] * dc_dh
        J[:, H:, :H] = dc_dh
        idx = xp.arange(H)
        J[:, idx, H + idx] = do * f                              # dh/dc_prev (diagonal)
        J[:, H + idx, H + idx] = f                               # dc/dc_prev (diagonal)
        return J

    def gate_values(self, k):
        return dict(k["a"])

    def memory(self, values):
        if self.flags.coupled:
            return "1-i", 1.0 - values["i"]
        return super().memory(values)

    def state_gradient(self, xp, p, k, dstate):
        """The probes' dL/dc_t includes the path through this step's own h_t (and o's peephole)."""
        H = dstate[1].shape[-1]
        da = self._split(dstate[2], H) if self.hidden_states else None
        return (dstate[0], self._dc(xp, p, k, dstate[0], dstate[1], da)[1]) + tuple(dstate[2:])


def parse_variant(variant: str, **overrides) -> LSTMFlags:
    """'vanilla', 'peephole', ... or several joined with '+', e.g. 'peephole+cifg'."""
    if not isinstance(variant, str) or not variant:
        raise OptionError(f"variant must be a string such as 'vanilla', got {variant!r}.")
    flags = {}
    for part in variant.lower().split("+"):
        part = part.strip()
        if part not in VARIANTS:
            raise OptionError(f"unknown LSTM variant {part!r}; choose from {', '.join(VARIANTS)} "
                              f"(combine with '+', e.g. 'peephole+cifg').")
        flags.update(VARIANTS[part])
    flags.update({k: v for k, v in overrides.items() if v is not None})
    f = LSTMFlags(**flags)
    if f.coupled and not f.forget_gate:
        raise OptionError("variant 'cifg' couples the forget gate to the input gate, so it cannot be "
                          "combined with 'nfg'.")
    if f.coupled and not f.input_gate:
        raise OptionError("variant 'cifg' needs the input gate, so it cannot be combined with 'nig'.")
    for name in ("clip", "cell_clip"):
        if getattr(f, name) is not None:
            positive_number(name, getattr(f, name))
    return f


def variant_name(f: LSTMFlags) -> str:
    """The canonical '+'-joined variant string for a set of flags."""
    parts = [name for name, over in VARIANTS.items()
             if over and name != "noaf" and all(getattr(f, k) == v for k, v in over.items())]
    return "+".join(parts) or "vanilla"


class LSTM(Recurrent):
    """Long short-term memory, PyTorch semantics by default (see the module docstring)."""

    cell_type = LSTMCell

    def __init__(self, input_size, hidden_size, *, num_layers=1, direction="forward",
                 bidirectional=None, proj_size=0, variant="vanilla", backend="numpy",
                 dtype="float64", batch_first=False, clip=None, cell_clip=None, activations=None):
        acts = {}
        if activations is not None:
            if not isinstance(activations, (tuple, list)) or len(activations) != 3:
                raise OptionError("activations must be three names (gate f, cell input g, output h), "
                                  "e.g. ('sigmoid', 'tanh', 'tanh').")
            for key, spec in zip(("act_f", "act_g", "act_h"), activations):
                act = A.get(spec)   # validates the name and its parameters
                acts[key] = act.name if act.alpha is None else spec
        flags = parse_variant(variant, clip=clip, cell_clip=cell_clip, **acts)
        proj = positive_int("proj_size", proj_size, allow_zero=True)
        hidden = positive_int("hidden_size", hidden_size)
        if proj and proj >= hidden:
            raise OptionError(f"proj_size ({proj}) must be smaller than hidden_size ({hidden}), "
                              f"as in PyTorch.")
        super().__init__(LSTMCell(flags, proj), input_size, hidden_size, num_layers=num_layers,
                         direction=direction, bidirectional=bidirectional, backend=backend,
                         dtype=dtype, batch_first=batch_first)

    @property
    def flags(self):
        return self.cell.flags

    @property
    def variant(self):
        return variant_name(self.cell.flags)

    @property
    def proj_size(self):
        return self.cell.proj_size
