"""CPU benchmarks (inference; training too for detection and attributes), peers side by side in the same run.

    python tools/benchmark.py [NAME] [key=value ...]
    python tools/benchmark.py index sizes=[10000] queries=200 threads=2
    python tools/benchmark.py --help          # every benchmark, its keys and their defaults

NAME is one of mnet_vision.benchmarks.suite.BENCHMARKS (default: classification); the keys are the
keyword arguments of that benchmark's function in mnet_vision/benchmarks/, whose defaults apply.
Values are YAML: lists in brackets, null for None. Prints a header line and a Markdown table.
"""
import _isolate  # noqa: F401  (first: keeps tools/profile.py from shadowing the stdlib)
import sys

from omegaconf import OmegaConf

from mnet_vision.benchmarks.suite import BENCHMARKS, DEFAULT, describe, run


def usage() -> str:
    lines = [__doc__.strip(), "", "Benchmarks and their keys (defaults):"]
    lines += [f"  {name}: {describe(name)}" for name in BENCHMARKS]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if any(arg in ("-h", "--help") for arg in argv):
        print(usage())
        return
    name = argv.pop(0) if argv and "=" not in argv[0] else DEFAULT
    if name not in BENCHMARKS or any("=" not in arg for arg in argv):
        sys.exit(usage())
    try:
        print(run(name, OmegaConf.to_container(OmegaConf.from_dotlist(argv))))
    except ValueError as err:  # an unknown benchmark key: say which ones there are
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main(sys.argv[1:])
