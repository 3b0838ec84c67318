"""2-D Grid LSTM over time x depth (Kalchbrenner, Danihelka & Graves 2015), the stacked form used
for sequences. Block (t, layer L) has two inputs along each dimension: along time the hidden
vector and memory (ht, ct) of step t-1 in the same layer; along depth (hd, cd) from layer L-1 at
step t (layer 0: hd = x_t, cd = 0). Both LSTM transforms read the concatenated hidden vector
H = [ht_(t-1); hd_in]:

    z = W_ih hd_in + b_ih + b_hh + W_hh ht_(t-1)              gates i f g o | di df dg do
    time:   ct = f * ct_(t-1) + i * g          ht = o * tanh(ct)
    depth:  cd = df * cd_in + di * dg          hd = do * tanh(cd)

with i, f, o, di, df, do = sigma(.) and g, dg = tanh(.) of their blocks of z (the time
transform's rows first, in PyTorch's order, then the depth transform's). (ht, ct) go on to step
t+1; (hd, cd) go up to layer L+1, and the top layer's hd_t is the output y_t.

So the model's state (h0, c0 in, h_n, c_n out) is the time pair (ht, ct), as for an LSTM; hd and
cd are hidden state parts the step writes and never reads back (their Jacobian columns are 0),
``output_part`` makes hd the output, and ``below = "cd"`` hands cd to the layer above. Each transform
has its own weights. They are untied across layers by default (one set per layer, like every
stacked model here); ``tied=True`` shares the depth dimension's weights as the paper's tied
Grid LSTM does: every layer above the first runs with layer 1's parameters (``*_l1``; layer 0
keeps its own, since it reads x, of another width), and their gradients add up there.
"""
from __future__ import annotations

from .activations import sigmoid
from .cell import Cell, Outer
from .recurrent import flag


class GridLSTMCell(Cell):
    name = "gridlstm"
    gates = ("i", "f", "g", "o", "di", "df", "dg", "do")
    state_names = ("h", "c")            # the time dimension's hidden vector and memory
    hidden_states = ("hd", "cd")        # the depth dimension's outputs, passed up
    output_part = 2
    below = "cd"
    memory_gate = "f"
    unit_gates = ("i", "f", "o", "di", "df", "do")
    batchable = False

    def __init__(self, tied=False):
        self.tied = flag("tied", tied)

    def config(self):
        return {"tied": self.tied}

    def describe(self):
        return ", tied=True" if self.tied else ""

    def param_layer(self, layer):
        return min(layer, 1) if self.tied else layer

    @staticmethod
    def _lstm(xp, z, m_prev, H):
        """One LSTM transform: gates from z (B, 4H) in order i, f, g, o; memory m_prev."""
        i = sigmoid(xp, z[:, :H])
        f = sigmoid(xp, z[:, H:2 * H])
        g = xp.tanh(z[:, 2 * H:3 * H])
        o = sigmoid(xp, z[:, 3 * H:])
        m = f * m_prev + i * g
        tm = xp.tanh(m)
        return o * tm, m, dict(i=i, f=f, g=g, o=o, tm=tm, m_prev=m_prev)

    @staticmethod
    def _lstm_backward(xp, k, dh, dm):
        """dL/dz (B, 4H) and dL/dm_prev of one transform, given dL/dh and dL/dm (carried)."""
        i, f, g, o, tm = k["i"], k["f"], k["g"], k["o"], k["tm"]
        dm = dm + dh * o * (1 - tm * tm)
        parts = (dm * g * i * (1 - i), dm * k["m_prev"] * f * (1 - f), dm * i * (1 - g * g),
                 dh * tm * o * (1 - o))
        return xp.concatenate(parts, axis=1), dm * f

    def step(self, xp, p, u, state, below=None):
        ht_prev, ct_prev = state[0], state[1]
        H = ct_prev.shape[-1]
        z = u + ht_prev @ p["weight_hh"].T
        cd_in = xp.zeros_like(ct_prev) if below is None else below
        ht, ct, kt = self._lstm(xp, z[:, :4 * H], ct_prev, H)
        hd, cd, kd = self._lstm(xp, z[:, 4 * H:], cd_in, H)
        return (ht, ct, hd, cd), dict(time=kt, depth=kd, ht_prev=ht_prev, below=below)

    def step_backward(self, xp, p, k, dstate):
        dht, dct, dhd, dcd = dstate
        dz_t, dct_prev = self._lstm_backward(xp, k["time"], dht, dct)
        dz_d, dcd_in = self._lstm_backward(xp, k["depth"], dhd, dcd)
        du = xp.concatenate([dz_t, dz_d], axis=1)
        zero = xp.zeros_like(dht)
        return (du, (du @ p["weight_hh"], dct_prev, zero, zero),
                {"weight_hh": Outer(du, k["ht_prev"])},
                None if k["below"] is None else dcd_in)

    def state_gradient(self, xp, p, k, dstate):
        """The probes' dL/dc_t (and dL/dcd_t) include the paths through the same step's h."""
        dht, dct, dhd, dcd = dstate
        kt, kd = k["time"], k["depth"]
        return (dht, dct + dht * kt["o"] * (1 - kt["tm"] ** 2), dhd,
                dcd + dhd * kd["o"] * (1 - kd["tm"] ** 2))

    def gate_values(self, k):
        values = {g: k["time"][g] for g in "ifgo"}
        values.update({"d" + g: k["depth"][g] for g in "ifgo"})
        return values
