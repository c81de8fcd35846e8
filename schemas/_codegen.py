"""Regenerate (or check) the Python code compiled from ``blobs.proto``.

Generated modules are committed so the agent side needs no protoc; CI runs
``python -m tracetape.schemas._codegen --check`` so they never drift.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_OUT = _HERE / "_proto"
_GENERATED = ("blobs_pb2.py", "blobs_pb2_grpc.py")


def _generate(out_dir: Path) -> None:
    try:
        from grpc_tools import protoc
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SystemExit("grpcio-tools is needed: pip install 'tracetape[test]'") from exc
    code = protoc.main(["protoc", f"-I{_HERE}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}",
                        str(_HERE / "blobs.proto")])
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")
    # protoc emits `import blobs_pb2`; make it package-relative so the module
    # resolves as tracetape.schemas._proto.blobs_pb2 and nothing else.
    grpc_module = out_dir / "blobs_pb2_grpc.py"
    grpc_module.write_text(grpc_module.read_text().replace("import blobs_pb2 as", "from . import blobs_pb2 as"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the committed code is stale")
    args = parser.parse_args(argv)
    if not args.check:
        _generate(_OUT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        _generate(Path(tmp))
        stale = [name for name in _GENERATED if (Path(tmp) / name).read_bytes() != (_OUT / name).read_bytes()]
    if stale:
        print(f"stale generated code: {', '.join(stale)}; run python -m tracetape.schemas._codegen", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
