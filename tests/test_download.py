"""`slamp download public`: the public SLAMP weights, fetched on request, resumed, checked, written whole.

Every test talks to a server on 127.0.0.1 started here (nothing else is ever contacted), and every
client call has a timeout of a few seconds.
"""
import argparse
import hashlib
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from slamp import download
from slamp.download import DownloadError, download_public


BODY = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()  # the "weights"
SHA = hashlib.sha256(BODY).hexdigest()
TIMEOUT = 3.0  # seconds, for every client call


class Handler(BaseHTTPRequestHandler):
    """Serves ``server.body`` at any path, with HTTP Range requests; ``server`` holds what a test
    changes (a status to answer, a cut after N bytes, ignoring Range, ...) and records each request."""

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        server = self.server
        server.requests.append({"path": self.path, "range": self.headers.get("Range")})
        if server.status is not None:
            page = b"<!DOCTYPE html><html><body>Not Found</body></html>"
            self.send_response(server.status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        body, start = server.body, 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and not server.ignore_range:
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", server.content_type)
        if server.send_length:
            self.send_header("Content-Length", str(server.declared_length or len(body) - start))
        self.end_headers()
        if server.gate is not None:  # hold the body until the client has said the size (or 5 s)
            server.gate_opened = server.gate.wait(5)
        part = body[start:]
        if server.cut_after is not None:  # the connection drops after N bytes, once
            part, server.cut_after = part[:server.cut_after], None
        if server.stall_after is not None:  # N bytes, then nothing until the test lets it go (or 5 s)
            self.wfile.write(part[:server.stall_after])
            server.stalled.wait(5)
            part, server.stall_after = part[server.stall_after:], None
        try:
            self.wfile.write(part)
        except OSError:  # the client gave up (a timeout)
            pass


@pytest.fixture
def server(monkeypatch):
    """A loopback HTTP server serving BODY; ``server.base`` is its base URL."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "*")  # urllib must go straight to 127.0.0.1
    monkeypatch.delenv("SLAMP_PUBLIC_URL", raising=False)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.body, httpd.requests, httpd.status, httpd.ignore_range = BODY, [], None, False
    httpd.cut_after, httpd.gate, httpd.gate_opened = None, None, None
    httpd.stall_after, httpd.stalled = None, threading.Event()
    httpd.content_type, httpd.send_length, httpd.declared_length = "application/octet-stream", True, None
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}/release"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    if httpd.gate is not None:
        httpd.gate.set()
    httpd.stalled.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def closed_port():
    """A loopback port bound by no listener: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening
        yield sock.getsockname()[1]


def fetch(tmp_path, base, said=None, **kwargs):
    said = [] if said is None else said
    kwargs.setdefault("timeout", TIMEOUT)
    return download_public("mnist", data_dir=tmp_path / "data", base_url=base, progress=False,
                           out=said.append, **kwargs)


def test_the_release_names_five_files_and_the_data_folder_holds_them(isolated_data):
    assert list(download.PUBLIC_RELEASE) == list(download.DATASETS) == ["mnist", "kth", "bair", "kitti", "cityscapes"]
    assert download.PUBLIC_RELEASE["kth"] == "https://github.com/kaanakan/slamp/releases/download/v1.0/slamp_kth.pth"
    assert download.public_weights_path("kth") == isolated_data / "public" / "slamp_kth.pth"
    assert download.find_public_weights("kth") is None
    (isolated_data / "public").mkdir(parents=True)
    (isolated_data / "public" / "slamp_kth.pth").write_bytes(b"x")
    assert download.find_public_weights("kth") == isolated_data / "public" / "slamp_kth.pth"


def test_a_full_download_says_url_and_size_first_and_writes_file_and_sha(tmp_path, server):
    said = []
    server.gate = threading.Event()

    def out(line):
        said.append(line)
        if line.startswith("size:"):
            server.gate.set()

    path = download_public("mnist", data_dir=tmp_path / "data", base_url=server.base, progress=False, out=out,
                           timeout=TIMEOUT)
    assert server.gate_opened is True  # the body was sent only after the size was printed
    assert path == tmp_path / "data" / "public" / "slamp_mnist.pth"
    assert path.read_bytes() == BODY
    assert (path.parent / "slamp_mnist.pth.sha256").read_text() == f"{SHA}  slamp_mnist.pth\n"
    assert not list(path.parent.glob("*.part"))
    url = f"{server.base}/slamp_mnist.pth"
    assert said[0] == f"downloading {url}" and said[1] == f"to {path}"
    assert said[2] == "size: 0.3 MB (300,000 bytes)"
    assert any(SHA in line for line in said[3:])
    assert server.requests == [{"path": "/release/slamp_mnist.pth", "range": None}]


def test_an_interrupted_transfer_is_resumed_with_a_range_request(tmp_path, server):
    server.cut_after = 100_000
    with pytest.raises(DownloadError, match="after 100,000 of 300,000 bytes") as error:
        fetch(tmp_path, server.base)
    dest = tmp_path / "data" / "public" / "slamp_mnist.pth"
    part = dest.with_name("slamp_mnist.pth.part")
    assert str(dest) in str(error.value) and str(part) in str(error.value)
    assert not dest.exists() and part.read_bytes() == BODY[:100_000]
    said = []
    assert fetch(tmp_path, server.base, said).read_bytes() == BODY
    assert server.requests[-1]["range"] == "bytes=100000-"
    assert "resuming at byte 100,000" in said[2]
    assert (dest.parent / "slamp_mnist.pth.sha256").read_text().split()[0] == SHA
    assert not part.exists()


def test_a_server_that_ignores_range_is_restarted_cleanly(tmp_path, server):
    server.cut_after = 50_000
    with pytest.raises(DownloadError):
        fetch(tmp_path, server.base)
    server.ignore_range = True
    said = []
    path = fetch(tmp_path, server.base, said)
    assert server.requests[-1]["range"] == "bytes=50000-"  # asked, answered 200 with the whole file
    assert path.read_bytes() == BODY and any("ignored" in line for line in said)


def test_a_part_already_whole_is_finished_on_416(tmp_path, server):
    part = tmp_path / "data" / "public" / "slamp_mnist.pth.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(BODY)
    assert fetch(tmp_path, server.base).read_bytes() == BODY
    assert server.requests == [{"path": "/release/slamp_mnist.pth", "range": f"bytes={len(BODY)}-"}]


def test_a_stalled_transfer_times_out_and_keeps_what_arrived(tmp_path, server):
    server.stall_after = 70_000
    with pytest.raises(DownloadError, match="stopped after 70,000 bytes: timed out"):
        fetch(tmp_path, server.base, timeout=0.5)
    server.stalled.set()
    part = tmp_path / "data" / "public" / "slamp_mnist.pth.part"
    assert part.read_bytes() == BODY[:70_000]
    assert fetch(tmp_path, server.base).read_bytes() == BODY and server.requests[-1]["range"] == "bytes=70000-"


def test_404_names_the_status_and_where_to_put_a_file_fetched_by_hand(tmp_path, server):
    server.status = 404
    with pytest.raises(DownloadError, match="HTTP 404") as error:
        fetch(tmp_path, server.base)
    dest = tmp_path / "data" / "public" / "slamp_mnist.pth"
    assert f"put it at {dest}" in str(error.value) and f"{server.base}/slamp_mnist.pth" in str(error.value)
    assert not list(dest.parent.iterdir())


def test_an_html_page_instead_of_the_file_is_refused(tmp_path, server):
    server.content_type = "text/html"
    with pytest.raises(DownloadError, match="HTTP 200 with a text/html page"):
        fetch(tmp_path, server.base)
    server.content_type, server.body = "application/octet-stream", b"\n<!DOCTYPE html><html>sign in</html>"
    with pytest.raises(DownloadError, match="HTML page"):
        fetch(tmp_path, server.base)
    assert not list((tmp_path / "data" / "public").iterdir())


def test_a_refused_connection_names_url_and_destination_and_writes_nothing(tmp_path, closed_port):
    base = f"http://127.0.0.1:{closed_port}/release"
    with pytest.raises(DownloadError, match="cannot download.*refused") as error:
        fetch(tmp_path, base)
    dest = tmp_path / "data" / "public" / "slamp_mnist.pth"
    assert f"{base}/slamp_mnist.pth" in str(error.value) and f"put it at {dest}" in str(error.value)
    assert not dest.exists() and not list(dest.parent.iterdir())


def test_a_short_or_empty_body_is_an_error_never_a_file(tmp_path, server):
    server.declared_length = len(BODY) + 1000  # says more than it sends
    with pytest.raises(DownloadError, match="ended after 300,000 of 301,000 bytes"):
        fetch(tmp_path, server.base)
    dest = tmp_path / "data" / "public" / "slamp_mnist.pth"
    assert not dest.exists() and not dest.with_name("slamp_mnist.pth.sha256").exists()
    dest.with_name("slamp_mnist.pth.part").unlink()
    server.body, server.declared_length, server.send_length = b"", None, False
    with pytest.raises(DownloadError, match="empty body"):
        fetch(tmp_path, server.base)
    assert not list(dest.parent.iterdir())


def test_a_file_already_there_is_not_fetched_again(tmp_path, server):
    path = fetch(tmp_path, server.base)
    said = []
    assert fetch(tmp_path, server.base, said) == path and len(server.requests) == 1
    assert "already there" in said[0] and SHA in said[0]
    path.write_bytes(BODY[:-1] + b"!")  # changed since: fetched again
    said = []
    assert fetch(tmp_path, server.base, said).read_bytes() == BODY and len(server.requests) == 2
    assert "does not match" in said[0]


def test_a_file_put_there_by_hand_is_kept_and_recorded(tmp_path, server):
    dest = tmp_path / "data" / "public" / "slamp_mnist.pth"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"fetched by hand")
    said = []
    assert fetch(tmp_path, server.base, said).read_bytes() == b"fetched by hand" and server.requests == []
    recorded = hashlib.sha256(b"fetched by hand").hexdigest()
    assert dest.with_name("slamp_mnist.pth.sha256").read_text() == f"{recorded}  slamp_mnist.pth\n"


