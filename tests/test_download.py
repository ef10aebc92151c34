"""Pretrained weights on first use (tinynet_ms.hub): download, verify, convert, cache — against a local HTTP server.

Never touches the internet: ``TINYNET_MS_WEIGHTS_URL`` points the download at a ThreadingHTTPServer on 127.0.0.1
serving the timm fixture, ``TINYNET_MS_HOME`` at tmp_path. The real variants are big, so the tests add a record for
the fixture network (``tinynet_mini`` = timm's w 0.25, d 0.35, 10 classes) to the variant records (VARIANTS) for their
duration: the same public path a published variant takes, ``create_model(name, pretrained=True)``.
"""
import hashlib
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from helpers import MINI_WEIGHTS, ROOT, SCRIPT_ENV
from tinynet_ms import create_model
from tinynet_ms.hub import DownloadError, convert_weights, download, main, pretrained_checkpoint, weights_url
from tinynet_ms.models import VARIANTS, TinyNetSpec, Variant
from tinynet_ms.weights import param_arrays

PTH = Path("/work/shared/fixtures/timm_tinynet_mini.pth")
if not PTH.is_file():  # the shared fixture, else the copy the project keeps beside the .safetensors
    PTH = MINI_WEIGHTS.with_suffix(".pth")
NAME = "tinynet_mini"
MINI = dict(w=0.25, d=0.35, num_classes=10)


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.routes[path] = (body, declared Content-Length, seconds to stall after the body)``; fewer bytes
    than declared = a connection dropped mid-download. Counts requests per path in ``server.hits``."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.server.hits[self.path] = self.server.hits.get(self.path, 0) + 1
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        body, length, stall = route
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        time.sleep(stall)
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.routes, httpd.hits = {}, {}
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound once, then released)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def hub(server, tmp_path, monkeypatch):
    """A fresh cache, the download base at the local server, and the fixture network as a registered variant."""
    server.routes.clear()
    server.hits.clear()
    base = f"http://127.0.0.1:{server.server_address[1]}/weights"
    cache = tmp_path / "cache"
    monkeypatch.setenv("TINYNET_MS_HOME", str(cache))
    monkeypatch.setenv("TINYNET_MS_WEIGHTS_URL", base)
    for var in ("no_proxy", "NO_PROXY"):  # a CI proxy must not see the local server
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    monkeypatch.setitem(VARIANTS, NAME, Variant(NAME, TinyNetSpec(w=MINI["w"], d=MINI["d"]), params=0, macs=0,
                                                top1=0.0, num_classes=MINI["num_classes"]))
    return {"server": server, "base": base, "cache": cache, "route": f"/weights/{NAME}.pth"}


def _serve(hub, body: bytes, length: int | None = None, route: str | None = None, stall: float = 0.0) -> None:
    hub["server"].routes[route or hub["route"]] = (body, len(body) if length is None else length, stall)


def _fixture_weights() -> dict[str, np.ndarray]:
    """The fixture loaded directly (no download): what every downloaded copy must equal."""
    return param_arrays(create_model("tinynet", checkpoint_path=MINI_WEIGHTS, cpu_kernels=False, **MINI))


def _assert_fixture_weights(net) -> None:
    expected, got = _fixture_weights(), param_arrays(net)
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def _cache_files(cache: Path) -> list[str]:
    """Everything in the cache but the lock file (hidden temporaries included)."""
    return sorted(p.name for p in cache.iterdir() if p.name != ".lock") if cache.is_dir() else []


def test_weights_url_follows_the_record_or_the_mirror(hub, monkeypatch):
    assert weights_url(NAME) == f"{hub['base']}/{NAME}.pth"
    monkeypatch.delenv("TINYNET_MS_WEIGHTS_URL")
    assert weights_url("tinynet_a") == VARIANTS["tinynet_a"].url
    assert weights_url("tinynet_a").startswith("https://github.com/huawei-noah/")
    with pytest.raises(ValueError, match="pretrained weights exist for .* not 'tinynet'"):
        weights_url("tinynet")


