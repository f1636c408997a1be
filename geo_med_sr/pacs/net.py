"""DICOM networking: a C-STORE server, C-STORE / C-FIND / C-GET clients (pynetdicom) and DICOMweb (dicomweb-client).

The only module that talks to other DICOM nodes. The tools above it (:mod:`geo_med_sr.pacs.node`,
:mod:`geo_med_sr.pacs.fetch`) decide what to receive, fetch and send; this module moves the files:

* :class:`StoreServer`: a C-STORE SCP (MR and CT Image Storage, Verification) that hands every
  received instance, as the Part 10 bytes the peer sent, to a callback *before* answering; the
  answer is success (0x0000) only when the callback returned, 0xA700 (out of resources) when it
  raised, so that the sender keeps an instance the node could not store.
* :func:`send_files` (C-STORE), :func:`echo` (C-ECHO), :func:`get_series` (C-FIND then C-GET of
  one series into a folder).
* :func:`wado_series` (WADO-RS into a folder) and :func:`stow_files` (STOW-RS).

Every failure is a :mod:`geo_med_sr.errors` exception naming the peer (``AE@HOST:PORT`` or the URL).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
    SecondaryCaptureImageStorage,
)

from geo_med_sr.errors import ConfigError, InputError, OutputError, file_error

log = logging.getLogger("geo_med_sr.dicom.net")

#: SOP classes the node receives (C-STORE SCP).
RECEIVED_CLASSES = (MRImageStorage, CTImageStorage)
#: SOP classes a C-GET accepts back (what the DICOM reader can read).
RETRIEVED_CLASSES = (MRImageStorage, CTImageStorage, SecondaryCaptureImageStorage)
#: C-STORE status: success; refused, out of resources (the sender keeps the instance); cannot understand.
SUCCESS, OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xC000
#: C-STORE warning statuses: the instance was stored (coerced / elements discarded / not matching the class).
STORED_WITH_WARNING = (0xB000, 0xB006, 0xB007)
#: a UID: digits and dots, at most 64 characters (safe as a file or folder name).
UID_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)*$")
#: seconds to wait for an association, a DIMSE answer or a network read.
TIMEOUT_S = 30.0


def is_uid(text: object) -> bool:
    """Whether ``text`` is a syntactically valid DICOM UID (digits and dots, 1-64 characters)."""
    return isinstance(text, str) and 0 < len(text) <= 64 and UID_PATTERN.match(text) is not None


@dataclass(frozen=True)
class Peer:
    """A DICOM application entity on the network: ``AE@HOST:PORT``."""

    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def check_ae_title(title: str, what: str = "--ae-title") -> str:
    """``title`` when it is a valid AE title (1-16 characters, no backslash or control character).

    Raises:
        ConfigError: naming ``what``.
    """
    if not isinstance(title, str) or not title.strip() or len(title) > 16 or "\\" in title:
        raise ConfigError(f"{what} {title!r}: an AE title has 1 to 16 characters and no backslash")
    if any(ord(c) < 32 or ord(c) > 126 for c in title):
        raise ConfigError(f"{what} {title!r}: an AE title holds printable ASCII characters only")
    return title.strip()


def parse_peer(text: str, what: str = "peer") -> Peer:
    """``"AE@HOST:PORT"`` -> :class:`Peer` (an IPv6 host in brackets: ``AE@[::1]:104``).

    Raises:
        ConfigError: naming ``what`` and the expected form.
    """
    match = re.fullmatch(r"(?P<ae>[^@]+)@(?P<host>\[[^\]]+\]|[^:@\[\]]+):(?P<port>\d{1,5})", str(text).strip())
    if not match or not 0 < int(match["port"]) < 65536:
        raise ConfigError(f"{what} {text!r}: expected AE@HOST:PORT, e.g. ORTHANC@127.0.0.1:4242")
    return Peer(check_ae_title(match["ae"], what), match["host"].strip("[]"), int(match["port"]))


@dataclass(frozen=True)
class Instance:
    """One received instance: the Part 10 bytes as sent, the header values the node decides on, the sender.

    ``pixel_spacing`` is (row spacing, column spacing) in mm; ``slice_thickness`` and
    ``spacing_between_slices`` in mm; ``expected`` the series' instance count the header announces
    (ImagesInAcquisition or NumberOfSlices), None when it says nothing.
    """

    data: bytes
    sop_uid: str
    series_uid: str
    study_uid: str
    modality: str
    series_description: str
    slice_thickness: float | None
    spacing_between_slices: float | None
    pixel_spacing: tuple[float, float] | None
    expected: int | None
    calling_ae: str
    peer_host: str
    peer_port: int

    def summary(self) -> dict[str, Any]:
        """The JSON-able header values and sender (everything but ``data``)."""
        return {k: v for k, v in self.__dict__.items() if k != "data"}


def _number(ds: Dataset, keyword: str, index: int | None = None) -> float | None:
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return None
        return float(value[index] if index is not None else value)
    except (TypeError, ValueError, IndexError):
        return None


def _expected_count(ds: Dataset) -> int | None:
    for keyword in ("ImagesInAcquisition", "NumberOfSlices"):
        value = _number(ds, keyword)
        if value is not None and value >= 1:
            return int(value)
    return None


def instance_of(ds: Dataset, data: bytes, calling_ae: str = "", peer_host: str = "", peer_port: int = 0) -> Instance:
    """The :class:`Instance` of a decoded dataset ``ds`` whose Part 10 encoding is ``data``.

    Raises:
        InputError: SOPInstanceUID, SeriesInstanceUID or StudyInstanceUID missing or not a valid UID.
    """
    uids = {k: str(ds.get(k, "") or "") for k in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")}
    bad = [k for k, v in uids.items() if not is_uid(v)]
    if bad:
        raise InputError(f"instance from {calling_ae}: {', '.join(bad)} missing or not a valid UID")
    spacing = ds.get("PixelSpacing")
    pixel_spacing = None
    if spacing is not None and len(spacing) == 2:
        row, col = _number(ds, "PixelSpacing", 0), _number(ds, "PixelSpacing", 1)
        pixel_spacing = (row, col) if row and col else None
    return Instance(
        data=data,
        sop_uid=uids["SOPInstanceUID"],
        series_uid=uids["SeriesInstanceUID"],
        study_uid=uids["StudyInstanceUID"],
        modality=str(ds.get("Modality", "") or ""),
        series_description=str(ds.get("SeriesDescription", "") or ""),
        slice_thickness=_number(ds, "SliceThickness"),
        spacing_between_slices=_number(ds, "SpacingBetweenSlices"),
        pixel_spacing=pixel_spacing,
        expected=_expected_count(ds),
        calling_ae=calling_ae,
        peer_host=peer_host,
        peer_port=int(peer_port or 0),
    )


def read_instance(path: Path) -> Instance:
    """The :class:`Instance` of a DICOM file (its header; ``data`` empty; no sender).

    Raises:
        InputError: naming the file, when it is not readable DICOM or lacks its UIDs.
    """
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        return instance_of(ds, b"")
    except InputError as exc:
        raise file_error(InputError, path, str(exc)) from exc
    except Exception as exc:  # pydicom raises many types
        raise file_error(InputError, path, f"not a readable DICOM file ({type(exc).__name__}: {exc})") from exc


class StoreServer:
    """A C-STORE SCP on ``(host, port)`` calling ``on_instance(Instance)`` before it answers each C-STORE.

    ``on_instance`` runs in the association's thread; the answer is 0x0000 once it returned,
    0xA700 when it raised (logged), 0xC000 for a dataset that cannot be decoded or lacks its UIDs.
    Associations (who, how many instances, how it ended) are logged on ``geo_med_sr.dicom.net``.
    """

    def __init__(self, ae_title: str, host: str, port: int, on_instance: Callable[[Instance], None]) -> None:
        self.ae_title = check_ae_title(ae_title)
        self.host, self.port = host, int(port)
        self.on_instance = on_instance
        self._server: Any = None
        self._counts: dict[int, int] = {}
        self._lock = threading.Lock()

    def start(self) -> StoreServer:
        """Listen (non-blocking); returns self.

        Raises:
            ConfigError: the address cannot be bound (in use, not this machine's), naming it.
        """
        from pynetdicom import AE, DEFAULT_TRANSFER_SYNTAXES, evt
        from pynetdicom.sop_class import Verification

        ae = AE(ae_title=self.ae_title)
        ae.maximum_pdu_size = 0  # no limit
        for sop_class in RECEIVED_CLASSES:
            ae.add_supported_context(sop_class, DEFAULT_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        ae.require_called_aet = False
        handlers = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_ACCEPTED, self._on_accepted),
            (evt.EVT_RELEASED, self._on_closed),
            (evt.EVT_ABORTED, self._on_closed),
        ]
        try:
            self._server = ae.start_server((self.host, self.port), block=False, evt_handlers=handlers)
        except OSError as exc:
            raise file_error(
                ConfigError, f"{self.host}:{self.port}", f"cannot listen there ({exc.strerror or exc})"
            ) from exc
        return self

    def stop(self) -> None:
        """Stop listening and close the open associations."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    @staticmethod
    def _who(assoc: Any) -> str:
        req = assoc.requestor
        return f"{req.ae_title}@{req.address}:{req.port}"

    def _on_accepted(self, event: Any) -> None:
        _no_delay(event.assoc)
        with self._lock:
            self._counts[id(event.assoc)] = 0
        log.info("association from %s accepted", self._who(event.assoc))

    def _on_closed(self, event: Any) -> None:
        with self._lock:
            count = self._counts.pop(id(event.assoc), 0)
        how = "released" if event.event.name == "EVT_RELEASED" else "aborted"
        log.info("association from %s %s after %d instance(s)", self._who(event.assoc), how, count)

    def _on_store(self, event: Any) -> int:
        req = event.assoc.requestor
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
            instance = instance_of(ds, event.encoded_dataset(), req.ae_title, req.address, req.port)
        except Exception as exc:  # a dataset we cannot decode: the peer is told so
            log.warning("C-STORE from %s refused: cannot read the dataset (%s)", self._who(event.assoc), exc)
            return CANNOT_UNDERSTAND
        try:
            self.on_instance(instance)
        except Exception as exc:  # not stored: the sender keeps it and may retry
            log.error("C-STORE of %s from %s not stored: %s", instance.sop_uid, self._who(event.assoc), exc)
            return OUT_OF_RESOURCES
        with self._lock:
            self._counts[id(event.assoc)] = self._counts.get(id(event.assoc), 0) + 1
        return SUCCESS


def _no_delay(assoc: Any) -> None:
    """Send each PDU at once (TCP_NODELAY): with Nagle's algorithm every C-STORE waits ~40 ms for the
    peer's delayed ACK. Best effort: a socket that refuses the option is left as it is."""
    try:
        assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError):
        pass


