"""Build a faiss IVF index from predict's embedding shards, without loading all vectors at once.

Run as python tools/build_shard_index.py key=value ... or mnet-build-shard-index; the tool is
mnet_vision/cli/build_shard_index.py, its defaults conf/build_shard_index.yaml.
"""
from mnet_vision.cli.build_shard_index import main

if __name__ == "__main__":
    main()
