"""One measured process: ``python -m benchmarks.child KIND RESULT_JSON PARAMS_JSON``.

Runs probe KIND of ``benchmarks.probes`` or ``benchmarks.postgres_probes`` with PARAMS_JSON
as keyword arguments and writes its result, plus this process's own memory high-water
mark, to RESULT_JSON. Only the standard library is imported before the probe starts.
"""

import json
import sys
from pathlib import Path

from benchmarks import postgres_probes, probes

PROBES = {**probes.PROBES, **postgres_probes.PROBES}


def _address_space_peak_kib() -> int | None:
    """VmHWM: the peak resident size of this process's own address space (Linux only).

    Unlike ru_maxrss it cannot include what the parent had when it forked this process.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def main(argv: list[str]) -> None:
    kind, out, params = argv[1], Path(argv[2]), json.loads(argv[3])
    result = PROBES[kind](**params)
    result["address_space_peak_kib"] = _address_space_peak_kib()
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv)