def _associate(ae: Any, peer: Peer, error: type, **kwargs: Any) -> Any:
    """An established association with ``peer``, or ``error`` naming the peer and the reason."""
    from pynetdicom import evt

    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT_S
    ae.connection_timeout = TIMEOUT_S
    connected = []
    handlers = [*kwargs.pop("evt_handlers", []), (evt.EVT_CONN_OPEN, lambda event: connected.append(True))]
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title, evt_handlers=handlers, **kwargs)
    if assoc.is_established:
        _no_delay(assoc)
        return assoc
    if not connected:
        reason = "cannot connect (is it running and listening on that port?)"
    elif assoc.is_rejected:
        reason = "the association was rejected (is our AE title known to it? check its DICOM modalities)"
    else:
        reason = "the association was aborted (does it accept these SOP classes from our AE title?)"
    raise file_error(error, peer, reason)


def echo(peer: Peer, calling_ae: str) -> None:
    """C-ECHO ``peer``.

    Raises:
        InputError: no association, or a status other than success.
    """
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=check_ae_title(calling_ae))
    ae.add_requested_context(Verification)
    assoc = _associate(ae, peer, InputError)
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    if not status or status.get("Status") != SUCCESS:
        raise file_error(InputError, peer, "C-ECHO failed")


def _file_contexts(files: Sequence[Path]) -> dict[str, set[str]]:
    """SOP class -> transfer syntaxes of ``files`` (headers only).

    Raises:
        OutputError: a file that is not readable DICOM, naming it.
    """
    contexts: dict[str, set[str]] = {}
    for file in files:
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True)
            sop, syntax = str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)
        except Exception as exc:  # pydicom raises many types
            raise file_error(OutputError, file, f"cannot be sent: not a readable DICOM file ({exc})") from exc
        contexts.setdefault(sop, set()).add(syntax)
    return contexts


