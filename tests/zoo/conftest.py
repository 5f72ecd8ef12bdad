"""A real Hub-compatible server on loopback: olah in offline mode, serving git repos from a mirror folder."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub.constants as hf_constants
import pytest


@dataclass
class Hub:
    endpoint: str
    mirror: Path
    home: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def hub(tmp_path, monkeypatch):
    mirror, home = tmp_path / "mirror", tmp_path / "hf-home"
    (mirror / "models").mkdir(parents=True)
    port = _free_port()
    config = tmp_path / "olah.toml"
    config.write_text(
        "[basic]\n"
        f'host = "127.0.0.1"\nport = {port}\n'
        f'repos-path = "{tmp_path / "olah-cache"}"\n'
        f'mirrors-path = ["{mirror}"]\n'
        "[accessibility]\noffline = true\n"
    )
    log = open(tmp_path / "olah.out", "w")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("olah-cli")), "-c", str(config), "--log-path", str(tmp_path / "logs")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"olah exited: {(tmp_path / 'olah.out').read_text()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("olah did not start within 30 s")
            time.sleep(0.1)
        endpoint = f"http://127.0.0.1:{port}"
        # huggingface_hub reads HF_ENDPOINT / HF_HOME / HF_HUB_OFFLINE once, at import: set what it read.
        monkeypatch.setattr(hf_constants, "ENDPOINT", endpoint)
        monkeypatch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(home / "hub"))
        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
        yield Hub(endpoint, mirror, home)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
