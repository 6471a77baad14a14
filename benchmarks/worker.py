"""One fresh-process round of a micro benchmark: ``python -m benchmarks.worker SECTION CONFIG``.

Prints ``{case: [ns per call, ...]}`` as JSON on stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from benchmarks import lookup, resolve
from benchmarks.fresh import Samples

MEASURES: dict[str, Callable[[dict[str, Any]], Samples]] = {
    "lookup": lookup.measure,
    "resolve": resolve.measure,
}


def main(argv: list[str]) -> None:
    section, config = argv
    print(json.dumps(MEASURES[section](json.loads(config))))


if __name__ == "__main__":
    main(sys.argv[1:])
