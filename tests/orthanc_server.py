"""A real Orthanc PACS for tests: started in a temporary folder, stopped by the fixture's finalizer.

``start_orthanc(folder, modalities)`` writes ``folder/config.json`` (free ports on 127.0.0.1 for HTTP
and DICOM, storage and index in ``folder``, the DICOMweb plugin at ``/dicom-web/``, no remote access,
no authentication, the given DICOM modalities, called AE titles not checked), runs
``/usr/sbin/Orthanc config.json`` and waits for ``/system``. Import from tests with
``from orthanc_server import ...``; use the ``orthanc`` fixtures of the test modules, which skip
when Orthanc is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ORTHANC = "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
#: Orthanc's own AE title in the tests.
ORTHANC_AET = "ORTHANC"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def orthanc_binary() -> str:
    """The Orthanc executable, or skip the test with the reason."""
    found = shutil.which("Orthanc") or (ORTHANC if Path(ORTHANC).exists() else None)
    if not found:
        pytest.skip("Orthanc not installed (apt-get install orthanc orthanc-dicomweb)")
    if not DICOMWEB_PLUGIN.exists():
        pytest.skip(f"Orthanc's DICOMweb plugin {DICOMWEB_PLUGIN} not installed (apt-get install orthanc-dicomweb)")
    return found


@dataclass
class Orthanc:
    """A running Orthanc: its ports, AE title and process; small helpers on its REST API."""

    http_port: int
    dicom_port: int
    process: subprocess.Popen
    folder: Path
    aet: str = ORTHANC_AET
    log: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        """The DICOMweb root (QIDO/WADO/STOW-RS)."""
        return f"{self.url}/dicom-web"

    @property
    def peer(self) -> str:
        """``AE@HOST:PORT`` of Orthanc's DICOM server."""
        return f"{self.aet}@127.0.0.1:{self.dicom_port}"

    def request(self, path: str, data: bytes | None = None, method: str | None = None) -> Any:
        """The JSON answer of the REST API to ``path`` (GET, or POST/PUT with ``data``)."""
        req = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=60) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def upload_folder(self, folder: Path) -> list[dict[str, Any]]:
        """POST every file of ``folder`` to /instances; returns Orthanc's answers."""
        return [self.request("/instances", p.read_bytes()) for p in sorted(Path(folder).iterdir()) if p.is_file()]

    def series_of_study(self, study_uid: str) -> dict[str, dict[str, Any]]:
        """SeriesInstanceUID -> Orthanc's /series/ID of every series in the study ``study_uid``."""
        out = {}
        for orthanc_id in self.request("/series"):
            series = self.request(f"/series/{orthanc_id}")
            study = self.request(f"/studies/{series['ParentStudy']}")
            if study["MainDicomTags"].get("StudyInstanceUID") == study_uid:
                out[series["MainDicomTags"]["SeriesInstanceUID"]] = series
        return out

    def instance_tags(self, series: dict[str, Any]) -> list[dict[str, Any]]:
        """The simplified tags of every instance of ``series`` (a /series/ID answer)."""
        return [self.request(f"/instances/{i}/simplified-tags") for i in series["Instances"]]

    def wait_for_series(self, study_uid: str, known: set[str], count: int, timeout: float = 90.0) -> dict[str, Any]:
        """The first series of ``study_uid`` not in ``known`` once it holds ``count`` instances."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for uid, series in self.series_of_study(study_uid).items():
                if uid not in known and len(series["Instances"]) >= count:
                    return series
            time.sleep(0.25)
        found = {uid: len(s["Instances"]) for uid, s in self.series_of_study(study_uid).items()}
        raise AssertionError(f"no new series of {count} instances in study {study_uid} after {timeout} s: {found}")

    def stop(self) -> None:
        """Terminate Orthanc and wait for it (killed after 20 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_orthanc(folder: Path, modalities: dict[str, tuple[str, str, int]] | None = None) -> Orthanc:
    """Start Orthanc with its storage in ``folder``; ``modalities``: name -> (AE title, host, port).

    Raises:
        RuntimeError: Orthanc exited or did not answer /system within 30 s (its log attached).
    """
    binary = orthanc_binary()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = free_port(), free_port()
    while dicom_port == http_port:
        dicom_port = free_port()
    config = {
        "Name": "geo_med_sr tests",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": ORTHANC_AET,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomCheckCalledAETitle": False,
        "DicomModalities": {name: list(value) for name, value in (modalities or {}).items()},
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "HttpTimeout": 60,
        "DicomScuTimeout": 30,
        "StableAge": 1,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    log = open(folder / "orthanc.log", "wb")  # noqa: SIM115 - closed with the process
    env = {**os.environ, "TCP_NODELAY": "1"}  # DCMTK (Orthanc's DICOM layer): no Nagle delay per C-STORE answer
    process = subprocess.Popen([binary, str(folder / "config.json")], cwd=folder, stdout=log, stderr=log, env=env)
    server = Orthanc(http_port, dicom_port, process, folder)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.close()
            raise RuntimeError(
                f"Orthanc exited with {process.returncode}: {(folder / 'orthanc.log').read_text()[-2000:]}"
            )
        try:
            server.request("/system")
            return server
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.1)
    server.stop()
    log.close()
    raise RuntimeError(f"Orthanc did not answer /system in 30 s: {(folder / 'orthanc.log').read_text()[-2000:]}")
