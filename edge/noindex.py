"""Noindex at serve time. Pure functions over bytes.

Staging responses, and production entries a snapshot marks ``noindex``, carry
``X-Robots-Tag`` and, in HTML, a robots meta tag in ``<head>``. The tag is never
stored in a snapshot: the same snapshot is indexable once promoted.
"""

from __future__ import annotations

import re

ROBOTS_HEADER = "noindex, nofollow"
ROBOTS_META = b'<meta name="robots" content="noindex, nofollow">'

# Staging's robots.txt must let crawlers in (a page blocked by robots.txt is never
# fetched, so its noindex is never seen) and must not advertise a sitemap.
STAGING_ROBOTS_TXT = (
    b"# Staging environment: every response carries noindex.\n"
    b"# Crawling is allowed so that crawlers can see it.\n"
    b"User-agent: *\n"
    b"Allow: /\n"
)

_EXISTING_META = re.compile(
    rb"""<meta\b(?=[^>]*\sname\s*=\s*["']?robots["'\s/>])[^>]*>""", re.IGNORECASE
)
_HEAD_OPEN = re.compile(rb"<head(?:\s[^>]*)?>", re.IGNORECASE)
_HTML_OPEN = re.compile(rb"<html(?:\s[^>]*)?>", re.IGNORECASE)
_DOCTYPE = re.compile(rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!doctype[^>]*>)?", re.IGNORECASE)


def inject_robots_meta(html: bytes) -> bytes:
    """Replace any robots meta with noindex, nofollow; add one to ``<head>`` if absent.

    Without a ``<head>`` the tag goes after ``<html>``, or after the doctype, where
    browsers and crawlers treat it as part of the implied head.
    """
    html = _EXISTING_META.sub(b"", html)
    head = _HEAD_OPEN.search(html)
    if head is None:
        head = _HTML_OPEN.search(html)
    if head is not None:
        at = head.end()
    else:
        doctype = _DOCTYPE.match(html)
        at = doctype.end() if doctype is not None else 0
    return html[:at] + ROBOTS_META + html[at:]