def test_unknown_dataset_lists_the_five(tmp_path):
    with pytest.raises(ValueError, match="choose from mnist, kth, bair, kitti, cityscapes"):
        download_public("ucf101", data_dir=tmp_path, out=lambda line: None)
    with pytest.raises(ValueError, match="choose from mnist, kth, bair, kitti, cityscapes"):
        download.public_weights_path("ucf101")


def test_the_environment_names_a_mirror(tmp_path, server, monkeypatch):
    monkeypatch.setenv(download.PUBLIC_URL_ENVIRONMENT, server.base + "/")
    path = download_public("kitti", data_dir=tmp_path, progress=False, out=lambda line: None, timeout=TIMEOUT)
    assert path == tmp_path / "public" / "slamp_kitti.pth" and path.read_bytes() == BODY
    assert server.requests[0]["path"] == "/release/slamp_kitti.pth"


def test_the_command_returns_0_or_prints_the_error_and_returns_1(tmp_path, server, closed_port, capsys):
    parser = argparse.ArgumentParser()
    download.add_arguments(parser)
    args = parser.parse_args(["bair", "--data", str(tmp_path), "--url", server.base, "--no-progress"])
    assert download.run(args) == 0 and (tmp_path / "public" / "slamp_bair.pth").read_bytes() == BODY
    assert f"{server.base}/slamp_bair.pth" in capsys.readouterr().out
    args = parser.parse_args(["kth", "--data", str(tmp_path), "--url", f"http://127.0.0.1:{closed_port}"])
    assert download.run(args) == 1
    error = capsys.readouterr().err
    assert f"http://127.0.0.1:{closed_port}/slamp_kth.pth" in error and str(tmp_path / "public" / "slamp_kth.pth") in error
    with pytest.raises(SystemExit):
        parser.parse_args(["ucf101"])


