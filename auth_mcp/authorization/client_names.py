"""What a self-chosen client name may contain, and what about it deserves a warning.

A client names itself at registration (RFC 7591 `client_name`) or in its metadata document, and
the consent page shows that name to the person. RFC 7591 §5 and RFC 9700 §4.8 warn that such
names are unverified claims. Two defences:
- at registration, names with characters that change how text around them renders are refused:
  controls, bidirectional overrides and isolates, zero-width and other format characters, line
  and paragraph separators, private-use and surrogate code points (unassigned ones are allowed:
  the interpreter's Unicode tables lag behind the emoji people use). "Visual Studio
  Code by microsoft.com ✓verified" can otherwise be spelled with a right-to-left override so
  that the page shows something the bytes do not say;
- on the consent page, `look_alike_warnings` points out names that claim a verification nobody
  made, name a domain the person is not being sent to, or use compatibility look-alike letters.
"""

from __future__ import annotations

import re
import unicodedata

MAX_CLIENT_NAME_LENGTH = 200
# Unicode general categories refused in names: Cc control, Cf format (bidi, zero-width), Cs
# surrogate, Co private use, Zl/Zp line and paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
_CLAIMS = re.compile(r"verified|official|trusted|certified|genuine|authentic|secure[d]?|[\u2713\u2714\u2611\u2705\U0001f512]", re.IGNORECASE)
_DOMAIN = re.compile(r"(?<![\w.-])((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63})(?![\w-])", re.IGNORECASE)


def name_problem(name: str) -> str | None:
    """Why `name` cannot be registered as a client name, or None if it can."""
    if len(name) > MAX_CLIENT_NAME_LENGTH:
        return f"client_name is limited to {MAX_CLIENT_NAME_LENGTH} characters"
    for ch in name:
        if unicodedata.category(ch) in _REFUSED_CATEGORIES:
            return (
                f"client_name must not contain control, formatting or bidirectional characters (found U+{ord(ch):04X}); "
                "use plain text"
            )
    return None


def has_refused_characters(text: str) -> bool:
    """Surrogates (which cannot be stored or shown as UTF-8) or NUL (which PostgreSQL refuses)."""
    return "\x00" in text or any("\ud800" <= ch <= "\udfff" for ch in text)


def look_alike_warnings(name: str, *, redirect_host: str | None, verified_host: str | None) -> list[str]:
    """Sentences for the consent page about what in `name` could mislead the person."""
    warnings: list[str] = []
    if _CLAIMS.search(name):
        warnings.append(
            "The application's name claims to be verified, official or secure. This server has not checked "
            "any such claim: judge the application by where you will be sent back to."
        )
    trusted = [host for host in (redirect_host, verified_host) if host]
    for domain in dict.fromkeys(match.lower() for match in _DOMAIN.findall(name)):
        if not any(_same_site(domain, host.lower()) for host in trusted):
            where = f" but you will be sent back to {redirect_host}" if redirect_host else ""
            warnings.append(f"The application's name mentions {domain}{where}; the name does not prove who runs it.")
    if unicodedata.normalize("NFKC", name) != name:
        warnings.append("The application's name uses look-alike characters (for example full-width letters).")
    return warnings


def _same_site(domain: str, host: str) -> bool:
    """`domain` is the host, or one is a subdomain of the other."""
    return domain == host or host.endswith("." + domain) or domain.endswith("." + host)
