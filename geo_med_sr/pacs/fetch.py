"""A PACS as input and output of ``upscale``: fetch one series into a temporary folder, push a result series.

Inputs (:func:`fetched_input`):

* ``dicomweb://HOST:PORT/PATH/studies/S/series/U``: WADO-RS from the DICOMweb root
  ``http://HOST:PORT/PATH`` (``dicomweb+https://`` for https, ``dicomweb+http://`` is the same as
  ``dicomweb://``);
* ``--from AE@HOST:PORT --series U``: C-FIND then C-GET of the series (our calling AE title:
  ``--ae-title``, default :data:`DEFAULT_AE_TITLE`; the PACS must know it as a DICOM modality).

The series is fetched into a temporary folder, upscaled as a folder series, and the folder is
removed afterwards, also after an error or Ctrl-C. Outputs (:func:`push_series`): ``--send
AE@HOST:PORT`` (C-STORE) and ``--stow URL`` (STOW-RS to a DICOMweb root) push the written DICOM
series; :func:`check_push` refuses them before any work when the output is not a DICOM series.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from geo_med_sr.errors import ConfigError, InputError, OutputError, file_error

#: our calling AE title unless ``--ae-title`` says otherwise.
DEFAULT_AE_TITLE = "GEO_MED_SR"
#: input URL schemes -> the HTTP scheme of the DICOMweb root.
DICOMWEB_SCHEMES = {"dicomweb://": "http://", "dicomweb+http://": "http://", "dicomweb+https://": "https://"}


def is_dicomweb(text: object) -> bool:
    """Whether ``text`` is a ``dicomweb://`` (or ``dicomweb+http(s)://``) series URL rather than a path."""
    return isinstance(text, str) and text.lower().startswith(tuple(DICOMWEB_SCHEMES))


@dataclass(frozen=True)
class DicomWebSeries:
    """One series on a DICOMweb server: the root URL (``http(s)://HOST:PORT/PATH``) and the two UIDs."""

    root: str
    study_uid: str
    series_uid: str


def parse_dicomweb(text: str) -> DicomWebSeries:
    """``dicomweb://HOST:PORT/PATH/studies/S/series/U`` -> :class:`DicomWebSeries`.

    Raises:
        ConfigError: naming the URL: another scheme, no ``/studies/S/series/U`` at its end, or a UID
            that is not digits and dots.
    """
    from geo_med_sr.pacs.net import is_uid

    scheme = next((s for s in DICOMWEB_SCHEMES if text.lower().startswith(s)), None)
    rest = text[len(scheme) :] if scheme else ""
    root, sep, path = rest.rpartition("/studies/")
    parts = path.strip("/").split("/")
    if not scheme or not sep or not root or len(parts) != 3 or parts[1] != "series":
        raise file_error(
            ConfigError,
            text,
            "expected dicomweb://HOST:PORT/PATH/studies/STUDY_UID/series/SERIES_UID (dicomweb+https:// for https)",
        )
    study, series = parts[0], parts[2]
    if not (is_uid(study) and is_uid(series)):
        raise file_error(ConfigError, text, "the study and series UIDs must be digits and dots")
    return DicomWebSeries(DICOMWEB_SCHEMES[scheme] + root, study, series)


