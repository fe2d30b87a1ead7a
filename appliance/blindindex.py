"""The keyed half of search: a blind index over :mod:`appliance.tokenise` terms.

Every term (``b:张三``, ``u:张``, ``w:abc``, ``d:123``, ``n:13812345678``) becomes a *token*: the
first 50 bits of HMAC-SHA256 under a secret index key, written as 10 base32 letters (a-z, 2-7) so
that FTS5's default tokenizer sees exactly one token. Plaintext never reaches the FTS table.

What leaks to someone holding the database but not the index key:

- equality and frequency: the same term gives the same token in every document, so token counts,
  co-occurrence, document lengths and term positions are visible. Against Chinese text this
  permits frequency analysis (common bigrams, the characters of a name seen in many records), so
  the index key is as sensitive as the data keys and the FTS table must not leave the box
  unencrypted.
- nothing beyond that without the key: HMAC is not invertible and tokens of different keys are
  unrelated, so two boxes' indexes cannot be joined.

Truncation to 50 bits makes distinct terms collide with probability 2^-50 per pair (about
1 in 2,000 for a vocabulary of a million terms to contain any collision at all). A collision only
adds false hits, and every hit is confirmed by decrypting the text and running
:func:`appliance.tokenise.find_spans`, which removes them.

Exact look-ups (ID number, phone, name, archival code) use the full 256-bit HMAC under a separate
subkey per kind, over a canonical form (see :func:`canonical`), so equal values are joinable
within one kind only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from typing import Literal, get_args

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from appliance.tokenise import Clause, index_terms, query_plan

ExactKind = Literal["id_number", "phone", "name", "archival_code"]
_PURPOSES = ("text", "id_number", "phone", "name", "archival_code", "fingerprint")
_INFO_PREFIX = b"hall-appliance blind index v1 "
_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_CACHE_LIMIT = 200_000
_NAME_DOTS = str.maketrans(dict.fromkeys("•・‧∙⋅", "·"))  # NFKC already maps ･ → ・
_CODE_DOTS = str.maketrans(dict.fromkeys("•・", "·"))  # NFKC already maps ･ → ・
_WHITESPACE = re.compile(r"\s+")


def canonical(kind: ExactKind, value: str) -> str:
    """The canonical form :meth:`BlindIndex.exact` hashes; ``ValueError`` if it is empty.

    - ``id_number``: NFKC, no whitespace or hyphens, upper case (final ``x`` → ``X``);
    - ``phone``: digits only (NFKC first); a leading ``86`` country code is dropped when 13 digits
      remain, ``0086`` when 15 do;
    - ``name``: NFKC, no whitespace, middle-dot variants ``•・‧∙⋅`` unified to ``·``;
    - ``archival_code``: NFKC, no whitespace, ``•・`` (and half-width ``･``) unified to ``·``, upper
      case. ``.`` is left alone.
    """
    text = unicodedata.normalize("NFKC", value)
    if kind == "id_number":
        canon = _WHITESPACE.sub("", text).replace("-", "").upper()
    elif kind == "phone":
        canon = "".join(ch for ch in text if "0" <= ch <= "9")
        if len(canon) == 13 and canon.startswith("86"):
            canon = canon[2:]
        elif len(canon) == 15 and canon.startswith("0086"):
            canon = canon[4:]
    elif kind == "name":
        canon = _WHITESPACE.sub("", text).translate(_NAME_DOTS)
    elif kind == "archival_code":
        canon = _WHITESPACE.sub("", text).translate(_CODE_DOTS).upper()
    else:
        raise ValueError(f"unknown exact kind {kind!r}; expected one of {get_args(ExactKind)}")
    if not canon:
        raise ValueError(f"empty {kind} after canonicalisation")
    return canon


class BlindIndex:
    """Keyed tokens for the FTS table and keyed exact-match hashes. Holds only derived subkeys."""

    __slots__ = ("_cache", "_keys")

    def __init__(self, index_key: bytes) -> None:
        if not isinstance(index_key, bytes | bytearray) or len(index_key) != 32:
            raise ValueError("the index key must be 32 bytes")
        self._keys = {
            purpose: HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO_PREFIX + purpose.encode()
            ).derive(bytes(index_key))
            for purpose in _PURPOSES
        }
        self._cache: dict[str, str] = {}

    def __repr__(self) -> str:
        return "BlindIndex(<keyed>)"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("BlindIndex holds key material and is not picklable")

    def token(self, term: str) -> str:
        """The 10-character base32 token of a plain term (50 bits of HMAC-SHA256)."""
        tok = self._cache.get(term)
        if tok is None:
            digest = hmac.digest(self._keys["text"], term.encode("utf-8", "surrogatepass"), "sha256")
            bits = int.from_bytes(digest[:7], "big") >> 6  # the first 50 bits
            tok = "".join(_B32[(bits >> shift) & 31] for shift in range(45, -1, -5))
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[term] = tok
        return tok

    def document(self, text: str) -> dict[str, str]:
        """Column values ``{"seq", "uni", "whole"}`` (space-joined tokens) for the FTS5 row."""
        terms = index_terms(text)
        return {
            "seq": " ".join(map(self.token, terms.seq)),
            "uni": " ".join(map(self.token, terms.uni)),
            "whole": " ".join(map(self.token, terms.whole)),
        }

    def match_expression(self, query: str) -> str | None:
        """The FTS5 MATCH string for ``query``, or None when the query has no terms."""
        plan = query_plan(query)
        if plan.empty:
            return None
        return " AND ".join(self._clause(clause) for clause in plan.clauses)

    def _clause(self, clause: Clause) -> str:
        phrase = f'({clause.column} : "{" ".join(map(self.token, clause.terms))}")'
        if not clause.alternatives:
            return phrase
        return "(" + " OR ".join([phrase, *map(self._clause, clause.alternatives)]) + ")"

    def exact(self, kind: ExactKind, value: str) -> str:
        """64 hex chars: HMAC-SHA256 under ``kind``'s subkey of :func:`canonical` ``(kind, value)``."""
        canon = canonical(kind, value)
        return hmac.new(self._keys[kind], canon.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()

    def fingerprint(self) -> hmac.HMAC:
        """A fresh keyed SHA-256 hasher (``update``/``hexdigest``) for file fingerprints."""
        return hmac.new(self._keys["fingerprint"], digestmod=hashlib.sha256)
