"""A generated site for the benchmarks: realistic HTML pages, a stylesheet, PNGs.

Deterministic for a given seed, so every run (and every machine) serves the same
bytes. Pages are ~20 KB with a real ``<head>`` holding an indexable robots meta
(which staging must replace), pretty URLs (``/posts/<slug>/index.html``), and a
robots.txt with a ``Sitemap:`` line (which staging must drop).
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

PRODUCTION_HOST = "bench.example"

_WORDS = (
    "snapshot staging production publish preview release pointer atomic content cache "
    "visitor editor review launch schedule rollback manifest blob history environment "
    "merge drift origin header robots crawler sitemap page article author team draft "
    "campaign product pricing feature customer story guide tutorial reference update "
    "the a of and to in for with on by from as is are was be this that it we our you"
).split()


def _sentence(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(_WORDS) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng, rng.randint(8, 22)) for _ in range(rng.randint(3, 7)))


def _page_html(rng: random.Random, title: str, url_path: str, nav: Sequence[str]) -> bytes:
    links = "\n".join(f'      <li><a href="{href}">{href.strip("/")}</a></li>' for href in nav)
    head = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} | Acme Journal</title>
  <meta name="description" content="{_sentence(rng, 18)}">
  <meta name="robots" content="index, follow">
  <link rel="canonical" href="https://{PRODUCTION_HOST}{url_path}">
  <meta property="og:title" content="{title}">
  <meta property="og:type" content="article">
  <meta property="og:image" content="https://{PRODUCTION_HOST}/media/hero-1.png">
  <link rel="stylesheet" href="/assets/site.css">
  <link rel="icon" type="image/png" href="/media/icon.png">
</head>
<body>
  <header class="site-header">
    <a class="brand" href="/">Acme Journal</a>
    <nav aria-label="Posts"><ul>
{links}
    </ul></nav>
  </header>
  <main>
    <article>
      <h1>{title}</h1>
      <p class="byline">By {rng.choice(["Ada", "Grace", "Linus", "Barbara"])} on
        <time datetime="2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}">a weekday</time></p>
      <figure><img src="/media/hero-{rng.randint(1, 3)}.png" alt="" width="128" height="128">
        <figcaption>{_sentence(rng, 9)}</figcaption></figure>
"""
    tail = """    </article>
  </main>
  <footer class="site-footer"><p>&copy; Acme. All rights reserved.</p></footer>
  <script>document.documentElement.classList.add("js");</script>
</body>
</html>
"""
    target = rng.randint(18 * 1024, 22 * 1024)
    parts = [head]
    size = len(head) + len(tail)
    while size < target:
        block = f"      <h2>{_sentence(rng, 5)}</h2>\n" if rng.random() < 0.2 else ""
        block += f"      <p>{_paragraph(rng)}</p>\n"
        parts.append(block)
        size += len(block)
    parts.append(tail)
    return "".join(parts).encode()


def _png(rng: random.Random, width: int, height: int) -> bytes:
    """A valid RGB PNG of noise (incompressible, like real photos)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 6))
        + chunk(b"IEND", b"")
    )


def generate_site(root: Path, pages: int, timed: int, seed: int = 7) -> str:
    """Write the site below ``root``; the URL path of the page that gets timed."""
    rng = random.Random(seed)
    slugs = [f"{i:03d}-{rng.choice(_WORDS)}-{rng.choice(_WORDS)}" for i in range(pages - 2)]
    post_paths = [f"/posts/{slug}/" for slug in slugs]

    def write(url_path: str, data: bytes) -> None:
        target = root / url_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    write("/index.html", _page_html(rng, "Acme Journal", "/", post_paths[:40]))
    write("/404.html", _page_html(rng, "Page not found", "/404.html", post_paths[:10]))
    for i, path in enumerate(post_paths):
        nav = [post_paths[(i + k) % len(post_paths)] for k in range(-15, 16) if k]
        write(path + "index.html", _page_html(rng, _sentence(rng, 6)[:-1], path, nav))
    css = "".join(
        f".c{i} {{ margin: {i % 7}px {i % 5}px; color: #{rng.randrange(0x1000000):06x}; }}\n"
        for i in range(200)
    )
    write("/assets/site.css", css.encode())
    for n in (1, 2, 3):
        write(f"/media/hero-{n}.png", _png(rng, 128, 128))
    write("/media/icon.png", _png(rng, 32, 32))
    write(
        "/robots.txt",
        f"User-agent: *\nAllow: /\nSitemap: https://{PRODUCTION_HOST}/s.xml\n".encode(),
    )
    return post_paths[timed % len(post_paths)]


def variant_site(src: Path, dst: Path, marker: str) -> None:
    """A copy of ``src`` in which every HTML page carries ``marker`` before ``</body>``.

    Same paths, different bytes for every page: a second snapshot of the same site.
    """
    for file in sorted(p for p in src.rglob("*") if p.is_file()):
        target = dst / file.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = file.read_bytes()
        if file.suffix == ".html":
            data = data.replace(b"</body>", f"<!-- {marker} -->\n</body>".encode(), 1)
        target.write_bytes(data)


def generate_small_site(root: Path, files: int, seed: int = 11) -> list[str]:
    """``files`` small HTML pages (1-4 KB, distinct bytes each) below ``root``.

    Laid out 100 to a folder (``/docs/s000/p00000.html``); returns their URL paths.
    """
    rng = random.Random(seed)
    paths: list[str] = []
    for i in range(files):
        url_path = f"/docs/s{i // 100:03d}/p{i:05d}.html"
        target = root / url_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        size = rng.randint(1024, 4096)
        head = (
            f'<!doctype html>\n<html lang="en">\n<head><meta charset="utf-8">'
            f"<title>Page {i}</title></head>\n<body>\n<h1>Page {i}</h1>\n"
        )
        tail = "</body>\n</html>\n"
        body: list[str] = []
        used = len(head) + len(tail)
        while used < size:
            para = f"<p>{_sentence(rng, rng.randint(6, 14))}</p>\n"
            body.append(para)
            used += len(para)
        target.write_text(head + "".join(body) + tail)
        paths.append(url_path)
    return paths