def test_the_public_svg_files_download_on_request_under_their_own_names(tmp_path, server, capsys):
    assert download.SVG_FILES == {"mnist": "svglp_smmnist2.pth", "bair": "svglp_bair.pth"}
    assert download.public_url("bair", release="svg") == \
        "https://github.com/edenton/svg/raw/master/pretrained_models/svglp_bair.pth"
    parser = argparse.ArgumentParser()
    download.add_arguments(parser, "svg")
    args = parser.parse_args(["mnist", "--data", str(tmp_path), "--url", server.base, "--no-progress"])
    assert download.run(args) == 0
    path = tmp_path / "public" / "svglp_smmnist2.pth"
    assert path.read_bytes() == BODY and (path.parent / "svglp_smmnist2.pth.sha256").is_file()
    assert server.requests[-1]["path"] == "/release/svglp_smmnist2.pth"
    assert download.find_public_weights("mnist", tmp_path, release="svg") == path
    assert download.find_public_weights("mnist", tmp_path) is None  # the SLAMP file is another
    with pytest.raises(SystemExit):
        parser.parse_args(["kth"])  # the public SVG code released no KTH model
    with pytest.raises(ValueError, match="no public SVG weights for 'kth'; choose from mnist, bair"):
        download_public("kth", data_dir=tmp_path, out=lambda line: None, release="svg")
