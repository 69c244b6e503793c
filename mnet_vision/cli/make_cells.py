"""Build PlaNet-style adaptive S2 cell partitions from a geotagged photo list.

    python tools/make_cells.py csv=data/x/train.csv out=cells/ [t_max=[5000,2000,1000]] [t_min=50] \
        [min_level=2] [max_level=20] [map=true]

csv: a path,lat,lon photo list (columns by header, see mnet_vision.data.geotagged). One partition per
t_max (coarsest first), each written to out/cells_<t_min>_<t_max>.csv, with a map
out/cells_<t_min>_<t_max>.png when map=true. Cells holding more than t_max photos are split, cells
holding fewer than t_min are dropped with their photos. Prints a Markdown table of the partitions and
the data.partitions / data.num_cells overrides to train on them. Defaults: conf/make_cells.yaml.
"""
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from mnet_vision.config import CONF_DIR
from mnet_vision.data.cell_files import cells_table, make_cells

USAGE = ("usage: python tools/make_cells.py csv=PHOTOS.csv out=FOLDER [t_max=[5000,2000,1000]] [t_min=50] "
         "[min_level=2] [max_level=20] [map=true]")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="make_cells")
def main(cfg: DictConfig) -> None:
    if OmegaConf.is_missing(cfg, "csv") or OmegaConf.is_missing(cfg, "out"):
        sys.exit(USAGE)
    t_maxes = [int(t) for t in cfg.t_max] if OmegaConf.is_list(cfg.t_max) else [int(cfg.t_max)]
    t_min = int(cfg.t_min)
    rows = make_cells(csv_path=str(cfg.csv), out=str(cfg.out), t_maxes=t_maxes, t_min=t_min,
                      min_level=int(cfg.min_level), max_level=int(cfg.max_level), draw_map=bool(cfg.map))
    print(f"{cfg.csv}: {rows[0]['photos_kept'] + rows[0]['photos_dropped']} photos, cell ids and sort "
          f"{rows[0]['shared_seconds']:.2f} s (shared by the partitions), t_min {t_min}")
    print(cells_table(rows))
    for row in rows:
        print(f"wrote {row['csv']}" + (f" and {row['map']}" if row["map"] else ""))
    # the model's classifiers are built for these counts: train with exactly these overrides
    print(f"train with: task=planet data=geotagged data.partitions=[{','.join(r['csv'] for r in rows)}] "
          f"data.num_cells=[{','.join(str(r['cells']) for r in rows)}]")