@contextlib.contextmanager
def fetched_input(
    source: str | None, *, from_peer: str | None = None, series: str | None = None, ae_title: str = DEFAULT_AE_TITLE
) -> Iterator[str]:
    """The input path to upscale: ``source`` itself, or a temporary folder holding the fetched series.

    Args:
        source: a path, a ``dicomweb://`` series URL, or None with ``from_peer``.
        from_peer: ``AE@HOST:PORT`` of a PACS to C-GET the series ``series`` from.
        series: the SeriesInstanceUID (required with ``from_peer``).
        ae_title: our calling AE title.

    Yields:
        The path to read; a fetched folder is removed when the block ends (error or not).

    Raises:
        ConfigError: both or neither of ``source`` and ``from_peer``, ``from_peer`` without
            ``series``, a bad URL, peer or AE title.
        InputError: the series cannot be fetched (naming the PACS and the reason).
    """
    if source is not None and from_peer is not None:
        raise ConfigError(f"give either INPUT ({source}) or --from {from_peer}, not both")
    if source is None and from_peer is None:
        raise ConfigError("upscale needs INPUT (a file, a DICOM folder or a dicomweb:// URL) or --from AE@HOST:PORT")
    if from_peer is None and not is_dicomweb(source):
        yield str(source)
        return
    from geo_med_sr.pacs import dicomweb, dimse, net

    calling = net.check_ae_title(ae_title)
    if from_peer is not None:
        peer = net.parse_peer(from_peer, "--from")
        if not series:
            raise ConfigError(f"--from {from_peer} needs --series SERIES_UID (the series to retrieve)")
        if not net.is_uid(series):
            raise ConfigError(f"--series {series!r}: a SeriesInstanceUID is digits and dots")
    else:
        target = parse_dicomweb(str(source))
    folder = Path(tempfile.mkdtemp(prefix="geo-med-sr-pacs-"))
    try:
        if from_peer is not None:
            dimse.get_series(peer, str(series), folder, calling)
        else:
            dicomweb.wado_series(target.root, target.study_uid, target.series_uid, folder)
        yield str(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check_push(
    output: str, *, send: str | None = None, stow: str | None = None, ae_title: str = DEFAULT_AE_TITLE
) -> None:
    """Refuse ``--send``/``--stow`` before any work when ``output`` is not a DICOM series or an option is malformed.

    Raises:
        ConfigError: naming the output (not a DICOM series folder name), the peer or the URL.
    """
    if send is None and stow is None:
        return
    from geo_med_sr import io
    from geo_med_sr.pacs import net

    names = " and ".join(n for n, v in (("--send", send), ("--stow", stow)) if v is not None)
    if io.adapter_for_output(output).name != "dicom":
        raise file_error(
            ConfigError, output, f"{names} push a DICOM series: name the output as a folder (no .nii/.tif suffix)"
        )
    if send is not None:
        net.parse_peer(send, "--send")
    if stow is not None and not str(stow).lower().startswith(("http://", "https://")):
        raise file_error(ConfigError, stow, "--stow needs the DICOMweb root URL, e.g. http://HOST:8042/dicom-web")
    net.check_ae_title(ae_title)


def series_files(folder: str | Path) -> list[Path]:
    """The DICOM files of a written series folder (``*.dcm``, sorted by name).

    Raises:
        OutputError: the folder holds none.
    """
    files = sorted(Path(folder).glob("*.dcm"))
    if not files:
        raise file_error(OutputError, folder, "holds no DICOM file to send")
    return files


def push_series(
    folder: str | Path, *, send: str | None = None, stow: str | None = None, ae_title: str = DEFAULT_AE_TITLE
) -> list[str]:
    """C-STORE (``send``, ``AE@HOST:PORT``) and/or STOW-RS (``stow``, a DICOMweb root) the series in ``folder``.

    Returns:
        One line per destination: ``"sent N instances to ..."``.

    Raises:
        OutputError: the destination refused or could not be reached; the message says the
            output was written and how to push it again.
    """
    from geo_med_sr.pacs import dicomweb, dimse, net

    done = []
    if send is None and stow is None:
        return done
    files = series_files(folder)
    try:
        if send is not None:
            peer = net.parse_peer(send, "--send")
            done.append(f"sent {dimse.send_files(files, peer, net.check_ae_title(ae_title))} instances to {peer}")
        if stow is not None:
            done.append(f"stored {dicomweb.stow_files(stow, files)} instances at {stow}")
    except (OutputError, InputError) as exc:
        raise type(exc)(f"{exc} (the output {folder} was written; push it again with storescu or STOW-RS)") from exc
    return done
