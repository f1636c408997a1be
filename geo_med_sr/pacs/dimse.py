"""DIMSE networking (pynetdicom): a C-STORE server and C-ECHO / C-STORE / C-FIND / C-GET clients.

* :class:`StoreServer`: a C-STORE SCP (MR and CT Image Storage, Verification) that hands every
  received instance, as the Part 10 bytes the peer sent, to a callback *before* answering; the
  answer is success (0x0000) only when the callback returned, 0xA700 (out of resources) when it
  raised, so that the sender keeps an instance the node could not store.
* :func:`send_files` (C-STORE), :func:`echo` (C-ECHO), :func:`find_series` (C-FIND) and
  :func:`get_series` (C-FIND then C-GET of one series into a folder).

Every failure is a :mod:`geo_med_sr.errors` exception naming the peer (``AE@HOST:PORT``).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Sequence
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
from geo_med_sr.pacs.net import Instance, Peer, check_ae_title, instance_of, save_instance

__all__ = ["StoreServer", "echo", "find_series", "get_series", "send_files"]

log = logging.getLogger("geo_med_sr.dicom.net")

#: SOP classes the node receives (C-STORE SCP).
RECEIVED_CLASSES = (MRImageStorage, CTImageStorage)
#: SOP classes a C-GET accepts back (what the DICOM reader can read).
RETRIEVED_CLASSES = (MRImageStorage, CTImageStorage, SecondaryCaptureImageStorage)
#: C-STORE status: success; refused, out of resources (the sender keeps the instance); cannot understand.
SUCCESS, OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xC000
#: C-STORE warning statuses: the instance was stored (coerced / elements discarded / not matching the class).
STORED_WITH_WARNING = (0xB000, 0xB006, 0xB007)
#: seconds to wait for an association, a DIMSE answer or a network read.
TIMEOUT_S = 30.0


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
            written.append(save_instance(ds, folder))
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
