"""Download the public SLAMP release's trained weights (``slamp download public <dataset>``) and the
public SVG code's SVG-LP weights (``slamp download svg mnist|bair``).

Nothing is ever downloaded implicitly: only :func:`download_public` (and the command that calls it)
goes to the network. The file lands in the data folder's ``public/`` subfolder
(``<data folder>/public/slamp_<dataset>.pth``); a partial download is kept as ``<file>.part`` and
resumed on the next call (the SVG files go to the same folder, under their own names:
``svglp_smmnist2.pth``, ``svglp_bair.pth``); the finished file is renamed into place whole, and its SHA-256 is written
beside it (``<file>.sha256``). Offline, the error names the URL and the path where a file fetched by
hand belongs. Plain standard-library HTTP (``urllib.request``); no other dependency than tqdm.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

from slamp.data.files import atomic_path, data_home, find_data


DATASETS = ("mnist", "kth", "bair", "kitti", "cityscapes")
PUBLIC_URL_ENVIRONMENT = "SLAMP_PUBLIC_URL"
PUBLIC_BASE_URL = "https://github.com/kaanakan/slamp/releases/download/v1.0"
PUBLIC_RELEASE = {name: f"{PUBLIC_BASE_URL}/slamp_{name}.pth" for name in DATASETS}
# The links the public README gives (a Dropbox page; append ?dl=1 for the file itself).
PUBLIC_README_LINKS = {
    "mnist": "https://www.dropbox.com/s/eseisehe2u0epiy/slamp_mnist.pth",
    "kth": "https://www.dropbox.com/s/7m0806nt7xt9bz8/slamp_kth.pth",
    "bair": "https://www.dropbox.com/s/cl1pzs5trw3ltr0/slamp_bair.pth",
    "kitti": "https://www.dropbox.com/s/p7wdboswakyj7yi/slamp_kitti.pth",
    "cityscapes": "https://www.dropbox.com/s/lzwiivr1irffhsj/slamp_cityscapes.pth",
}
# The public SVG code keeps its two trained SVG-LP models in its repository.
SVG_BASE_URL = "https://github.com/edenton/svg/raw/master/pretrained_models"
SVG_FILES = {"mnist": "svglp_smmnist2.pth", "bair": "svglp_bair.pth"}
RELEASES = {"slamp": DATASETS, "svg": tuple(SVG_FILES)}  # release -> the datasets it has weights for
SUBFOLDER = "public"
TIMEOUT = 30.0  # seconds: to connect, and for each read
CHUNK = 1 << 16


class DownloadError(RuntimeError):
    """A download failed: the message names the URL, what went wrong, and where a file fetched by
    hand belongs."""


def file_name(dataset: str, release: str = "slamp") -> str:
    """``slamp_<dataset>.pth`` (``release="slamp"``) or the public SVG code's file name (``"svg"``:
    ``svglp_smmnist2.pth``, ``svglp_bair.pth``); an unknown dataset is a ``ValueError`` that lists them."""
    if release not in RELEASES:
        raise ValueError(f"unknown release {release!r}; choose from {', '.join(RELEASES)}")
    if dataset not in RELEASES[release]:
        raise ValueError(f"no public {release.upper()} weights for {dataset!r}; choose from "
                         f"{', '.join(RELEASES[release])}")
    return SVG_FILES[dataset] if release == "svg" else f"slamp_{dataset}.pth"


def public_url(dataset: str, base_url: str | None = None, release: str = "slamp") -> str:
    """The URL of ``dataset``'s weights: under ``base_url``, else ``$SLAMP_PUBLIC_URL``, else the
    public release (:data:`PUBLIC_RELEASE`, or :data:`SVG_BASE_URL` for the SVG files)."""
    name = file_name(dataset, release)
    default = SVG_BASE_URL if release == "svg" else PUBLIC_BASE_URL
    base = base_url or os.environ.get(PUBLIC_URL_ENVIRONMENT) or default
    return f"{base.rstrip('/')}/{name}"


def public_weights_path(dataset: str, data_dir=None, release: str = "slamp") -> Path:
    """Where ``dataset``'s weights are or would be: ``<data_dir>/public/<file>`` if ``data_dir`` is
    given, else the first data folder that holds the file, else the data folder that ``slamp
    prepare`` writes to (``$SLAMP_DATA``, else the user cache, else a clone's data/)."""
    relative = f"{SUBFOLDER}/{file_name(dataset, release)}"
    if data_dir is not None:
        return Path(data_dir).expanduser() / relative
    return find_data(relative) or data_home() / relative


def find_public_weights(dataset: str, data_dir=None, release: str = "slamp") -> Path | None:
    """The path of ``dataset``'s downloaded weights, or None if they are not there."""
    path = public_weights_path(dataset, data_dir, release)
    return path if path.is_file() else None


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _record_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def recorded_sha256(dest) -> str | None:
    """The SHA-256 recorded in ``<dest>.sha256`` (``"<hex>  <filename>"``), or None."""
    try:
        text = _record_path(Path(dest)).read_text().split()
    except OSError:
        return None
    return text[0].lower() if text and re.fullmatch(r"[0-9a-fA-F]{64}", text[0]) else None


def _write_record(dest: Path, sha: str) -> Path:
    record = _record_path(dest)
    with atomic_path(record) as temporary:
        temporary.write_text(f"{sha}  {dest.name}\n")
    return record


def _size(count: int | None) -> str:
    return "size unknown" if count is None else f"{count / 1e6:.1f} MB ({count:,} bytes)"


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``Content-Range: bytes START-END/TOTAL`` (or ``bytes */TOTAL``) -> (START, TOTAL); None where absent."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value or "")
    if not match:
        return None, None
    start, total = match.groups()
    return (int(start) if start else None), (int(total) if total != "*" else None)


def _looks_like_html(head: bytes) -> bool:
    return head.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html"))


def download_public(dataset: str, data_dir=None, base_url: str | None = None, progress: bool = True,
                    out=print, timeout: float = TIMEOUT, release: str = "slamp") -> Path:
    """Download ``dataset``'s public SLAMP weights (or with ``release="svg"`` the public SVG code's
    SVG-LP weights) into ``<data folder>/public/`` and return the path.

    Says the URL, the size and the destination before the transfer; resumes ``<dest>.part`` left by
    an earlier attempt (HTTP Range); renames the finished file into place and records its SHA-256 in
    ``<dest>.sha256``. A file already there whose recorded SHA-256 matches is left alone (no
    request). Any failure is a :class:`DownloadError` naming the URL and ``dest``; the ``.part``
    file is kept for the next attempt."""
    url = public_url(dataset, base_url, release)
    dest = public_weights_path(dataset, data_dir, release)
    if dest.is_file():
        recorded, actual = recorded_sha256(dest), file_sha256(dest)
        if recorded == actual:
            out(f"{dest} is already there (SHA-256 {actual}, as recorded): nothing to download")
            return dest
        if recorded is None:  # put there by hand: keep it, and record what it is
            _write_record(dest, actual)
            out(f"{dest} is already there (no record of its download; SHA-256 {actual} now recorded): "
                "nothing to download")
            return dest
        out(f"{dest} does not match its recorded SHA-256 ({actual} != {recorded}): downloading it again")
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    earlier = (f" (or the Dropbox link an earlier public README gave, {PUBLIC_README_LINKS[dataset]}?dl=1)"
               if release == "slamp" else "")
    hint = f"Fetch it by hand from {url}{earlier} and put it at {dest}"

    def failed(what: str) -> DownloadError:
        if part.is_file() and not part.stat().st_size:
            part.unlink()  # nothing received: nothing to resume
        kept = (f"; the {part.stat().st_size:,} bytes received are kept in {part} and running "
                "the same download again resumes them") if part.is_file() and part.stat().st_size else ""
        return DownloadError(f"{what} ({url}){kept}. {hint}")

    out(f"downloading {url}")
    out(f"to {dest}")
    for _ in range(2):  # a second go only after a stale or refused resume
        offset = part.stat().st_size if part.is_file() else 0
        request = urllib.request.Request(url, headers={"User-Agent": "slamp", "Accept-Encoding": "identity"})
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as error:
            error.close()
            if error.code == 416 and offset:  # the resume asked for bytes past the end
                _, total = _content_range(error.headers.get("Content-Range"))
                if total == offset:
                    out(f"size: {_size(total)}, all of it already in {part}")
                    return _finish(part, dest, out)
                out(f"the server refused to resume at byte {offset:,}: starting again")
                part.unlink()
                continue
            raise failed(f"the server answered HTTP {error.code} {error.reason}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", error)
            raise failed(f"cannot download: {reason}") from None
        with response:
            whole = _receive(response, part, offset, dest.name, progress, out, failed)
        if whole:
            return _finish(part, dest, out)
    raise failed("the server would not send the file from the start")


def _receive(response, part: Path, offset: int, name: str, progress: bool, out, failed) -> bool:
    """Write ``response``'s body into ``part`` (appended to its first ``offset`` bytes for a 206);
    True when the file is whole, False to start again."""
    from slamp.console import progress_bar

    status = response.status
    length = response.headers.get("Content-Length")
    length = int(length) if length and length.strip().isdigit() else None
    content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if status == 206:
        start, total = _content_range(response.headers.get("Content-Range"))
        if start != offset:
            out(f"the server resumed at byte {start} rather than {offset:,}: starting again")
            part.unlink()
            return False
        if total is None and length is not None:
            total = offset + length
    elif status == 200:
        if offset:
            out(f"the server ignored the request to resume at byte {offset:,}: starting again from the start")
        offset, total = 0, length
    else:
        raise failed(f"the server answered HTTP {status} {response.reason}, not the file")
    if content_type.startswith("text/"):
        raise failed(f"the server answered HTTP {status} with a {content_type} page, not the weight file")
    out(f"size: {_size(total)}" + (f", resuming at byte {offset:,}" if offset else ""))
    received, stopped = offset, None
    with open(part, "ab" if offset else "wb") as file, \
            progress_bar(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                         desc=name, disable=not progress) as bar:
        while True:
            try:
                block = response.read1(CHUNK)  # what has arrived: a timeout loses nothing read
            except (OSError, http.client.HTTPException) as error:  # a timeout, a reset connection
                stopped = error
                break
            if not block:
                break
            if received == 0 and _looks_like_html(block):
                stopped = "an HTML page, not the weight file"
                break
            file.write(block)  # a full disk is an OSError of its own, raised as it is
            received += len(block)
            bar.update(len(block))
    if stopped is not None:  # raised once the file is closed, so that the kept bytes are counted
        raise failed(f"the transfer stopped after {received:,} bytes: {stopped}")
    if received == 0:
        raise failed(f"the server answered HTTP {status} with an empty body")
    if total is not None and received != total:
        raise failed(f"the transfer ended after {received:,} of {total:,} bytes")
    return True


def _finish(part: Path, dest: Path, out) -> Path:
    """Rename the whole ``part`` onto ``dest``, record its SHA-256 and say so."""
    sha = file_sha256(part)
    os.replace(part, dest)
    record = _write_record(dest, sha)
    out(f"SHA-256 {sha} (recorded in {record})")
    out(f"wrote {dest} ({dest.stat().st_size:,} bytes)")
    return dest


def add_arguments(parser, release: str = "slamp") -> None:
    """The arguments of ``slamp download public`` (``release="slamp"``) or ``slamp download svg``:
    DATASET, ``--data DIR``, ``--url BASE``, ``--no-progress``."""
    parser.set_defaults(release=release)
    datasets = RELEASES[release]
    parser.add_argument("dataset", choices=datasets, help="whose weights: " + ", ".join(datasets))
    parser.add_argument("--data", type=Path, default=None, metavar="DIR",
                        help="data folder (default: $SLAMP_DATA, else the user cache folder, else a clone's data/); "
                             "the file goes in DIR/public/")
    parser.add_argument("--url", default=None, metavar="BASE",
                        help=f"base URL of a mirror (default: ${PUBLIC_URL_ENVIRONMENT}, else "
                             f"{SVG_BASE_URL if release == 'svg' else PUBLIC_BASE_URL})")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def run(args) -> int:
    """``slamp download public``: 0 when the file is there, 1 (the error printed) when not."""
    try:
        download_public(args.dataset, args.data, args.url, progress=getattr(args, "progress", True),
                        release=getattr(args, "release", "slamp"))
    except (DownloadError, ValueError) as error:
        print(f"slamp download: {error}", file=sys.stderr)
        return 1
    return 0


__all__ = ["DATASETS", "PUBLIC_URL_ENVIRONMENT", "PUBLIC_BASE_URL", "PUBLIC_RELEASE", "PUBLIC_README_LINKS",
           "SVG_BASE_URL", "SVG_FILES", "RELEASES",
           "DownloadError", "file_name", "public_url", "public_weights_path", "find_public_weights", "file_sha256",
           "recorded_sha256", "download_public", "add_arguments", "run"]
