"""Whether a request wants a page or data: the Accept header, as browsers and clients send it."""

from __future__ import annotations


def prefers_html(accept: str) -> bool:
    """True when an Accept header ranks text/html above JSON (what browsers send for a page)."""
    best_html = best_json = -1.0
    for item in accept.split(","):
        media, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.strip().lower()
        if media in ("text/html", "application/xhtml+xml"):
            best_html = max(best_html, quality)
        elif media in ("application/json", "*/*"):
            best_json = max(best_json, quality if media == "application/json" else quality - 0.001)
    return best_html > 0 and best_html > best_json
