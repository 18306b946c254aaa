"""One isolated timing job: ``python -m bench.worker '{"case": ..., "key": ..., ...}'``.

Builds one implementation for one case in this fresh process, times its ``loss`` and
``gradients`` (taking turns round by round, disturbed rounds taken again, as
:func:`bench.run.round_robin` does) and prints every round, its samples and how disturbed it
was, as one line of JSON; the parent (:mod:`bench.run`) chooses among the rounds of all the
processes it ran for this implementation. The parent has already checked the values.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from bench import peers
from bench.cases import CASES, inputs
from bench.run import round_robin


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    job = json.loads(args[0])
    case = CASES[job["case"]]
    spec = next(s for s in peers.SPECS if s.key == job["key"])
    impl = spec.factory(inputs(case, job["seed"]))
    sampled = round_robin(
        [impl.loss, impl.gradients], job["rounds"], job["min_sample"], job.get("canary")
    )
    out = {
        "reps": sampled.reps,
        "rounds": sampled.rounds,
        "compile_seconds": impl.compile_seconds,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
