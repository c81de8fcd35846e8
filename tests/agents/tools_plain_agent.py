"""A program that knows nothing of tracetape: it runs a command, then itself once more as a child,
prints one JSON line and exits with the status it was given. Tests run it under ``tracetape run``
and ``opentelemetry-instrument``.

Usage: ``tools_plain_agent.py ROLE EXIT_STATUS``.
"""

import json
import subprocess
import sys


def main() -> None:
    role, status = sys.argv[1], int(sys.argv[2])
    said = subprocess.run(["echo", f"{role} here"], capture_output=True, text=True, check=True).stdout.strip()
    child = None
    if role == "parent":
        done = subprocess.run([sys.executable, __file__, "child", "0"], capture_output=True, text=True, check=True)
        child = json.loads(done.stdout)
    print(json.dumps({"role": role, "said": said, "child": child, "recorded": "tracetape" in sys.modules}))
    sys.exit(status)


if __name__ == "__main__":
    main()
