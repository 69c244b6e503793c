"""ServiceConfig: bad values refused naming the key; check_bind refuses writes open beyond loopback with no
token; conf/serve.yaml's defaults make the config the service documents."""
from __future__ import annotations

import sys

import pytest
from omegaconf import OmegaConf

from mnet_vision.cli.serve import main, service_config
from mnet_vision.config import CONF_DIR
from mnet_vision.serving.config import ServiceConfig, check_bind, is_loopback


def test_defaults_load_nothing_and_open_nothing_beyond_this_machine():
    config = ServiceConfig()
    assert not config.serves_anything
    assert (config.host, config.port, config.cors_origins, config.token) == ("127.0.0.1", 8000, (), None)
    assert (config.max_upload_bytes, config.max_pixels) == (16 << 20, 40_000_000)
    assert (config.batch_max_size, config.batch_max_wait_ms) == (8, 5.0)
    check_bind(config)


@pytest.mark.parametrize(("keys", "named"), [
    ({"port": 0}, "port"), ({"port": 70000}, "port"), ({"port": "80"}, "port"),
    ({"max_upload_bytes": 0}, "max_upload_bytes"), ({"max_pixels": 1.5}, "max_pixels"),
    ({"batch_max_size": 0}, "batch_max_size"), ({"batch_max_wait_ms": -1}, "batch_max_wait_ms"),
    ({"score": 1.5}, "score"), ({"top_k": 0}, "top_k"), ({"k": True}, "k"), ({"threads": 0}, "threads"),
    ({"faces": "yes"}, "faces"), ({"writable": 1}, "writable"), ({"detector": ""}, "detector"),
    ({"token": "  "}, "token"), ({"token": ""}, "token"), ({"token": 123}, "token"),
    ({"cors_origins": ("",)}, "cors_origins"), ({"threshold": "near"}, "threshold"),
    ({"host": ""}, "host"), ({"pipeline": ["describer"]}, "pipeline"),
])
def test_bad_values_are_refused_naming_the_key(keys, named):
    with pytest.raises(ValueError, match=rf"^{named}"):
        ServiceConfig(**keys)


def test_one_origin_given_bare_is_one_origin():
    assert ServiceConfig(cors_origins="https://app.example.org").cors_origins == ("https://app.example.org",)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "example.org"])
def test_writes_beyond_loopback_need_a_token(host):
    with pytest.raises(ValueError, match=rf"refusing to listen on host={host}.*token"):
        check_bind(ServiceConfig(host=host, writable=True))
    check_bind(ServiceConfig(host=host, writable=True, token="s3cret"))
    check_bind(ServiceConfig(host=host, writable=False))


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True),
                                                ("[::1]", True), ("localhost", True), ("0.0.0.0", False),
                                                ("10.0.0.1", False), ("my-host", False)])
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback


def test_what_models_tells_anyone_leaves_the_token_out():
    public = ServiceConfig(token="s3cret").public()
    assert public["writes"] == {"writable": True, "token_required": True} and "s3cret" not in str(public)


def test_the_tools_defaults_serve_faceapi_with_an_index_in_memory(monkeypatch):
    monkeypatch.delenv("MNET_SERVE_TOKEN", raising=False)
    cfg = OmegaConf.load(CONF_DIR / "serve.yaml")
    config = service_config(cfg)
    assert (config.detector, config.faces, config.index, config.embedder, config.geolocator) == \
        ("faceapi_ssd", True, None, None, None)
    assert config == ServiceConfig(detector="faceapi_ssd", faces=True)  # the tool's defaults are the class's
    monkeypatch.setenv("MNET_SERVE_TOKEN", "from-the-environment")
    assert service_config(OmegaConf.load(CONF_DIR / "serve.yaml")).token == "from-the-environment"
    cfg.batch.max_size, cfg.cors_origins = 2, ["https://app.example.org"]
    config = service_config(cfg)
    assert (config.batch_max_size, config.cors_origins) == (2, ("https://app.example.org",))


@pytest.mark.parametrize(("args", "says"), [(["host=0.0.0.0"], "refusing to listen on host=0.0.0.0"),
                                            (["detector=null", "faces=false"], "nothing to serve"),
                                            (["port=0"], "port=0"),
                                            (["detector=null", "faces=false", "embedder=nowhere.ckpt"],
                                             "embedder=nowhere.ckpt: no such file")])
def test_the_tool_refuses_before_loading_anything(monkeypatch, args, says):
    monkeypatch.delenv("MNET_SERVE_TOKEN", raising=False)
    monkeypatch.setattr(sys, "argv", ["serve.py", *args])
    with pytest.raises(SystemExit, match=says):
        main()