def send_files(files: Sequence[Path], peer: Peer, calling_ae: str) -> int:
    """C-STORE ``files`` (DICOM Part 10 files, sent as stored) to ``peer`` in one association.

    Returns:
        The number of instances the peer stored (all of them; a warning status counts as stored).

    Raises:
        OutputError: naming the peer: no association, a file it refused (with its status), or
            more than 128 SOP class / transfer syntax pairs.
    """
    from pynetdicom import AE

    files = [Path(f) for f in files]
    if not files:
        raise file_error(OutputError, peer, "nothing to send: no DICOM file")
    ae = AE(ae_title=check_ae_title(calling_ae))
    for sop, syntaxes in _file_contexts(files).items():
        for syntax in sorted(syntaxes):
            ae.add_requested_context(sop, [syntax])
    if len(ae.requested_contexts) > 128:
        raise file_error(OutputError, peer, "too many SOP class / transfer syntax pairs for one association")
    assoc = _associate(ae, peer, OutputError)
    sent = 0
    try:
        for file in files:
            status = assoc.send_c_store(file)
            code = status.get("Status") if status else None
            if code != SUCCESS and code not in STORED_WITH_WARNING:
                what = "no answer (association lost)" if code is None else f"status 0x{int(code):04X}"
                raise file_error(OutputError, peer, f"refused {file.name} ({what}) after {sent} instance(s) stored")
            sent += 1
    finally:
        if assoc.is_established:
            assoc.release()
    log.info("sent %d instance(s) to %s", sent, peer)
    return sent


