"""``bin/bench attachments``: uploading a 30 MB PDF to a real daphne process.

What the issue asks to note: the upload's throughput, and the server's memory while it
takes the file (streamed to storage, never held twice). The PDF (100 pages of text and a
30 MB stream) is posted as multipart, read from disk as it is sent, to a daphne serving
the site; the same bytes are then copied from file to file on the same disk, side by
side, as the floor any upload path pays. Memory is the daphne process's resident set:
its peak (``VmHWM``, reset before each upload through ``/proc/<pid>/clear_refs``) less
what it held just before; beside it, the same body posted to a path that answers 404
without reading it: what daphne itself costs to receive it, whoever handles it. Also, in this process, the peak of Python allocations
(tracemalloc) while the upload is checked and stored from its temporary file.
"""

from __future__ import annotations

import http.client
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

from bench import setup_django, throwaway_database

RUNS = 3
MB = 1024 * 1024
BOUNDARY = "----agentsite-bench-boundary"


def _status(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def _reset_peak(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def _post(port: int, path: str, token: str, file: Path) -> tuple[float, int]:
    head = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"report.pdf\"\r\n"
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    size = file.stat().st_size

    def body():
        yield head
        with open(file, "rb") as f:
            while chunk := f.read(256 * 1024):
                yield chunk
        yield tail

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    started = time.perf_counter()
    connection.request(
        "POST",
        path,
        body=body(),
        headers={
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            "Content-Length": str(len(head) + size + len(tail)),
            "Authorization": f"Token {token}",
            "Host": "127.0.0.1",
        },
    )
    response = connection.getresponse()
    response.read()
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed, response.status


def _in_process(file: Path) -> tuple[float, int]:
    """Seconds and peak Python allocations of checking and storing the upload, from the
    temporary file Django's upload handler streamed it to."""
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import TemporaryUploadedFile

    from chat.attachments import service

    user = get_user_model().objects.get(username="bench-uploader")
    upload = TemporaryUploadedFile("report.pdf", "application/pdf", file.stat().st_size, None)
    with open(file, "rb") as source:
        shutil.copyfileobj(source, upload)
    upload.flush()
    tracemalloc.start()
    started = time.perf_counter()
    service.upload(user, uuid.uuid4(), upload)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    upload.close()  # as Django does at the end of a request (the storage moved the file away)
    return elapsed, peak


def main() -> int:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import override_settings
    from rest_framework.authtoken.models import Token

    from tests import files
    from tests.live import DaphneServer

    work = Path(tempfile.mkdtemp(prefix="agentsite-bench-attachments-"))
    in_process = {
        **settings.STORAGES,
        "attachments": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(work / "in-process")},
        },
    }
    try:
        pdf = work / "report.pdf"
        pdf.write_bytes(files.pdf(*[f"Page {i}: quarterly figures." for i in range(1, 101)], padding=30 * MB))
        size = pdf.stat().st_size
        user = get_user_model().objects.create_user("bench-uploader", password="x")
        token = Token.objects.create(user=user).key
        print(f"a {size / MB:.1f} MB PDF of 100 pages, {RUNS} runs each, medians\n")
        uploads, copies, peaks, baselines = [], [], [], []
        with DaphneServer(env={"ATTACHMENTS_DIR": str(work / "daphne")}) as server:
            pid = server.process.pid
            for _ in range(RUNS):
                before = _status(pid, "VmRSS")
                measured = _reset_peak(pid)
                seconds, status = _post(server.port, f"/api/v1/chats/{uuid.uuid4()}/attachments/", token, pdf)
                if status != 201:
                    print(f"the upload was answered {status}; see {server.log_path}", file=sys.stderr)
                    return 1
                uploads.append(seconds)
                if measured:
                    peaks.append(_status(pid, "VmHWM") - before)
                before = _status(pid, "VmRSS")
                if _reset_peak(pid):
                    _post(server.port, "/api/v1/no-such-path/", token, pdf)
                    baselines.append(_status(pid, "VmHWM") - before)
                started = time.perf_counter()
                shutil.copyfile(pdf, work / "copy.pdf")
                copies.append(time.perf_counter() - started)
        upload, copy = statistics.median(uploads), statistics.median(copies)
        print(f"upload to daphne          {upload:7.2f} s   {size / MB / upload:7.1f} MB/s")
        print(f"file copy, same disk      {copy:7.2f} s   {size / MB / copy:7.1f} MB/s")
        print(f"upload / copy             {upload / copy:7.1f} ×")
        if peaks:
            peak = statistics.median(peaks)
            baseline = statistics.median(baselines)
            print(f"daphne peak RSS growth    {peak / MB:7.1f} MB  ({peak / size:.2f} × the file)")
            print(f"  same body, 404 unread   {baseline / MB:7.1f} MB  ({baseline / size:.2f} × the file; upload / this {peak / baseline:.2f} ×)")
        else:
            print("daphne peak RSS growth    (not measurable here: /proc/<pid>/clear_refs refused)")
        with override_settings(STORAGES=in_process):
            results = [_in_process(pdf) for _ in range(RUNS)]
        seconds = statistics.median(r[0] for r in results)
        peak = statistics.median(r[1] for r in results)
        print(f"check + store in process  {seconds:7.2f} s   peak Python allocations {peak / MB:.1f} MB ({peak / size:.3f} × the file)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    setup_django()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    with throwaway_database():
        code = main()
    sys.exit(code)