def test_download_is_whole_and_checked(hub, tmp_path, capsys):
    data = PTH.read_bytes()
    _serve(hub, data)
    url, dst = f"{hub['base']}/{NAME}.pth", tmp_path / "dl" / "w.pth"
    assert download(url, dst, sha256=hashlib.sha256(data).hexdigest(), progress=True) == dst
    assert dst.read_bytes() == data and sorted(p.name for p in dst.parent.iterdir()) == ["w.pth"]
    err = capsys.readouterr().err
    assert f"downloading {url} (0.9 MB) to {dst}" in err and "\rw.pth: 100% 0.9/0.9 MB\n" in err

    other = tmp_path / "dl" / "other.pth"
    with pytest.raises(DownloadError, match=r"does not have the expected SHA-256 .* nothing was kept"):
        download(url, other, sha256="0" * 64, progress=False)
    assert sorted(p.name for p in dst.parent.iterdir()) == ["w.pth"]
    with pytest.raises(DownloadError, match=r"cannot download .*/missing\.pth \(HTTP 404"):
        download(f"{hub['base']}/missing.pth", other)


def test_pretrained_on_a_fresh_cache_downloads_converts_and_keeps_the_ckpt(hub):
    pytest.importorskip("torch")
    _serve(hub, PTH.read_bytes())
    net = create_model(NAME, num_classes=10, pretrained=True, cpu_kernels=False)
    _assert_fixture_weights(net)
    assert _cache_files(hub["cache"]) == [f"{NAME}.ckpt"]  # the .pth is gone once converted; no temporaries

    hub["server"].routes.clear()  # second use: from the cache, no request at all
    _assert_fixture_weights(create_model(NAME, num_classes=10, pretrained=True, cpu_kernels=False))


