"""nginx as a baseline: the same generated site served from a directory.

One worker (or N), ``sendfile on``, ``open_file_cache``, access log off, keep-alive
as long as wrk wants it, ``gzip_static`` for the gzip scenario (every compressible
file has a ``.gz`` beside it, made once, as edge compresses once per blob), ETags
on (the 304 scenario). Debian's ``nginx-light`` has all of that.
"""

from __future__ import annotations

import getpass
import gzip
import os
import shutil
from pathlib import Path

from bench.harness import BenchError, Children, free_port, pinned

INSTALL_HINT = (
    "nginx is not installed; on Debian/Ubuntu: apt-get update && apt-get install -y nginx-light"
)
_COMPRESSIBLE = (".html", ".css", ".js", ".txt", ".svg", ".json", ".xml")
_MIME_TYPES = Path("/etc/nginx/mime.types")


def binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )


def available() -> bool:
    return binary() is not None


def precompress(site_dir: Path) -> int:
    """Write ``file.gz`` beside every compressible file (gzip -6, like edge); how many."""
    count = 0
    for path in site_dir.rglob("*"):
        if path.is_file() and path.suffix in _COMPRESSIBLE:
            path.with_name(path.name + ".gz").write_bytes(
                gzip.compress(path.read_bytes(), compresslevel=6, mtime=0)
            )
            count += 1
    return count


def config(workdir: Path, site_dir: Path, port: int, workers: int) -> str:
    mime = f"include {_MIME_TYPES};" if _MIME_TYPES.exists() else "types { text/html html; }"
    temp = workdir / "tmp"
    # As root, nginx's workers would run as "nobody" and could not read a private
    # temporary directory: they run as whoever runs the benchmark.
    user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
    return f"""
{user}
worker_processes {workers};
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    {mime}
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 100000000;
    open_file_cache max=10000 inactive=60s;
    open_file_cache_valid 60s;
    open_file_cache_errors on;
    gzip off;
    gzip_static on;
    gzip_vary on;
    etag on;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    server {{
        listen 127.0.0.1:{port} reuseport;
        root {site_dir};
        index index.html;
    }}
}}
"""


def start_nginx(
    children: Children, workdir: Path, site_dir: Path, cpu: int | None, *, workers: int = 1
) -> str:
    """nginx serving ``site_dir`` (precompressed already) on a free port; its URL."""
    nginx = binary()
    if nginx is None:
        raise BenchError(INSTALL_HINT)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "tmp").mkdir(exist_ok=True)
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(config(workdir, site_dir, port, workers))
    cmd = [nginx, "-c", str(conf), "-p", str(workdir), "-e", str(workdir / "error.log")]
    child = children.start(f"nginx ({workers} worker(s))", pinned(cpu, cmd), workdir / "nginx.log")
    children.wait_listening(child, port)
    return f"http://127.0.0.1:{port}"