def _save(ds: Dataset, folder: Path) -> Path:
    """Save a retrieved dataset as ``folder/<SOPInstanceUID>.dcm`` (written whole, then renamed)."""
    uid = str(ds.get("SOPInstanceUID", "") or "")
    if not is_uid(uid):
        raise InputError("a retrieved instance has no valid SOPInstanceUID")
    path = folder / f"{uid}.dcm"
    tmp = folder / f".{uid}.part"
    ds.save_as(tmp, enforce_file_format=True)
    os.replace(tmp, path)
    return path


def find_series(peer: Peer, series_uid: str, calling_ae: str) -> str:
    """The StudyInstanceUID of series ``series_uid`` on ``peer`` (C-FIND, Study Root, SERIES level).

    Raises:
        InputError: no association, a failed query, or no such series on the peer.
    """
    from pynetdicom import AE
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as Find

    ae = AE(ae_title=check_ae_title(calling_ae))
    ae.add_requested_context(Find)
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.SeriesInstanceUID = series_uid
    query.StudyInstanceUID = ""
    assoc = _associate(ae, peer, InputError)
    studies = set()
    try:
        for status, identifier in assoc.send_c_find(query, Find):
            code = status.get("Status") if status else None
            if code is None or code not in (SUCCESS, 0xFF00, 0xFF01):
                what = "no answer" if code is None else f"status 0x{int(code):04X}"
                raise file_error(InputError, peer, f"C-FIND of series {series_uid} failed ({what})")
            if code in (0xFF00, 0xFF01) and identifier is not None and identifier.get("StudyInstanceUID"):
                studies.add(str(identifier.StudyInstanceUID))
    finally:
        if assoc.is_established:
            assoc.release()
    if not studies:
        raise file_error(InputError, peer, f"has no series with SeriesInstanceUID {series_uid}")
    return sorted(studies)[0]


