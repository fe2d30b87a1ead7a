"""Shamir secret sharing over GF(2^8) (the AES field, polynomial x^8+x^4+x^3+x+1).

A secret of any length is split byte by byte: for each byte a random polynomial of degree k-1
whose constant term is that byte, evaluated at x = 1..n. Any k shares give the polynomial back by
Lagrange interpolation at 0; k-1 shares are consistent with every possible secret, so a single
sheet of the recovery kit reveals nothing of a key (information-theoretically, not just hard).

The coefficients come from ``secrets.token_bytes`` (the OS CSPRNG). No share is ever x = 0.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from appliance.errors import HallError


class ShareError(HallError):
    """The shares cannot be combined (too few, duplicated, from different splits, damaged)."""

    code = "share_invalid"


def _build_tables() -> tuple[list[int], list[int]]:
    exp = [0] * 512
    log = [0] * 256
    x = 1
    for i in range(255):
        exp[i] = x
        log[x] = i
        # multiply by the generator 3 = x + 1
        x ^= (x << 1) ^ (0x11B if x & 0x80 else 0)
        x &= 0xFF
    for i in range(255, 512):
        exp[i] = exp[i - 255]
    return exp, log


_EXP, _LOG = _build_tables()


def gf_mul(a: int, b: int) -> int:
    if a == 0 or b == 0:
        return 0
    return _EXP[_LOG[a] + _LOG[b]]


def gf_div(a: int, b: int) -> int:
    if b == 0:
        raise ZeroDivisionError("division by zero in GF(256)")
    if a == 0:
        return 0
    return _EXP[(_LOG[a] - _LOG[b]) % 255]


@dataclass(frozen=True)
class Share:
    x: int  # 1..255
    y: bytes  # one byte per secret byte


def split(secret: bytes, k: int, n: int) -> list[Share]:
    """``n`` shares of ``secret``, any ``k`` of which rebuild it (2 ≤ k ≤ n ≤ 255)."""
    if not 2 <= k <= n <= 255:
        raise ShareError(f"need 2 <= k <= n <= 255 shares, got k={k}, n={n}")
    if not secret:
        raise ShareError("nothing to split: the secret is empty")
    coefficients = [secrets.token_bytes(len(secret)) for _ in range(k - 1)]
    shares = []
    for x in range(1, n + 1):
        out = bytearray(len(secret))
        for i, s in enumerate(secret):
            # Horner: ((c_{k-1} x + c_{k-2}) x + ... ) x + s
            acc = 0
            for c in reversed(coefficients):
                acc = gf_mul(acc, x) ^ c[i]
            out[i] = gf_mul(acc, x) ^ s
        shares.append(Share(x, bytes(out)))
    return shares


def combine(shares: Sequence[Share]) -> bytes:
    """The secret from ``k`` (or more) distinct shares of one split. With fewer than the split's
    k the result is garbage, not an error: the caller checks it against a fingerprint."""
    if len(shares) < 2:
        raise ShareError("at least two shares are needed")
    xs = [s.x for s in shares]
    if len(set(xs)) != len(xs):
        raise ShareError(f"the same share was given twice (share numbers {sorted(xs)})")
    if any(not 1 <= x <= 255 for x in xs):
        raise ShareError("a share number is out of range")
    size = len(shares[0].y)
    if any(len(s.y) != size for s in shares):
        raise ShareError("the shares have different lengths: they are not from the same recovery kit")
    # Lagrange basis at 0: l_j = prod_{m != j} x_m / (x_m - x_j); subtraction is xor in GF(2^8).
    basis = []
    for j, xj in enumerate(xs):
        num, den = 1, 1
        for m, xm in enumerate(xs):
            if m != j:
                num = gf_mul(num, xm)
                den = gf_mul(den, xm ^ xj)
        basis.append(gf_div(num, den))
    out = bytearray(size)
    for share, lj in zip(shares, basis, strict=True):
        for i, y in enumerate(share.y):
            out[i] ^= gf_mul(y, lj)
    return bytes(out)
