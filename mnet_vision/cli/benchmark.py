"""CPU benchmarks (inference; training too for detection and attributes), peers side by side in the same run.

    python tools/benchmark.py [name=classification] [key=value ...]
    python tools/benchmark.py name=index sizes=[10000] queries=200 threads=2
    python tools/benchmark.py --help          # every benchmark, its keys and their defaults

name is one of mnet_vision.benchmarks.suite.BENCHMARKS (default: classification); the keys are the
keyword arguments of that benchmark's functions in mnet_vision/benchmarks/, whose defaults apply
(conf/benchmark.yaml declares each key, unset). Values are YAML: lists in brackets, null for None.
Prints a header line and a Markdown table.
"""
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from mnet_vision.benchmarks.suite import BENCHMARKS, describe, run
from mnet_vision.cli.overrides import given
from mnet_vision.config import CONF_DIR


def usage() -> str:
    lines = [__doc__.strip(), "", "Benchmarks and their keys (defaults):"]
    lines += [f"  {name}: {describe(name)}" for name in BENCHMARKS]
    return "\n".join(lines)


# --help prints hydra.help.template, which conf/benchmark.yaml sets to this usage (the benchmark
# list is read from the suite, so it cannot be written in the yaml)
OmegaConf.register_new_resolver("mnet_benchmark_usage", usage, replace=True)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="benchmark")
def main(cfg: DictConfig) -> None:
    if cfg.name not in BENCHMARKS:
        sys.exit(usage())
    try:
        print(run(name=cfg.name, overrides=given(cfg, [key for key in cfg if key != "name"])))
    except ValueError as err:  # a key this benchmark does not take: say which ones it does
        sys.exit(f"error: {err}")
