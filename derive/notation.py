"""Stage 0: the one notation table. How each quantity of the lecture is written, and what it is.

Contract: :data:`NOTATION` maps a base name (``s``, ``W_y``, ``delta``) to its LaTeX, its plain
text (Unicode, for code comments, docstrings and the command line), its HTML (diagram labels) and
its meaning (the notes' table). A symbol named ``<base>_<index>`` is the quantity at a step:
``s_3`` is s̄_3, ``s_t - 1`` is s̄_{t-1}. :func:`lookup` splits a name into its entry and index;
every printer and every generated docstring goes through it, so notation lives here and nowhere
else. A name without an entry is an error (:class:`~derive.errors.GenerationError`), never a
guess.
"""

from __future__ import annotations

from dataclasses import dataclass

from derive.errors import GenerationError


@dataclass(frozen=True)
class Notation:
    """How a quantity is written: LaTeX, plain text, HTML; and what it is (empty: not tabulated)."""

    latex: str
    text: str
    html: str
    meaning: str = ""


# The order of the entries is the order in which sums are printed (x̄_t W_x before s̄_{t-1} W_s,
# as Eq. 33 is written) and the order of the notes' table of quantities.
NOTATION: dict[str, Notation] = {
    "x": Notation(r"\bar{x}", "x̄", "x̄", "input"),
    "d": Notation(r"\bar{d}", "d̄", "d̄", "desired output"),
    # the gates first: sums and ⊙ print as the cells are written (f̄_t ⊙ c̄_{t−1})
    "r": Notation(r"\bar{r}", "r̄", "r̄", "reset gate of the GRU"),
    "u": Notation(r"\bar{u}", "ū", "ū", "update gate of the GRU"),
    "n": Notation(r"\bar{n}", "n̄", "n̄", "candidate state of the GRU"),
    "m": Notation(
        r"\bar{m}", "m̄", "m̄", "s̄_{t−1} W_sn + b̄_sn, what the reset gate scales (our name)"
    ),
    "ig": Notation(r"\bar{\imath}", "ī", "ī", "input gate of the LSTM"),
    "fg": Notation(r"\bar{f}", "f̄", "f̄", "forget gate of the LSTM"),
    "gg": Notation(r"\bar{g}", "ḡ", "ḡ", "candidate cell of the LSTM"),
    "og": Notation(r"\bar{o}", "ō", "ō", "output gate of the LSTM"),
    "s": Notation(r"\bar{s}", "s̄", "s̄", "state, the network's memory"),
    "z": Notation(r"\bar{z}", "z̄", "z̄", "pre-activation of the state (our name)"),
    "o": Notation(r"\bar{v}", "v̄", "v̄", "pre-activation of the output (our name)"),
    "y": Notation(r"\bar{y}", "ȳ", "ȳ", "output"),
    "E": Notation("E", "E", "E", "loss"),
    "delta": Notation(r"\delta", "δ", "δ", "∂E/∂z̄_t (our name)"),
    "g": Notation(r"\gamma", "γ", "γ", "∂E/∂v̄_t (our name)"),
    # The gated cells (GRU, LSTM): states, gates, our names for pre-activations and adjoints.
    "h": Notation(r"\bar{h}", "h̄", "h̄", "hidden state of the LSTM, what the output reads"),
    "c": Notation(r"\bar{c}", "c̄", "c̄", "cell state of the LSTM"),
    **{
        f"z{q}": Notation(
            rf"\bar{{z}}^{{{q}}}", f"z̄^{q}", f"z̄<sup>{q}</sup>", f"pre-activation of {g} (our name)"
        )
        for q, g in (
            ("r", "r̄"),
            ("u", "ū"),
            ("n", "n̄"),
            ("i", "ī"),
            ("f", "f̄"),
            ("g", "ḡ"),
            ("o", "ō"),
        )
    },
    **{
        f"d{q}": Notation(rf"\delta^{{{q}}}", f"δ^{q}", f"δ<sup>{q}</sup>", f"∂E/∂{w}_t (our name)")
        for q, w in (("s", "s̄"), ("h", "h̄"), ("c", "c̄"), ("m", "m̄"))
    },
    **{
        f"dz{q}": Notation(
            rf"\delta^{{{q}}}", f"δ^{q}", f"δ<sup>{q}</sup>", f"∂E/∂z̄^{q}_t (our name)"
        )
        for q in ("r", "u", "n", "i", "f", "g", "o")
    },
    "b": Notation(r"\bar{b}", "b̄", "b̄", "bias"),
    # the loss's scale (Config.scale), κ since c̄ is the LSTM's cell state
    "kappa": Notation(r"\kappa", "κ", "κ", "the loss's scale, 1 in the lecture (our name)"),
    "W_x": Notation("W_x", "W_x", "W<sub>x</sub>", "input-to-state weights"),
    "W_s": Notation("W_s", "W_s", "W<sub>s</sub>", "state-to-state weights"),
    "W_y": Notation("W_y", "W_y", "W<sub>y</sub>", "state-to-output weights"),
    "D": Notation("D", "D", "D", "diag(Φ'(z̄_t)), the derivatives of Φ at step t (our name)"),
    "U": Notation("U", "U", "U", "the row gradient a factor receives"),
    "W": Notation("W", "W", "W"),  # any one of the weights
    "Q": Notation("Q", "Q", "Q"),  # an orthogonal matrix (the notes' exercise on vanishing)
    # The named entry-wise functions (derive.activations): Φ and the gated cells' σ and tanh,
    # with their derivatives; keyed by the SymPy function's name.
    "Phi": Notation(r"\Phi", "Φ", "Φ", "the activation, entry by entry"),
    "dPhi": Notation(r"\Phi'", "Φ'", "Φ'"),
    "sigma": Notation(r"\sigma", "σ", "σ", "the logistic function, entry by entry"),
    "dsigma": Notation(r"\sigma'", "σ'", "σ'"),
    "Tanh": Notation(r"\tanh", "tanh", "tanh"),
    "dTanh": Notation(r"\tanh'", "tanh'", "tanh'"),
}


