"""bptt-derive: backpropagation through time derived by computer algebra.

The lecture's simple RNN (row vectors; Eq. 33–35)::

    s̄_t = Φ(x̄_t W_x + s̄_{t-1} W_s)      ȳ_t = s̄_t W_y  (or softmax(s̄_t W_y))
    E_t = c (d̄_t − ȳ_t)(d̄_t − ȳ_t)ᵀ

is stated once, as the equations of one step over a few operations that each carry their local
derivative rule (:mod:`derive.model`, :mod:`derive.ops`); the chain rule through s̄_N … s̄_1 is
expanded into terms of named factors (Eq. 36–47), swept into closed forms and the δ recurrence,
and proven equal to the entry-wise derivative of the explicit scalar loss.

Public API::

    from derive import Config, derive, prove
    d = derive(Config(steps=3, activation="tanh", output="linear", scale=1, loss_steps="last"))
    d.statement.equations          # Eq. 33–35 at a generic step t, stated once
    d.expansions["W_s"].terms      # the three paths through s̄_3, s̄_2, s̄_1 (Eq. 38–40)
    d.closed.expanded["W_s"]       # the same terms as matrix expressions
    d.closed.recurrence            # g_t and δ_t, the backward sweep
    d.closed.collected["W_s"]      # Σ_i s̄_{i-1}ᵀ δ_i
    d.closed.generic               # the sweep at a generic step t, for any number of steps
    prove(d, (3, 3, 3)).ok         # every form == sympy.diff of the explicit loss

The stages, what each owns and where each kind of addition goes: docs/ARCHITECTURE.md. In
short, data flows one way: config → model → chain → closed forms → Derivation → (proof | code
plans | notes) → printers and backends → files, with :mod:`derive.generate` running each stage
once and :mod:`derive.__main__` the command line.

Names follow the lecture: weights ``W_x``, ``W_s``, ``W_y``; sequences ``x``, ``s``, ``y``,
``d``; the loss ``E``. A gradient of E with respect to W_s is called ``dE_dW_s`` in derive/ and
is the field ``W_s`` of a generated module's ``Gradients``. Our own names for quantities the
lecture writes inline: z̄_t (state pre-activation), ō_t (output pre-activation), g_t = ∂E/∂ō_t,
δ_t = ∂E/∂z̄_t. Jacobians are in the numerator layout, so the lecture's chain-rule products read
left to right are literal matrix products.
"""

from derive.config import Config
from derive.derivation import Derivation, derive
from derive.verify import Proof, prove

__all__ = ["Config", "Derivation", "Proof", "derive", "prove"]