def test_interrupted_download_leaves_nothing_and_a_retry_succeeds(hub):
    pytest.importorskip("torch")
    data = PTH.read_bytes()
    _serve(hub, data[: len(data) // 3], length=len(data))  # Content-Length says more, then the connection closes
    with pytest.raises(DownloadError) as err:
        create_model(NAME, num_classes=10, pretrained=True, cpu_kernels=False)
    message = str(err.value)
    assert "\n" not in message and f"{hub['base']}/{NAME}.pth broke off after {len(data) // 3:,} of {len(data):,} " \
           "bytes; nothing was kept, run again to retry" in message
    assert _cache_files(hub["cache"]) == []

    _serve(hub, data)
    _assert_fixture_weights(create_model(NAME, num_classes=10, pretrained=True, cpu_kernels=False))
    assert _cache_files(hub["cache"]) == [f"{NAME}.ckpt"]


def test_ctrl_c_and_a_stalled_connection_leave_nothing(hub, tmp_path, monkeypatch):
    data = PTH.read_bytes()
    _serve(hub, data[:1000], length=len(data), stall=2.0)  # headers and 1000 bytes, then silence
    url, folder = f"{hub['base']}/{NAME}.pth", tmp_path / "dl"
    with pytest.raises(DownloadError, match=r"broke off after [0-9,]+ bytes \(TimeoutError: .*run again to retry"):
        download(url, folder / "w.pth", timeout=0.3)
    assert sorted(folder.iterdir()) == []

    _serve(hub, data)

    def interrupt(self, done, final=False):
        raise KeyboardInterrupt
    monkeypatch.setattr("tinynet_ms.hub._Progress.update", interrupt)
    with pytest.raises(KeyboardInterrupt):
        download(url, folder / "w.pth")
    assert sorted(folder.iterdir()) == []


def test_concurrent_first_use_downloads_once(hub):
    """The ranks of a distributed run asking at once: one download, the others wait and read the same .ckpt."""
    pytest.importorskip("torch")
    _serve(hub, PTH.read_bytes())
    with ThreadPoolExecutor(3) as pool:
        paths = list(pool.map(lambda _: pretrained_checkpoint(NAME), range(3)))
    assert paths == [hub["cache"] / f"{NAME}.ckpt"] * 3 and hub["server"].hits == {hub["route"]: 1}
    assert _cache_files(hub["cache"]) == [f"{NAME}.ckpt"]


def test_stale_temporaries_of_a_killed_download_are_removed(hub):
    pytest.importorskip("torch")
    hub["cache"].mkdir()
    stale = [hub["cache"] / f".{NAME}.k1ll3d.pth", hub["cache"] / f".{NAME}.x0x0x0.ckpt"]
    for path in stale:
        path.write_bytes(b"half a file")
    _serve(hub, PTH.read_bytes())
    pretrained_checkpoint(NAME)
    assert _cache_files(hub["cache"]) == [f"{NAME}.ckpt"]


@pytest.mark.parametrize("body", [b"<html>proxy login</html>", bytes(range(256)) * 64], ids=["html", "binary"])
def test_a_download_that_is_not_weights_is_an_error_and_not_kept(hub, body):
    pytest.importorskip("torch")
    _serve(hub, body)
    with pytest.raises(ValueError) as err:
        create_model(NAME, num_classes=10, pretrained=True, cpu_kernels=False)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{hub['base']}/{NAME}.pth did not give {NAME}'s weights (")
    assert "not a weights-only PyTorch checkpoint" in message and message.endswith("it was not kept")
    assert _cache_files(hub["cache"]) == []


def test_weights_of_another_architecture_are_refused(hub, monkeypatch):
    """A readable file with the wrong tensors (a wrong mirror): the converter's name/shape check, nothing kept."""
    pytest.importorskip("torch")
    monkeypatch.setitem(VARIANTS, NAME, Variant(NAME, TinyNetSpec(w=0.5, d=0.35), params=0, macs=0, top1=0.0,
                                                num_classes=10))
    _serve(hub, PTH.read_bytes())
    with pytest.raises(ValueError, match=rf"did not give {NAME}'s weights \(.* does not fit TinyNet\(r=1.0, w=0.5"):
        pretrained_checkpoint(NAME)
    assert _cache_files(hub["cache"]) == []


def test_offline_gives_one_line_naming_the_url_and_where_the_file_goes(hub, monkeypatch):
    base = f"http://127.0.0.1:{_closed_port()}/weights"
    monkeypatch.setenv("TINYNET_MS_WEIGHTS_URL", base)
    with pytest.raises(OSError) as err:
        create_model(NAME, num_classes=10, pretrained=True, cpu_kernels=False)
    message, cache = str(err.value), hub["cache"]
    assert isinstance(err.value, DownloadError) and "\n" not in message
    assert message.startswith(f"cannot download {base}/{NAME}.pth (ConnectionRefusedError")
    assert f"copy it to {cache / NAME}.pth (converted on first use)" in message
    assert f"python -m tinynet_ms.convert {NAME}.pth {cache / NAME}.ckpt --model {NAME}" in message
    assert _cache_files(cache) == []


def test_a_file_copied_into_the_cache_by_hand_is_converted_without_network(hub, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setenv("TINYNET_MS_WEIGHTS_URL", f"http://127.0.0.1:{_closed_port()}/weights")
    hub["cache"].mkdir()
    (hub["cache"] / f"{NAME}.pth").write_bytes(PTH.read_bytes())
    _assert_fixture_weights(create_model(NAME, num_classes=10, pretrained=True, cpu_kernels=False))
    assert _cache_files(hub["cache"]) == [f"{NAME}.ckpt"]


def test_safetensors_from_a_mirror_download_and_convert(hub, tmp_path):
    """A mirror may serve safetensors (no PyTorch needed): the same download and conversion."""
    _serve(hub, MINI_WEIGHTS.read_bytes(), route="/weights/mini.safetensors")
    raw = download(f"{hub['base']}/mini.safetensors", tmp_path / "mini.safetensors")
    net = create_model("tinynet", cpu_kernels=False, **MINI)
    ckpt = convert_weights(raw, tmp_path / "mini.ckpt", net)
    _assert_fixture_weights(create_model("tinynet", checkpoint_path=ckpt, cpu_kernels=False, **MINI))


def test_download_command(hub, capsys):
    pytest.importorskip("torch")
    _serve(hub, PTH.read_bytes())
    other = hub["cache"].parent / "elsewhere"
    assert main(["download", NAME, "--cache_dir", str(other)]) == 0
    assert capsys.readouterr().out == f"{NAME}: {other / NAME}.ckpt\n"
    assert _cache_files(other) == [f"{NAME}.ckpt"] and _cache_files(hub["cache"]) == []
    hub["server"].routes.clear()
    assert main(["download", NAME, NAME, "--cache_dir", str(other)]) == 0  # cached: no request
    assert main(["download", NAME, "--cache_dir", str(other), "--force"]) == 1  # forced: the server has nothing now
    assert "error: cannot download" in capsys.readouterr().err and _cache_files(other) == [f"{NAME}.ckpt"]
    with pytest.raises(SystemExit) as exit_:
        main(["download", "tinynet_z"])
    assert exit_.value.code == 2


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
def test_cli_help_and_offline_exit_code(tmp_path):
    """As a user runs it: --help exits 0 (and the module is not imported twice: runpy's warning), an offline
    machine gets exit 1 and one error line."""
    run = subprocess.run([sys.executable, "-m", "tinynet_ms.hub", "download", "--help"], cwd=ROOT, env=SCRIPT_ENV,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "--cache_dir" in run.stdout and "--force" in run.stdout
    assert "RuntimeWarning" not in run.stderr
    env = {**SCRIPT_ENV, "TINYNET_MS_HOME": str(tmp_path), "no_proxy": "127.0.0.1",
           "TINYNET_MS_WEIGHTS_URL": f"http://127.0.0.1:{_closed_port()}"}
    run = subprocess.run([sys.executable, "-m", "tinynet_ms.hub", "download", "tinynet_e"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot download http://127.0.0.1:") \
        and f"{tmp_path / 'tinynet_e.pth'}" in lines[0]


# --- the model zoo: config key `pretrained` through src.builders ------------------------------------------------

def _config(**overrides):
    from src.config import load_config
    return load_config(None, {"model": NAME, "num_classes": 10, "cpu_kernels": "off", "device_target": "CPU",
                              **overrides})


def test_config_pretrained_starts_training_and_feeds_eval_and_export(hub, tmp_path):
    pytest.importorskip("torch")
    from src.builders import build_network, require_checkpoint
    from src.config import ConfigError

    _serve(hub, PTH.read_bytes())
    cfg = _config(pretrained=True)
    _assert_fixture_weights(build_network(cfg, cfg.pretrained_checkpoint, training=True))  # train.py's start
    assert require_checkpoint(cfg) == str(hub["cache"] / f"{NAME}.ckpt")  # eval.py / export.py's weights
    _assert_fixture_weights(build_network(cfg, require_checkpoint(cfg)))
    mine = tmp_path / "mine.safetensors"
    mine.write_bytes(MINI_WEIGHTS.read_bytes())
    assert require_checkpoint(_config(pretrained=True, checkpoint_path=str(mine))) == str(mine)  # a file wins
    with pytest.raises(ConfigError, match="no weights given: .* or --pretrained true"):
        require_checkpoint(_config())
    with pytest.raises(ConfigError, match="'pretrained': official weights exist for .* not for 'tinynet'"):
        build_network(_config(model="tinynet", pretrained=True), training=True)


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
def test_export_with_pretrained_true(hub, tmp_path):
    """export.py's path end to end (in-process, the test network registered): the official weights, exported."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from src.exporting import run_export

    _serve(hub, PTH.read_bytes())
    cfg = _config(pretrained=True, image_size=48, file_format="ONNX", file_name=str(tmp_path / "mini"),
                  output_dir=str(tmp_path / "out"))
    result = run_export(cfg)
    assert result.path.is_file() and result.max_abs_diff < 1e-4