def get_series(peer: Peer, series_uid: str, folder: Path, calling_ae: str) -> int:
    """Retrieve series ``series_uid`` from ``peer`` into ``folder`` with C-GET; returns the files written.

    Raises:
        InputError: naming the peer: no association, no such series, or sub-operations that failed.
    """
    from pynetdicom import AE, build_role, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as Get

    study_uid = find_series(peer, series_uid, calling_ae)
    folder = Path(folder)
    written: list[Path] = []

    def on_store(event: Any) -> int:
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
            written.append(_save(ds, folder))
        except Exception as exc:  # reported through the C-GET's failed sub-operations
            log.error("C-GET: instance not saved: %s", exc)
            return OUT_OF_RESOURCES
        return SUCCESS

    ae = AE(ae_title=check_ae_title(calling_ae))
    ae.add_requested_context(Get)
    for sop_class in RETRIEVED_CLASSES:
        ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    roles = [build_role(sop_class, scp_role=True) for sop_class in RETRIEVED_CLASSES]
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = series_uid
    assoc = _associate(ae, peer, InputError, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    final = None
    try:
        for status, _ in assoc.send_c_get(query, Get):
            if status:
                final = status
    finally:
        if assoc.is_established:
            assoc.release()
    code = final.get("Status") if final else None
    failed = int(final.get("NumberOfFailedSuboperations", 0) or 0) if final else 0
    if code != SUCCESS or failed:
        what = "no answer" if code is None else f"status 0x{int(code):04X}, {failed} instance(s) failed"
        raise file_error(InputError, peer, f"C-GET of series {series_uid} failed ({what})")
    if not written:
        raise file_error(InputError, peer, f"C-GET of series {series_uid} returned no instance")
    log.info("retrieved %d instance(s) of series %s from %s", len(written), series_uid, peer)
    return len(written)


def _dicomweb_client(url: str) -> Any:
    from dicomweb_client.api import DICOMwebClient

    return DICOMwebClient(url=url.rstrip("/"))


def _http_problem(exc: Exception) -> str:
    """One line for a requests/HTTP failure: the status and reason, or the connection problem."""
    response = getattr(exc, "response", None)
    if response is not None:
        return f"HTTP {response.status_code} {response.reason}"
    return f"cannot connect ({type(exc).__name__})"


def wado_series(url: str, study_uid: str, series_uid: str, folder: Path) -> int:
    """Retrieve a series with WADO-RS from the DICOMweb root ``url`` into ``folder``; returns the files written.

    Raises:
        InputError: naming the series URL: the server cannot be reached, answers an HTTP error
            (404: no such series), or returns no instance.
    """
    import requests

    where = f"{url.rstrip('/')}/studies/{study_uid}/series/{series_uid}"
    client = _dicomweb_client(url)
    count = 0
    try:
        for ds in client.iter_series(study_uid, series_uid):
            _save(ds, Path(folder))
            count += 1
    except requests.RequestException as exc:
        raise file_error(InputError, where, f"WADO-RS failed: {_http_problem(exc)}") from exc
    if not count:
        raise file_error(InputError, where, "WADO-RS returned no instance")
    log.info("retrieved %d instance(s) from %s", count, where)
    return count


def stow_files(url: str, files: Sequence[Path], batch: int = 16) -> int:
    """Store ``files`` with STOW-RS at the DICOMweb root ``url``, ``batch`` instances per request.

    Returns:
        The number of instances the server stored.

    Raises:
        OutputError: naming the URL: the server cannot be reached, answers an HTTP error, or
            lists failed instances.
    """
    import requests

    client = _dicomweb_client(url)
    stored = 0
    for start in range(0, len(files), batch):
        datasets = [pydicom.dcmread(f) for f in files[start : start + batch]]
        try:
            answer = client.store_instances(datasets)
        except requests.RequestException as exc:
            raise file_error(
                OutputError, url, f"STOW-RS failed after {stored} instance(s) stored: {_http_problem(exc)}"
            ) from exc
        failed = list(answer.get("FailedSOPSequence", []) if answer is not None else [])
        if failed:
            raise file_error(OutputError, url, f"STOW-RS refused {len(failed)} instance(s) of {len(datasets)}")
        stored += len(datasets)
    log.info("stored %d instance(s) at %s", stored, url)
    return stored