def function(fn: object) -> Notation | None:
    """How a named entry-wise function (Φ, σ, tanh and their derivatives) is written; None for
    any other function."""
    name = getattr(fn, "__name__", None)
    return NOTATION[name] if name in _FUNCTIONS else None


_FUNCTIONS = ("Phi", "dPhi", "sigma", "dsigma", "Tanh", "dTanh")

_RANK = {name: rank for rank, name in enumerate(NOTATION)}


def lookup(name: str) -> tuple[Notation, str | None]:
    """The entry for a symbol name and its step index without spaces (None for a bare name)."""
    if name in NOTATION:
        return NOTATION[name], None
    head, sep, index = name.rpartition("_")
    base = head.partition("^")[0]
    if sep and base in NOTATION and index:
        return NOTATION[base], index.replace(" ", "")
    raise GenerationError(f"no notation for the symbol {name!r}: add it to derive/notation.py")


def _loss(name: str) -> str | None:
    """u of ``delta^u_t`` (an adjoint with respect to E_u alone), else None."""
    head = name.rpartition("_")[0]
    return head.partition("^")[2].replace(" ", "") or None


def rank(name: str) -> int:
    """Where a symbol's base stands in :data:`NOTATION` (unknown names last)."""
    if name in _RANK:
        return _RANK[name]
    return _RANK.get(name.rpartition("_")[0], len(_RANK))


def latex_name(name: str) -> str:
    """``s_3`` → ``\\bar{s}_{3}``, ``s_t - 1`` → ``\\bar{s}_{t-1}``, ``delta^3_2`` →
    ``\\delta^{(3)}_{2}``."""
    entry, index = lookup(name)
    loss = _loss(name)
    head = entry.latex if loss is None else f"{entry.latex}^{{({loss})}}"
    return head if index is None else f"{head}_{{{index}}}"


def text_name(name: str) -> str:
    """``s_3`` → ``s̄_3``, ``s_t - 1`` → ``s̄_(t-1)`` (a compound index in parentheses),
    ``delta^3_2`` → ``δ^(3)_2``."""
    entry, index = lookup(name)
    loss = _loss(name)
    head = entry.text if loss is None else f"{entry.text}^({loss})"
    if index is None:
        return head
    return f"{head}_{index}" if index.isalnum() else f"{head}_({index})"


def html_name(name: str) -> str:
    """``s_3`` → ``s̄<sub>3</sub>``."""
    entry, index = lookup(name)
    loss = _loss(name)
    head = entry.html if loss is None else f"{entry.html}<sup>({loss})</sup>"
    return head if index is None else f"{head}<sub>{index}</sub>"
