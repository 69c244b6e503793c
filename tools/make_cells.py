"""Build PlaNet-style adaptive S2 cell partitions from a geotagged photo list.

    python tools/make_cells.py csv=data/x/train.csv out=cells/ [t_max=[5000,2000,1000]] [t_min=50] \
        [min_level=2] [max_level=20] [map=true]

csv: a path,lat,lon photo list (columns by header, see mnet_vision.data.geotagged). One partition per
t_max (coarsest first), each written to out/cells_<t_min>_<t_max>.csv, with a map
out/cells_<t_min>_<t_max>.png when map=true. Cells holding more than t_max photos are split, cells
holding fewer than t_min are dropped with their photos. Prints a Markdown table of the partitions and
the data.partitions / data.num_cells overrides to train on them.
"""
import _isolate  # noqa: F401  (first: keeps tools/profile.py from shadowing the stdlib)
import sys

from omegaconf import OmegaConf

from mnet_vision.data.cell_files import cells_table, make_cells

USAGE = ("usage: python tools/make_cells.py csv=PHOTOS.csv out=FOLDER [t_max=[5000,2000,1000]] [t_min=50] "
         "[min_level=2] [max_level=20] [map=true]")


def main(argv: list[str]) -> None:
    args = OmegaConf.from_dotlist(argv)
    if not {"csv", "out"} <= set(args):
        sys.exit(USAGE)
    t_max = args.get("t_max", [5000, 2000, 1000])
    t_maxes = [int(t) for t in t_max] if OmegaConf.is_list(t_max) or isinstance(t_max, list) else [int(t_max)]
    t_min = int(args.get("t_min", 50))
    rows = make_cells(str(args.csv), str(args.out), t_maxes, t_min, int(args.get("min_level", 2)),
                      int(args.get("max_level", 20)), bool(args.get("map", True)))
    print(f"{args.csv}: {rows[0]['photos_kept'] + rows[0]['photos_dropped']} photos, cell ids and sort "
          f"{rows[0]['shared_seconds']:.2f} s (shared by the partitions), t_min {t_min}")
    print(cells_table(rows))
    for row in rows:
        print(f"wrote {row['csv']}" + (f" and {row['map']}" if row["map"] else ""))
    # the model's classifiers are built for these counts: train with exactly these overrides
    print(f"train with: task=planet data=geotagged data.partitions=[{','.join(r['csv'] for r in rows)}] "
          f"data.num_cells=[{','.join(str(r['cells']) for r in rows)}]")


if __name__ == "__main__":
    main(sys.argv[1:])
