# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, auto_pickle=False
"""Compiled twin of ``smtpstream._filters_py``: LuaSocket's ``mime.c`` filters in C.

Same classes, arguments, attributes, outputs and errors as the pure-Python
twin (the contract is ``docs/filters.md``; the byte semantics are LuaSocket 3's
``mime.c``, ``shared/reference/luasocket-spec.md`` section 2).

How every ``f(chunk)`` works:

1. ``_Filter.__call__`` checks the protocol (finished? ``None``? bytes-like?)
   and takes a flat pointer to the chunk with the buffer protocol.
2. The class's ``_feed`` copies its state into C locals, works out an upper
   bound of the output (exact for base64), and allocates the result bytes
   ONCE (``_out_new``).
3. A ``noexcept nogil`` kernel, one per filter, writes the output in place. It
   touches no Python object, so the GIL is released for large chunks.
4. ``_out_finish`` shrinks the bytes to the written size and hands it over.

Hot loops read 8 bytes at a time (SWAR, "SIMD within a register") to skip
runs of bytes that cannot change the state, and fall back to LuaSocket's
per-byte rules only at the bytes that matter (CR, LF, ``=``, ``.``, ...).

State that LuaSocket carries as unconsumed input (the QP windows) is spliced
with the head of the next chunk in a 4-byte scratch buffer, so the kernels
always see one flat array and chunk boundaries cannot change the output.
"""

from libc.stdint cimport uint16_t, uint32_t, uint64_t
from libc.limits cimport LLONG_MAX
from libc.string cimport memchr, memcpy, memmove
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_CheckBuffer, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.ref cimport PyObject

__all__ = [
    "Base64Encoder",
    "Base64Decoder",
    "QPEncoder",
    "QPDecoder",
    "LineWrapper",
    "QPWrapper",
    "EOLNormalizer",
    "DotStuffer",
    "Base64WrapEncoder",
    "NormalizeStuffer",
    "BodyCanonicalizer",
    "crlf_lines_only",
    "stuffed_lines_only",
    "dkim_canonical",
]

# Raw-pointer versions of the bytes API, for the one audited output helper
# (_out_new/_out_finish): _PyBytes_Resize needs the object with refcount
# exactly 1, which Cython's automatic reference handling cannot promise.
cdef extern from "Python.h":
    PyObject* _bytes_new "PyBytes_FromStringAndSize"(const char* s, Py_ssize_t n) except NULL
    char* _bytes_data "PyBytes_AS_STRING"(PyObject* o) noexcept nogil
    int _PyBytes_Resize(PyObject** pv, Py_ssize_t n) except -1
    void _decref "Py_DECREF"(PyObject* o) noexcept
    const Py_ssize_t PY_SSIZE_T_MAX

# SWAR constants and "index of the first flagged byte" (memory order, so it is
# right on either byte order). Masks flag bit 7 of a byte; only the FIRST
# flagged byte of a mask is guaranteed exact, which is all the loops use.
cdef extern from *:
    """
    #define SS_ONES  0x0101010101010101ULL
    #define SS_HIGHS 0x8080808080808080ULL
    #if defined(__GNUC__) || defined(__clang__)
    #  if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    #    define SS_FIRST_FLAGGED(m) ((Py_ssize_t)(__builtin_clzll(m) >> 3))
    #  else
    #    define SS_FIRST_FLAGGED(m) ((Py_ssize_t)(__builtin_ctzll(m) >> 3))
    #  endif
    #else
    static Py_ssize_t SS_FIRST_FLAGGED(unsigned long long m) {
        unsigned char b[8];
        Py_ssize_t k;
        memcpy(b, &m, 8);
        for (k = 0; k < 8; k++) if (b[k] & 0x80) return k;
        return 8;
    }
    #endif
    """
    const uint64_t SS_ONES
    const uint64_t SS_HIGHS
    Py_ssize_t SS_FIRST_FLAGGED(uint64_t m) noexcept nogil


cdef enum:
    TAB = 9
    LF = 10
    CR = 13
    SP = 32
    DOT = 46
    EQ = 61
    # Chunks at least this long are worked on with the GIL released.
    NOGIL_MIN = 16384

# Base64Decoder fast-path tables: decoded values use bits 0-23; DEC_BAD marks
# '=' and bytes outside the alphabet
cdef enum:
    DEC_BAD = 0x40000000

# QP encoder byte classes (LuaSocket's qpclass)
cdef enum:
    QP_PLAIN = 0     # 33-60, 62-126: copied
    QP_QUOTED = 1    # everything else but CR, SP, TAB: =XX
    QP_CR = 2        # needs one byte of look-ahead (CRLF?)
    QP_IF_LAST = 3   # SP, TAB: need two bytes of look-ahead (CRLF next?)

# `left` and `length` are kept in a long long; ints beyond it are clamped
# (sys.maxsize still fits exactly). The kernels only decrement a positive
# `left`, and the break count below avoids `k + length`, so nothing overflows.
cdef long long LEFT_MAX = LLONG_MAX

cdef bytes EMPTY = b""
cdef bytes CRLF_BYTES = b"\r\n"


# --------------------------------------------------------------------------
# Tables, filled once at import

cdef unsigned char _B64[64]
cdef uint16_t _B64_PAIR[4096]      # 12 bits -> the 2 base64 chars, in memory order
cdef unsigned char _UNB64[256]     # char -> 0..63, '=' -> 0, invalid -> 255
cdef uint32_t _DEC0[256]           # char -> value << 18, or DEC_BAD for '=' and invalid
cdef uint32_t _DEC1[256]           # << 12
cdef uint32_t _DEC2[256]           # << 6
cdef uint32_t _DEC3[256]           # << 0
cdef unsigned char _QP_CLASS[256]
cdef unsigned char _HEX[16]
cdef unsigned char _HEX_VALUE[256]  # hex digit (either case) -> 0..15, else 255


cdef void _init_tables() noexcept:
    cdef const unsigned char* alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    cdef const unsigned char* hexdigits = b"0123456789ABCDEF"
    cdef int i
    cdef unsigned char pair[2]
    for i in range(64):
        _B64[i] = alphabet[i]
    for i in range(4096):
        pair[0] = alphabet[i >> 6]
        pair[1] = alphabet[i & 63]
        memcpy(&_B64_PAIR[i], pair, 2)
    for i in range(256):
        _UNB64[i] = 255
        _DEC0[i] = DEC_BAD
        _DEC1[i] = DEC_BAD
        _DEC2[i] = DEC_BAD
        _DEC3[i] = DEC_BAD
        _HEX_VALUE[i] = 255
        if 33 <= i <= 126 and i != EQ:
            _QP_CLASS[i] = QP_PLAIN
        else:
            _QP_CLASS[i] = QP_QUOTED
    _QP_CLASS[CR] = QP_CR
    _QP_CLASS[SP] = QP_IF_LAST
    _QP_CLASS[TAB] = QP_IF_LAST
    for i in range(64):
        _UNB64[alphabet[i]] = <unsigned char>i
        _DEC0[alphabet[i]] = (<uint32_t>i) << 18
        _DEC1[alphabet[i]] = (<uint32_t>i) << 12
        _DEC2[alphabet[i]] = (<uint32_t>i) << 6
        _DEC3[alphabet[i]] = <uint32_t>i
    _UNB64[EQ] = 0  # '=' is a zero digit; the fast path sends it to the slow one
    for i in range(16):
        _HEX[i] = hexdigits[i]
        _HEX_VALUE[hexdigits[i]] = <unsigned char>i
        _HEX_VALUE[b"0123456789abcdef"[i]] = <unsigned char>i


_init_tables()


# --------------------------------------------------------------------------
# Small helpers: word access and SWAR masks

cdef inline uint64_t _load8(const unsigned char* p) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, p, 8)
    return v


cdef inline void _store8(unsigned char* p, uint64_t v) noexcept nogil:
    memcpy(p, &v, 8)


cdef inline uint64_t _zero_bytes(uint64_t v) noexcept nogil:
    """Flags the zero bytes of v."""
    return (v - SS_ONES) & ~v & SS_HIGHS


cdef inline uint64_t _crlf_bytes(uint64_t w) noexcept nogil:
    """Flags the CR and LF bytes of w."""
    return _zero_bytes(w ^ (SS_ONES * CR)) | _zero_bytes(w ^ (SS_ONES * LF))


cdef inline uint64_t _qp_special_bytes(uint64_t w) noexcept nogil:
    """Flags every byte outside 32..126 and every '=' (what QP coders look at)."""
    return (((w - SS_ONES * 0x20) & ~w)           # < 0x20
            | ((w + SS_ONES) | w)                 # >= 0x7F
            | _zero_bytes(w ^ (SS_ONES * EQ))) & SS_HIGHS


cdef inline void _put_hex(unsigned char* d, unsigned char c) noexcept nogil:
    d[0] = EQ
    d[1] = _HEX[c >> 4]
    d[2] = _HEX[c & 15]


cdef inline void _put_marker(unsigned char* d, const unsigned char* marker, Py_ssize_t mlen) noexcept nogil:
    if mlen == 2:  # the usual CRLF: no memcpy call
        d[0] = marker[0]
        d[1] = marker[1]
    else:
        memcpy(d, marker, mlen)


# --------------------------------------------------------------------------
# Input and output: the only places that deal with Python objects per chunk

cdef int _get_view(object owner, object chunk, Py_buffer* view) except -1:
    """Fill ``view`` with a flat, read-only view of ``chunk``; pair with PyBuffer_Release."""
    if not PyObject_CheckBuffer(chunk):
        raise TypeError(
            f"{type(owner).__name__} needs a bytes-like chunk or None, got {type(chunk).__name__}"
        )
    try:
        PyObject_GetBuffer(chunk, view, PyBUF_SIMPLE)
    except BufferError:
        # Not C-contiguous (a strided memoryview): read a flat copy, which the
        # view keeps alive until it is released.
        PyObject_GetBuffer(memoryview(chunk).tobytes(), view, PyBUF_SIMPLE)
    return 0


cdef inline Py_ssize_t _check_size(Py_ssize_t n, Py_ssize_t factor) except -1:
    """Refuse chunks whose worst-case output size would overflow Py_ssize_t."""
    if n > (PY_SSIZE_T_MAX - 64) // factor:
        raise MemoryError("chunk too large")
    return 0


cdef inline PyObject* _out_new(Py_ssize_t cap) except NULL:
    """A fresh, uninitialised bytes of ``cap`` > 0 bytes, owned by the caller.

    The caller writes into it and must pass it to ``_out_finish`` with nothing
    that can raise in between (the kernels are noexcept), so it never leaks.
    """
    return _bytes_new(NULL, cap)


cdef object _out_finish(PyObject* raw, Py_ssize_t cap, Py_ssize_t used):
    """Turn ``raw`` (from ``_out_new``, ``used`` of ``cap`` bytes written) into the result.

    Steals the reference. ``raw`` has never been seen by Python code, so its
    refcount is exactly 1 as ``_PyBytes_Resize`` requires; the object
    reference is made only after the resize.
    """
    cdef object result
    if used > cap or used < 0:  # a kernel bug; memory is already corrupt, stop loudly
        _decref(raw)
        raise SystemError("smtpstream._filters: output overflow")
    if used == 0:
        _decref(raw)
        return EMPTY
    if used < cap:
        _PyBytes_Resize(&raw, used)  # on failure frees raw and raises
    result = <object>raw   # new reference...
    _decref(raw)           # ...and ours is dropped: result owns the only one
    return result


# --------------------------------------------------------------------------
# Argument checking (messages as in the pure twin)

cdef object _check_int(object value, str name):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return value


cdef long long _check_length(object length, long long minimum, str what) except -1:
    if isinstance(length, bool) or not isinstance(length, int):
        raise TypeError(f"{what} length must be an int, got {type(length).__name__}")
    if length < minimum:
        raise ValueError(f"{what} length must be at least {minimum}, got {length}")
    return _clamp(length)


cdef long long _clamp(object value) except? -1:
    if value > LEFT_MAX:
        return LEFT_MAX
    if value < -LEFT_MAX:
        return -LEFT_MAX
    return value


cdef bytes _check_marker(object marker):
    if isinstance(marker, str):
        raise TypeError("marker must be bytes, got str")
    try:
        return bytes(memoryview(marker))
    except TypeError:
        raise TypeError(f"marker must be bytes, got {type(marker).__name__}") from None


# --------------------------------------------------------------------------
# The chunk protocol

cdef class _Filter:
    """The chunk protocol shared by every filter: data, then one ``None``."""

    cdef bint _finished

    @property
    def finished(self):
        """True once the filter has been flushed with ``None``."""
        return self._finished

    def __call__(self, chunk):
        """Filter one bytes-like chunk, or end the input with ``None``; returns bytes."""
        cdef Py_buffer view
        if self._finished:
            raise ValueError(
                f"{type(self).__name__} was already flushed: called after end of input"
            )
        if chunk is None:
            self._finished = True
            return self._flush()
        if type(chunk) is bytes:
            return self._feed(<const unsigned char*>PyBytes_AS_STRING(chunk), PyBytes_GET_SIZE(chunk))
        _get_view(self, chunk, &view)
        try:
            return self._feed(<const unsigned char*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    cdef object _feed(self, const unsigned char* src, Py_ssize_t n):
        raise NotImplementedError

    cdef object _flush(self):
        return EMPTY


# ==========================================================================
# Base64

cdef inline void _b64_group(const unsigned char* s, unsigned char* d) noexcept nogil:
    """3 bytes -> 4 chars: two 12-bit lookups, two 2-byte stores."""
    cdef uint32_t t = (<uint32_t>s[0] << 16) | (<uint32_t>s[1] << 8) | s[2]
    memcpy(d, &_B64_PAIR[t >> 12], 2)
    memcpy(d + 2, &_B64_PAIR[t & 0xFFF], 2)


cdef inline void _b64_pad(const unsigned char* s, Py_ssize_t k, unsigned char* d) noexcept nogil:
    """The last 1 or 2 bytes -> xx== or xxx=."""
    cdef uint32_t t = <uint32_t>s[0] << 16
    if k == 2:
        t |= <uint32_t>s[1] << 8
    d[0] = _B64[t >> 18]
    d[1] = _B64[(t >> 12) & 63]
    d[2] = _B64[(t >> 6) & 63] if k == 2 else EQ
    d[3] = EQ


cdef Py_ssize_t _b64_encode(const unsigned char* src, Py_ssize_t ngroups, unsigned char* dst) noexcept nogil:
    """Kernel of Base64Encoder: ``ngroups`` whole 3-byte groups -> 4 chars each."""
    cdef Py_ssize_t g = 0
    while g + 4 <= ngroups:  # unrolled: 12 bytes in, 48 out
        _b64_group(src, dst)
        _b64_group(src + 3, dst + 4)
        _b64_group(src + 6, dst + 8)
        _b64_group(src + 9, dst + 12)
        src += 12
        dst += 16
        g += 4
    while g < ngroups:
        _b64_group(src, dst)
        src += 3
        dst += 4
        g += 1
    return 4 * ngroups


cdef class Base64Encoder(_Filter):
    """Base64 without line breaks (LuaSocket ``b64``); pads at the end."""

    cdef unsigned char _pend[4]
    cdef Py_ssize_t _plen

    def __init__(self):
        self._plen = 0
        self._finished = False

    @property
    def pending(self):
        """The 0-2 input bytes that do not make a full 3-byte group yet."""
        return PyBytes_FromStringAndSize(<char*>self._pend, self._plen)

    cdef object _feed(self, const unsigned char* src, Py_ssize_t n):
        cdef unsigned char pend[4]
        cdef Py_ssize_t plen = self._plen, start = 0, ngroups, cap, used = 0, rest
        cdef PyObject* raw
        cdef unsigned char* dst
        _check_size(n, 2)
        ngroups = (plen + n) // 3
        if ngroups == 0:
            memcpy(self._pend + plen, src, n)
            self._plen = plen + n
            return EMPTY
        memcpy(pend, self._pend, plen)
        cap = 4 * ngroups
        raw = _out_new(cap)
        dst = <unsigned char*>_bytes_data(raw)
        if plen:  # complete the pending group with the head of the chunk
            start = 3 - plen
            memcpy(pend + plen, src, start)
            _b64_group(pend, dst)
            used = 4
            ngroups -= 1
        if n >= NOGIL_MIN:
            with nogil:
                used += _b64_encode(src + start, ngroups, dst + used)
        else:
            used += _b64_encode(src + start, ngroups, dst + used)
        start += 3 * ngroups
        rest = n - start
        memcpy(self._pend, src + start, rest)
        self._plen = rest
        return _out_finish(raw, cap, used)

    cdef object _flush(self):
        cdef unsigned char out[4]
        cdef Py_ssize_t plen = self._plen
        self._plen = 0
        if plen == 0:
            return EMPTY
        _b64_pad(self._pend, plen, out)
        return PyBytes_FromStringAndSize(<char*>out, 4)


# --------------------------------------------------------------------------

cdef Py_ssize_t _b64_decode(const unsigned char* src, Py_ssize_t n, unsigned char* dst,
                            unsigned char* grp, Py_ssize_t* gsize) noexcept nogil:
    """Kernel of Base64Decoder (LuaSocket ``unb64``).

    Fast path: at a group boundary, 4 alphabet chars (no '=') decode at once.
    Anything else (CR, LF, '=', junk, a group split by junk) goes through the
    per-byte rule: skip invalid bytes, collect 4 valid ones, the 3rd/4th being
    '=' shortens the output. ``grp``/``gsize`` carry the incomplete group.
    """
    cdef Py_ssize_t i = 0, j = 0, g = gsize[0]
    cdef uint32_t x
    cdef unsigned char c
    while i < n:
        if g == 0:
            while i + 4 <= n:
                x = _DEC0[src[i]] | _DEC1[src[i + 1]] | _DEC2[src[i + 2]] | _DEC3[src[i + 3]]
                if x & DEC_BAD:
                    break
                dst[j] = <unsigned char>(x >> 16)
                dst[j + 1] = <unsigned char>(x >> 8)
                dst[j + 2] = <unsigned char>x
                i += 4
                j += 3
            if i >= n:
                break
        c = src[i]
        i += 1
        if _UNB64[c] == 255:
            continue
        grp[g] = c
        g += 1
        if g == 4:
            x = ((<uint32_t>_UNB64[grp[0]] << 18) | (<uint32_t>_UNB64[grp[1]] << 12)
                 | (<uint32_t>_UNB64[grp[2]] << 6) | _UNB64[grp[3]])
            dst[j] = <unsigned char>(x >> 16)
            j += 1
            if grp[2] != EQ:
                dst[j] = <unsigned char>(x >> 8)
                j += 1
                if grp[3] != EQ:
                    dst[j] = <unsigned char>x
                    j += 1
            g = 0
    gsize[0] = g
    return j


cdef class Base64Decoder(_Filter):
    """Base64 decoding as LuaSocket's ``unb64`` does it.

    Bytes outside the alphabet are skipped; ``=`` counts as the digit 0 and only
    shortens a group's output when it is the group's 3rd (1 byte out) or 4th
    (2 bytes out) character; decoding carries on after padding. An incomplete
    final group is dropped.
    """

    cdef unsigned char _grp[4]
    cdef Py_ssize_t _gsize

    def __init__(self):
        self._gsize = 0
        self._finished = False

    @property
    def pending(self):
        """The 0-3 valid characters of the incomplete group."""
        return PyBytes_FromStringAndSize(<char*>self._grp, self._gsize)

    cdef object _feed(self, const unsigned char* src, Py_ssize_t n):
        cdef unsigned char grp[4]
        cdef unsigned char scratch[4]
        cdef Py_ssize_t gsize = self._gsize, cap, used
        cdef PyObject* raw
        memcpy(grp, self._grp, 4)
        cap = (gsize + n) // 4 * 3
        if cap == 0:  # under 4 valid chars in all: only collect them
            _b64_decode(src, n, scratch, grp, &gsize)
            memcpy(self._grp, grp, 4)
            self._gsize = gsize
            return EMPTY
        raw = _out_new(cap)
        if n >= NOGIL_MIN:
            with nogil:
                used = _b64_decode(src, n, <unsigned char*>_bytes_data(raw), grp, &gsize)
        else:
            used = _b64_decode(src, n, <unsigned char*>_bytes_data(raw), grp, &gsize)
        memcpy(self._grp, grp, 4)
        self._gsize = gsize
        return _out_finish(raw, cap, used)

    cdef object _flush(self):
        self._gsize = 0  # an incomplete final group is dropped
        return EMPTY


# --------------------------------------------------------------------------

cdef Py_ssize_t _put_wrapped(const unsigned char* chars, Py_ssize_t k, unsigned char* dst,
                             long long* left, long long length) noexcept nogil:
    """LuaSocket ``wrp`` for bytes known not to be CR or LF, one at a time."""
    cdef Py_ssize_t i, j = 0
    for i in range(k):
        if left[0] <= 0:
            dst[j] = CR
            dst[j + 1] = LF
            j += 2
            left[0] = length
        dst[j] = chars[i]
        j += 1
        left[0] -= 1
    return j


cdef Py_ssize_t _wrap_breaks(long long left, long long length, Py_ssize_t k, long long* new_left) noexcept nogil:
    """How many CRLFs ``wrp`` puts into ``k`` bytes without CR/LF, and ``left`` after."""
    cdef long long free = left if left > 0 else 0
    cdef Py_ssize_t breaks
    if k <= free:
        new_left[0] = left - k
        return 0
    breaks = (k - free - 1) // length + 1
    new_left[0] = length - (k - free - (breaks - 1) * length)
    return breaks


cdef Py_ssize_t _b64_wrap(const unsigned char* src, Py_ssize_t ngroups, unsigned char* dst,
                          long long* left_p, long long length) noexcept nogil:
    """Kernel of Base64WrapEncoder: base64 of whole groups, then ``wrp(length)``.

    Whole groups that fit on the current line are encoded straight into place
    (for length 76: 19 groups, then CRLF); a group that straddles a line end,
    or any group when length < 4, goes through the per-char wrap rule.
    """
    cdef Py_ssize_t g = 0, j = 0, k
    cdef long long left = left_p[0]
    cdef unsigned char four[4]
    while g < ngroups:
        if left <= 0 and length >= 4:
            # wrp puts the break before the next char, and one is coming
            dst[j] = CR
            dst[j + 1] = LF
            j += 2
            left = length
        if left >= 4:
            k = <Py_ssize_t>(left >> 2) if (left >> 2) < ngroups - g else ngroups - g
            _b64_encode(src + 3 * g, k, dst + j)
            g += k
            j += 4 * k
            left -= 4 * k
        else:
            _b64_group(src + 3 * g, four)
            g += 1
            j += _put_wrapped(four, 4, dst + j, &left, length)
    left_p[0] = left
    return j


cdef class Base64WrapEncoder(_Filter):
    """Base64 broken into CRLF lines of ``length`` characters, in one filter.

    Gives exactly the bytes of ``Base64Encoder`` followed by ``LineWrapper``.
    """

    cdef unsigned char _pend[4]
    cdef Py_ssize_t _plen
    cdef long long _left
    cdef long long _length

    def __cinit__(self):
        self._length = 76
        self._left = 76

    def __init__(self, length=76):
        self._length = _check_length(length, 1, "line")
        self._left = self._length
        self._plen = 0
        self._finished = False

    @property
    def pending(self):
        """The 0-2 input bytes that do not make a full 3-byte group yet."""
        return PyBytes_FromStringAndSize(<char*>self._pend, self._plen)

    @property
    def left(self):
        """Columns still free on the current output line."""
        return self._left

    cdef object _feed(self, const unsigned char* src, Py_ssize_t n):
        cdef unsigned char pend[4]
        cdef unsigned char four[4]
        cdef Py_ssize_t plen = self._plen, start = 0, ngroups, cap, used = 0, rest
        cdef long long left = self._left, length = self._length, expect_left
        cdef PyObject* raw
        cdef unsigned char* dst
        _check_size(n, 4)
        ngroups = (plen + n) // 3
        if ngroups == 0:
            memcpy(self._pend + plen, src, n)
            self._plen = plen + n
            return EMPTY
        memcpy(pend, self._pend, plen)
        # base64 never makes CR or LF, so the output size is exact
        cap = 4 * ngroups + 2 * _wrap_breaks(left, length, 4 * ngroups, &expect_left)
        raw = _out_new(cap)
        dst = <unsigned char*>_bytes_data(raw)
        if plen:
            start = 3 - plen
            memcpy(pend + plen, src, start)
            _b64_group(pend, four)
            used = _put_wrapped(four, 4, dst, &left, length)
            ngroups -= 1
        if n >= NOGIL_MIN:
            with nogil:
                used += _b64_wrap(src + start, ngroups, dst + used, &left, length)
        else:
            used += _b64_wrap(src + start, ngroups, dst + used, &left, length)
        start += 3 * ngroups
        rest = n - start
        memcpy(self._pend, src + start, rest)
        self._plen = rest
        self._left = left
        return _out_finish(raw, cap, used)

    cdef object _flush(self):
        cdef unsigned char four[4]
        cdef unsigned char out[16]
        cdef Py_ssize_t j = 0
        cdef long long left = self._left
        if self._plen:
            _b64_pad(self._pend, self._plen, four)
            j = _put_wrapped(four, 4, out, &left, self._length)
        if left < self._length:
            out[j] = CR
            out[j + 1] = LF
            j += 2
        self._plen = 0
        self._left = self._length
        return PyBytes_FromStringAndSize(<char*>out, j) if j else EMPTY


# ==========================================================================
# Quoted-printable: the two coders keep LuaSocket's unconsumed window

ctypedef Py_ssize_t (*_window_kernel)(const unsigned char* src, Py_ssize_t n, unsigned char* dst,
                                      Py_ssize_t* used, const unsigned char* marker,
                                      Py_ssize_t mlen) noexcept nogil


cdef Py_ssize_t _window_run(_window_kernel kernel, unsigned char* pend, Py_ssize_t* plen,
                            const unsigned char* src, Py_ssize_t n, unsigned char* dst,
                            const unsigned char* marker, Py_ssize_t mlen) noexcept nogil:
    """Run a window kernel over ``pend + src`` as if it were one array.

    A window kernel resolves every byte that has at least two bytes after it,
    and returns how many bytes it consumed; what it leaves (0-2 bytes) is the
    window. So the 0-2 pending bytes plus the chunk's first two bytes are
    enough to resolve the whole old window: run them in a scratch array, then
    the rest of the chunk in place. Returns the bytes written.
    """
    cdef unsigned char head[4]
    cdef Py_ssize_t p = plen[0], k, done, used = 0, more = 0, start = 0
    if p:
        k = n if n < 2 else 2
        memcpy(head, pend, p)
        memcpy(head + p, src, k)
        done = kernel(head, p + k, dst, &used, marker, mlen)
        if k == n:  # the whole chunk was in the scratch array
            memmove(pend, head + done, p + k - done)
            plen[0] = p + k - done
            return used
        start = done - p  # >= 0: the old window had two bytes of look-ahead
    done = kernel(src + start, n - start, dst + used, &more, marker, mlen)
    memcpy(pend, src + start + done, n - start - done)
    plen[0] = n - start - done
    return used + more


cdef Py_ssize_t _qp_encode(const unsigned char* src, Py_ssize_t n, unsigned char* dst,
                           Py_ssize_t* used, const unsigned char* marker, Py_ssize_t mlen) noexcept nogil:
    """Kernel of QPEncoder (LuaSocket ``qp``); returns the bytes consumed.

    SP and TAB are copied as they come; at a CRLF, if the byte just before it
    was SP/TAB (copied a moment ago), that copy is replaced by =20/=09. This
    is LuaSocket's "only the last white space before CRLF" rule without
    looking ahead at every space. Stops (leaving the window) at a CR in the
    last byte or a SP/TAB in the last two.
    """
    cdef Py_ssize_t i = 0, j = 0, k
    cdef Py_ssize_t safe_end = n - 2  # bytes before this have their look-ahead
    cdef uint64_t w, m
    cdef unsigned char c, kind
    while i < n:
        # runs of 32..126 but '=' (SP included): copied 8 at a time
        while i + 8 <= safe_end:
            w = _load8(src + i)
            _store8(dst + j, w)
            m = _qp_special_bytes(w)
            if m:
                k = SS_FIRST_FLAGGED(m)
                i += k
                j += k
                break
            i += 8
            j += 8
        c = src[i]
        kind = _QP_CLASS[c]
        if kind == QP_PLAIN:
            dst[j] = c
            j += 1
            i += 1
        elif kind == QP_QUOTED:
            _put_hex(dst + j, c)
            j += 3
            i += 1
        elif kind == QP_CR:
            if i + 1 >= n:
                break
            if src[i + 1] == LF:
                if i > 0 and (src[i - 1] == SP or src[i - 1] == TAB):
                    j -= 1
                    _put_hex(dst + j, src[i - 1])
                    j += 3
                _put_marker(dst + j, marker, mlen)
                j += mlen
                i += 2
            else:
                _put_hex(dst + j, CR)
                j += 3
                i += 1
        else:  # SP, TAB
            if i + 2 >= n:
                break
            dst[j] = c
            j += 1
            i += 1
    used[0] = j
    return i


cdef class QPEncoder(_Filter):
    """Quoted-printable encoding as LuaSocket's ``qp``.

    CRLF becomes ``marker`` (CRLF in text mode, ``=0D=0A`` in binary mode); the
    last SPACE or TAB before a CRLF is quoted; lone CR and LF are quoted. No
    line length limit: that is :class:`QPWrapper`'s job.
    """

    cdef unsigned char _pend[4]
    cdef Py_ssize_t _plen
    cdef bytes _marker

    def __cinit__(self):
        self._marker = CRLF_BYTES

    def __init__(self, marker=b"\r\n"):
        self._marker = _check_marker(marker)
        self._plen = 0
        self._finished = False

    @property
    def pending(self):
        """The unresolved tail: a CR, a SPACE/TAB, or a SPACE/TAB and one more byte."""
        return PyBytes_FromStringAndSize(<char*>self._pend, self._plen)

    cdef object _feed(self, const unsigned char* src, Py_ssize_t n):
        cdef unsigned char pend[4]
        cdef Py_ssize_t plen = self._plen, total, cap, used
        cdef bytes marker = self._marker  # a local reference keeps it alive without the GIL
        cdef const unsigned char* mk = <const unsigned char*>PyBytes_AS_STRING(marker)
        cdef Py_ssize_t mlen = PyBytes_GET_SIZE(marker)
        cdef PyObject* raw
        if n == 0:
            return EMPTY
        _check_size(n, 3 + mlen)
        memcpy(pend, self._pend, plen)
        total = plen + n
        # =XX per byte, plus a marker per CRLF (at most one per two bytes)
        cap = 3 * total + mlen * (total // 2) + 8
        raw = _out_new(cap)
        if n >= NOGIL_MIN:
            with nogil:
                used = _window_run(_qp_encode, pend, &plen, src, n, <unsigned char*>_bytes_data(raw), mk, mlen)
        else:
            used = _window_run(_qp_encode, pend, &plen, src, n, <unsigned char*>_bytes_data(raw), mk, mlen)
        memcpy(self._pend, pend, plen)
        self._plen = plen
        return _out_finish(raw, cap, used)

    cdef object _flush(self):
        # LuaSocket's qppad: plain bytes as they are, all others (SP, TAB, CR
        # too) as =XX, then a soft break if anything was left.
        cdef unsigned char out[16]
        cdef Py_ssize_t i, j = 0, plen = self._plen
        cdef unsigned char c
        self._plen = 0
        if plen == 0:
            return EMPTY
        for i in range(plen):
            c = self._pend[i]
            if _QP_CLASS[c] == QP_PLAIN:
                out[j] = c
                j += 1
            else:
                _put_hex(out + j, c)
                j += 3
        out[j] = EQ
        out[j + 1] = CR
        out[j + 2] = LF
        return PyBytes_FromStringAndSize(<char*>out, j + 3)


# --------------------------------------------------------------------------

cdef Py_ssize_t _qp_decode(const unsigned char* src, Py_ssize_t n, unsigned char* dst,
                           Py_ssize_t* used, const unsigned char* marker, Py_ssize_t mlen) noexcept nogil:
    """Kernel of QPDecoder (LuaSocket ``unqp``); returns the bytes consumed.

    ``=`` waits for two more bytes (soft break, hex escape, or copied as is),
    CR for one (CRLF kept, else both dropped); TAB and 32-126 are kept, the
    rest dropped. ``marker`` is unused (the kernel type is shared).
    """
    cdef Py_ssize_t i = 0, j = 0, k
    cdef uint64_t w, m
    cdef unsigned char c, hi, lo
    while i < n:
        while i + 8 <= n:
            w = _load8(src + i)
            _store8(dst + j, w)
            m = _qp_special_bytes(w)
            if m:
                k = SS_FIRST_FLAGGED(m)
                i += k
                j += k
                break
            i += 8
            j += 8
        if i >= n:
            break
        c = src[i]
        if c == EQ:
            if i + 2 >= n:
                break
            if src[i + 1] == CR and src[i + 2] == LF:
                pass  # soft line break
            else:
                hi = _HEX_VALUE[src[i + 1]]
                lo = _HEX_VALUE[src[i + 2]]
                if hi < 16 and lo < 16:
                    dst[j] = (hi << 4) | lo
                    j += 1
                else:  # not an escape: the three bytes verbatim
                    dst[j] = EQ
                    dst[j + 1] = src[i + 1]
                    dst[j + 2] = src[i + 2]
                    j += 3
            i += 3
        elif c == CR:
            if i + 1 >= n:
                break
            if src[i + 1] == LF:
                dst[j] = CR
                dst[j + 1] = LF
                j += 2
            i += 2  # CR + anything else: both dropped
        else:
            if c == TAB or (c >= 32 and c <= 126):
                dst[j] = c
                j += 1
            i += 1
    used[0] = j
    return i


cdef class QPDecoder(_Filter):
    """Quoted-printable decoding as LuaSocket's ``unqp``.

    Soft breaks ``=CRLF`` vanish, ``=XX`` (either case) decodes, any other
    ``=`` sequence is copied as its three bytes; CRLF is kept, a lone CR is
    dropped with the byte after it, and bytes other than TAB and 32-126 are
    dropped. An unfinished escape at the very end is dropped.
    """

    cdef unsigned char _pend[4]
    cdef Py_ssize_t _plen

    def __init__(self):
        self._plen = 0
        self._finished = False

    @property
    def pending(self):
        """The unfinished tail: ``=``, ``=X`` or CR."""
        return PyBytes_FromStringAndSize(<char*>self._pend, self._plen)

    cdef object _feed(self, const unsigned char* src, Py_ssize_t n):
        cdef unsigned char pend[4]
        cdef Py_ssize_t plen = self._plen, cap, used
        cdef PyObject* raw
        if n == 0:
            return EMPTY
        _check_size(n, 1)
        memcpy(pend, self._pend, plen)
        cap = plen + n  # no input byte gives more than one output byte
        raw = _out_new(cap)
        if n >= NOGIL_MIN:
            with nogil:
                used = _window_run(_qp_decode, pend, &plen, src, n, <unsigned char*>_bytes_data(raw), NULL, 0)
        else:
            used = _window_run(_qp_decode, pend, &plen, src, n, <unsigned char*>_bytes_data(raw), NULL, 0)
        memcpy(self._pend, pend, plen)
        self._plen = plen
        return _out_finish(raw, cap, used)

    cdef object _flush(self):
        self._plen = 0  # an unfinished =, =X or CR is dropped
        return EMPTY


# ==========================================================================
# Line wrapping

cdef inline Py_ssize_t _wrap(const unsigned char* src, Py_ssize_t n, unsigned char* dst,
                             long long* left_p, long long length, bint qp) noexcept nogil:
    """Kernel of LineWrapper (LuaSocket ``wrp``) and, with ``qp``, QPWrapper (``qpwrp``).

    CR dropped, LF -> CRLF. Text: a CRLF comes before a byte when the line is
    full (``left <= 0``). QP: a soft break ``=CRLF`` comes before ``=`` when 3
    or fewer columns are free and before other bytes when 1 or fewer are.
    While a run of 8 bytes cannot need a break (8 columns free for text, 11
    for QP), 8 bytes without CR/LF go at once. Callers pass a constant ``qp``,
    so the compiler makes two specialised loops.
    """
    cdef Py_ssize_t i = 0, j = 0, k
    cdef long long left = left_p[0]
    cdef long long fast = 11 if qp else 8
    cdef uint64_t w, m
    cdef unsigned char c
    cdef bint brk
    while i < n:
        while left >= fast and i + 8 <= n:
            w = _load8(src + i)
            _store8(dst + j, w)
            m = _crlf_bytes(w)
            if m:
                k = SS_FIRST_FLAGGED(m)
                i += k
                j += k
                left -= k
                break
            i += 8
            j += 8
            left -= 8
        if i >= n:
            break
        c = src[i]
        i += 1
        if c == CR:
            continue
        if c == LF:
            dst[j] = CR
            dst[j + 1] = LF
            j += 2
            left = length
            continue
        if qp:
            brk = left <= (3 if c == EQ else 1)
        else:
            brk = left <= 0
        if brk:
            if qp:
                dst[j] = EQ
                j += 1
            dst[j] = CR
            dst[j + 1] = LF
            j += 2
            left = length
        dst[j] = c
        j += 1
        left -= 1
    left_p[0] = left
    return j


cdef class _Wrapper(_Filter):
    """What LineWrapper and QPWrapper share: ``length``, ``left`` and the flush."""

    cdef long long _length
    cdef long long _left
    cdef object _left_given  # an out-of-range int as given, until a byte moves `left`
    cdef object _length_given

    def __cinit__(self):
        self._length = 76
        self._left = 76

    cdef _setup(self, object length, object left, long long minimum, str what):
        self._length = _check_length(length, minimum, what)
        self._length_given = length if self._length != length else None
        if left is None:
            self._left = self._length
            self._left_given = self._length_given
        else:
            _check_int(left, "left")
            self._left = _clamp(left)
            self._left_given = left if self._left != left else None
        self._finished = False

    @property
    def length(self):
        return self._length if self._length_given is None else self._length_given

    @property
    def left(self):
        """Columns still free on the current output line."""
        return self._left if self._left_given is None else self._left_given

    cdef Py_ssize_t _cap(self, Py_ssize_t n):
        return 0

    cdef Py_ssize_t _run(self, const unsigned char* src, Py_ssize_t n, unsigned char* dst,
                         long long* left, long long length) noexcept nogil:
        return 0

    cdef object _feed(self, const unsigned char* src, Py_ssize_t n):
        cdef long long left = self._left, length = self._length
        cdef Py_ssize_t cap, used
        cdef PyObject* raw
        if n == 0:
            return EMPTY
        _check_size(n, 5)
        cap = self._cap(n)
        raw = _out_new(cap)
        if n >= NOGIL_MIN:
            with nogil:
                used = self._run(src, n, <unsigned char*>_bytes_data(raw), &left, length)
        else:
            used = self._run(src, n, <unsigned char*>_bytes_data(raw), &left, length)
        self._left = left
        if used:  # only a byte other than CR moves `left`, and it always writes
            self._left_given = None
        return _out_finish(raw, cap, used)


cdef class LineWrapper(_Wrapper):
    """Break lines at ``length`` bytes with CRLF (LuaSocket ``wrp``).

    Every CR is dropped, every LF becomes CRLF. Meant for base64 text: breaks
    fall at byte positions, never at spaces.
    """

    def __init__(self, length=76, left=None):
        self._setup(length, left, 1, "line")

    cdef Py_ssize_t _cap(self, Py_ssize_t n):
        # LF -> 2 bytes; other bytes 1, plus a CRLF at most once per `length`
        # of them (and once at the start when the line is already full)
        return 2 * n + 2 * <Py_ssize_t>(n // self._length) + 2

    cdef Py_ssize_t _run(self, const unsigned char* src, Py_ssize_t n, unsigned char* dst,
                         long long* left, long long length) noexcept nogil:
        return _wrap(src, n, dst, left, length, False)

    cdef object _flush(self):
        cdef bint pending = self._left < self._length
        self._left = self._length
        self._left_given = self._length_given
        return CRLF_BYTES if pending else EMPTY


cdef class QPWrapper(_Wrapper):
    """Insert soft line breaks ``=CRLF`` into quoted-printable text (``qpwrp``).

    Lines hold at most ``length - 1`` characters plus the ``=``; an ``=XX``
    escape is never split. CR is dropped and LF is a hard break (CRLF).
    """

    def __init__(self, length=76, left=None):
        self._setup(length, left, 4, "quoted-printable line")

    cdef Py_ssize_t _cap(self, Py_ssize_t n):
        # LF -> 2 bytes; other bytes 1, plus a soft break at most once per
        # `length - 3` of them (and once at the start)
        return 2 * n + 3 * <Py_ssize_t>(n // (self._length - 3)) + 3

    cdef Py_ssize_t _run(self, const unsigned char* src, Py_ssize_t n, unsigned char* dst,
                         long long* left, long long length) noexcept nogil:
        return _wrap(src, n, dst, left, length, True)

    cdef object _flush(self):
        cdef bint pending = self._left < self._length
        self._left = self._length
        self._left_given = self._length_given
        return b"=\r\n" if pending else EMPTY


# ==========================================================================
# End-of-line normalisation and dot-stuffing

cdef Py_ssize_t _eol(const unsigned char* src, Py_ssize_t n, unsigned char* dst, int* state,
                     const unsigned char* marker, Py_ssize_t mlen) noexcept nogil:
    """Kernel of EOLNormalizer (LuaSocket ``eol``).

    ``state`` is the CR or LF whose pair is still open (its marker is already
    out): the same byte again is a new break, the other one closes the pair.
    Between breaks, 8 bytes without CR/LF are copied at once.
    """
    cdef Py_ssize_t i = 0, j = 0, k
    cdef int st = state[0]
    cdef uint64_t w, m
    cdef unsigned char c
    while i < n:
        if st == 0:
            while i + 8 <= n:
                w = _load8(src + i)
                _store8(dst + j, w)
                m = _crlf_bytes(w)
                if m:
                    k = SS_FIRST_FLAGGED(m)
                    i += k
                    j += k
                    break
                i += 8
                j += 8
            if i >= n:
                break
        c = src[i]
        i += 1
        if c == CR or c == LF:
            if st:
                if c == st:
                    _put_marker(dst + j, marker, mlen)
                    j += mlen
                st = 0
            else:
                _put_marker(dst + j, marker, mlen)
                j += mlen
                st = c
        else:
            dst[j] = c
            j += 1
            st = 0
    state[0] = st
    return j


cdef class EOLNormalizer(_Filter):
    """Turn every CR, LF, CRLF and LFCR into ``marker`` (LuaSocket ``eol``)."""

    cdef bytes _marker
    cdef int _state
    cdef object _state_given  # a non-canonical state as given, until a byte is processed

    def __cinit__(self):
        self._marker = CRLF_BYTES

    def __init__(self, marker=b"\r\n", state=0):
        self._marker = _check_marker(marker)
        _check_int(state, "state")
        # values other than CR and LF act as 0 (kept as given until a byte comes)
        self._state = state if state == CR or state == LF else 0
        self._state_given = state if self._state != state else None
        self._finished = False

    @property
    def state(self):
        """The CR or LF (13 or 10) whose pair is still open, or 0."""
        return self._state if self._state_given is None else self._state_given

    @property
    def marker(self):
        """What every line break becomes (a copy of the marker given)."""
        return self._marker

    cdef object _feed(self, const unsigned char* src, Py_ssize_t n):
        cdef int state = self._state
        cdef bytes marker = self._marker
        cdef const unsigned char* mk = <const unsigned char*>PyBytes_AS_STRING(marker)
        cdef Py_ssize_t mlen = PyBytes_GET_SIZE(marker), cap, used
        cdef PyObject* raw
        if n == 0:
            return EMPTY
        self._state_given = None
        _check_size(n, mlen + 1)
        cap = n * (mlen if mlen > 1 else 1) + 8
        raw = _out_new(cap)
        if n >= NOGIL_MIN:
            with nogil:
                used = _eol(src, n, <unsigned char*>_bytes_data(raw), &state, mk, mlen)
        else:
            used = _eol(src, n, <unsigned char*>_bytes_data(raw), &state, mk, mlen)
        self._state = state
        return _out_finish(raw, cap, used)


# --------------------------------------------------------------------------

cdef enum:
    DOT_MID = 0       # inside a line
    DOT_SAW_CR = 1    # just after CR
    DOT_BOL = 2       # just after CRLF: a '.' here is doubled


cdef Py_ssize_t _dot(const unsigned char* src, Py_ssize_t n, unsigned char* dst, int* state) noexcept nogil:
    """Kernel of DotStuffer (LuaSocket ``dot``).

    Inside a line only a CR can change the state, so runs without CR are
    copied 8 bytes at a time; the bytes right after a CR go one by one.
    """
    cdef Py_ssize_t i = 0, j = 0, k
    cdef int st = state[0]
    cdef uint64_t w, m
    cdef unsigned char c
    while i < n:
        if st == DOT_MID:
            while i + 8 <= n:
                w = _load8(src + i)
                _store8(dst + j, w)
                m = _zero_bytes(w ^ (SS_ONES * CR))
                if m:
                    k = SS_FIRST_FLAGGED(m)
                    i += k
                    j += k
                    break
                i += 8
                j += 8
            if i >= n:
                break
        c = src[i]
        i += 1
        dst[j] = c
        j += 1
        if c == CR:
            st = DOT_SAW_CR
        elif c == LF:
            st = DOT_BOL if st == DOT_SAW_CR else DOT_MID
        elif c == DOT and st == DOT_BOL:
            dst[j] = DOT
            j += 1
            st = DOT_MID
        else:
            st = DOT_MID
    state[0] = st
    return j


cdef class DotStuffer(_Filter):
    """SMTP dot-stuffing (LuaSocket ``dot``): a ``.`` right after CRLF is doubled.

    ``state`` 2 means "at the start of a line", so a leading ``.`` is doubled
    too; that is where an SMTP body starts.
    """

    cdef int _state
    cdef object _state_given

    def __cinit__(self):
        self._state = DOT_BOL

    def __init__(self, state=2):
        _check_int(state, "state")
        # values other than 1 and 2 act as 0 (kept as given until a byte comes)
        self._state = state if state == DOT_SAW_CR or state == DOT_BOL else DOT_MID
        self._state_given = state if self._state != state else None
        self._finished = False

    @property
    def state(self):
        """0 mid-line, 1 after CR, 2 after CRLF."""
        return self._state if self._state_given is None else self._state_given

    cdef object _feed(self, const unsigned char* src, Py_ssize_t n):
        cdef int state = self._state
        cdef Py_ssize_t cap, used
        cdef PyObject* raw
        if n == 0:
            return EMPTY
        self._state_given = None
        _check_size(n, 2)
        cap = 2 * n  # at most every byte a stuffed '.'
        raw = _out_new(cap)
        if n >= NOGIL_MIN:
            with nogil:
                used = _dot(src, n, <unsigned char*>_bytes_data(raw), &state)
        else:
            used = _dot(src, n, <unsigned char*>_bytes_data(raw), &state)
        self._state = state
        return _out_finish(raw, cap, used)


# --------------------------------------------------------------------------

cdef Py_ssize_t _eol_dot(const unsigned char* src, Py_ssize_t n, unsigned char* dst,
                         int* eol_state, int* dot_state) noexcept nogil:
    """Kernel of NormalizeStuffer: ``eol`` with CRLF, then ``dot`` from state 2.

    With CRLF as the only line break in the middle, the stuffer's state is
    just "was the last output a CRLF marker" (2) or not (0), and a '.'
    matters only right after one. So: runs without CR/LF are copied 8 bytes
    at a time, and the breaks and the byte after them go one by one.
    """
    cdef Py_ssize_t i = 0, j = 0, k
    cdef int eol = eol_state[0], dot = dot_state[0]
    cdef uint64_t w, m
    cdef unsigned char c
    while i < n:
        if dot == DOT_MID:  # (an open CR/LF always has dot == DOT_BOL)
            while i + 8 <= n:
                w = _load8(src + i)
                _store8(dst + j, w)
                m = _crlf_bytes(w)
                if m:
                    k = SS_FIRST_FLAGGED(m)
                    i += k
                    j += k
                    break
                i += 8
                j += 8
            if i >= n:
                break
        c = src[i]
        i += 1
        if c == CR or c == LF:
            if eol:
                if c == eol:  # CR CR or LF LF: a second break
                    dst[j] = CR
                    dst[j + 1] = LF
                    j += 2
                eol = 0       # (CR LF or LF CR closes the pair: nothing more)
            else:
                dst[j] = CR
                dst[j + 1] = LF
                j += 2
                eol = c
            dot = DOT_BOL
        else:
            dst[j] = c
            j += 1
            if c == DOT and dot == DOT_BOL:
                dst[j] = DOT
                j += 1
            eol = 0
            dot = DOT_MID
    eol_state[0] = eol
    dot_state[0] = dot
    return j


cdef class NormalizeStuffer(_Filter):
    """Line breaks to CRLF and SMTP dot-stuffing, in one filter.

    Gives exactly the bytes of ``EOLNormalizer()`` followed by ``DotStuffer()``.
    """

    cdef int _eol
    cdef int _dot

    def __cinit__(self):
        self._dot = DOT_BOL

    def __init__(self):
        self._eol = 0
        self._dot = DOT_BOL
        self._finished = False

    @property
    def state(self):
        """The stuffer's state: 2 when the output so far ends with CRLF, else 0."""
        return self._dot

    @property
    def eol_state(self):
        """The normaliser's open CR or LF (13 or 10), or 0."""
        return self._eol

    cdef object _feed(self, const unsigned char* src, Py_ssize_t n):
        cdef int eol = self._eol, dot = self._dot
        cdef Py_ssize_t cap, used
        cdef PyObject* raw
        if n == 0:
            return EMPTY
        _check_size(n, 2)
        cap = 2 * n  # LF -> CRLF, '.' -> '..', CR CR -> 2 CRLF: never more than double
        raw = _out_new(cap)
        if n >= NOGIL_MIN:
            with nogil:
                used = _eol_dot(src, n, <unsigned char*>_bytes_data(raw), &eol, &dot)
        else:
            used = _eol_dot(src, n, <unsigned char*>_bytes_data(raw), &eol, &dot)
        self._eol = eol
        self._dot = dot
        return _out_finish(raw, cap, used)


# ==========================================================================
# DKIM body canonicalisation (RFC 6376 3.4.3, 3.4.4)

cdef inline uint64_t _canon_bytes(uint64_t w, bint relaxed) noexcept nogil:
    """Flags the bytes that can change the canonicaliser's state: CR, and SP/TAB when relaxed."""
    cdef uint64_t m = _zero_bytes(w ^ (SS_ONES * CR))
    if relaxed:
        m |= _zero_bytes(w ^ (SS_ONES * SP)) | _zero_bytes(w ^ (SS_ONES * TAB))
    return m


cdef inline Py_ssize_t _canon_put(unsigned char* dst, Py_ssize_t j, unsigned char c,
                                  Py_ssize_t* held, bint* wsp) noexcept nogil:
    """Write a content byte: first the held line breaks, then the open white space as one SP."""
    cdef Py_ssize_t k
    for k in range(held[0]):
        dst[j] = CR
        dst[j + 1] = LF
        j += 2
    held[0] = 0
    if wsp[0]:
        dst[j] = SP
        j += 1
        wsp[0] = False
    dst[j] = c
    return j + 1


cdef Py_ssize_t _canon(const unsigned char* src, Py_ssize_t n, unsigned char* dst, bint relaxed,
                       Py_ssize_t* held, bint* wsp, bint* cr, bint* any) noexcept nogil:
    """Kernel of BodyCanonicalizer.

    With nothing held back (no line break, white space or CR) a run of
    ordinary bytes is copied 8 at a time; CR, and SP/TAB when relaxed, go
    one by one.
    """
    cdef Py_ssize_t i = 0, j = 0, k, start
    cdef uint64_t w, m
    cdef unsigned char c
    while i < n:
        if held[0] == 0 and not wsp[0] and not cr[0]:
            start = i
            while i + 8 <= n:
                w = _load8(src + i)
                _store8(dst + j, w)
                m = _canon_bytes(w, relaxed)
                if m:
                    k = SS_FIRST_FLAGGED(m)
                    i += k
                    j += k
                    break
                i += 8
                j += 8
            if i > start:
                any[0] = True
            if i >= n:
                break
        c = src[i]
        i += 1
        if cr[0]:
            cr[0] = False
            if c == LF:  # a line break: white space before it is dropped
                wsp[0] = False
                held[0] += 1
                continue
            j = _canon_put(dst, j, CR, held, wsp)  # a bare CR is content
            any[0] = True
        if c == CR:
            cr[0] = True
        elif relaxed and (c == SP or c == TAB):
            wsp[0] = True
        else:
            j = _canon_put(dst, j, c, held, wsp)
            any[0] = True
    return j


cdef class BodyCanonicalizer(_Filter):
    """A message body in DKIM canonical form, ready for the body hash.

    Only CRLF is a line break (normalise first). Empty lines at the end are
    dropped: line breaks are held back (``held``) until a line with content
    follows, and the end gives one CRLF. "relaxed" also drops white space at
    the end of lines and turns every run of SP/TAB into one SP. The end of
    input ends the last line as SMTP would: an empty body is ``b""`` in
    relaxed mode and ``b"\\r\\n"`` in simple mode.
    """

    cdef bint _relaxed
    cdef Py_ssize_t _held
    cdef bint _wsp
    cdef bint _cr
    cdef bint _any

    def __init__(self, mode="relaxed"):
        if mode == "relaxed":
            self._relaxed = True
        elif mode == "simple":
            self._relaxed = False
        else:
            raise ValueError(f'canonicalization mode must be "relaxed" or "simple", got {mode!r}')
        self._held = 0
        self._wsp = self._cr = self._any = False
        self._finished = False

    @property
    def mode(self):
        return "relaxed" if self._relaxed else "simple"

    @property
    def held(self):
        """The line breaks held back until content follows them."""
        return self._held

    cdef object _feed(self, const unsigned char* src, Py_ssize_t n):
        cdef Py_ssize_t held = self._held, cap, used
        cdef bint wsp = self._wsp, cr = self._cr, any = self._any
        cdef PyObject* raw
        if n == 0:
            return EMPTY
        _check_size(n, 2)
        _check_size(held, 2)
        # Every byte gives at most itself plus the SP or CR held before it;
        # the held line breaks come out once.
        cap = 2 * n + 2 * held + 16
        raw = _out_new(cap)
        if n >= NOGIL_MIN:
            with nogil:
                used = _canon(src, n, <unsigned char*>_bytes_data(raw), self._relaxed, &held, &wsp, &cr, &any)
        else:
            used = _canon(src, n, <unsigned char*>_bytes_data(raw), self._relaxed, &held, &wsp, &cr, &any)
        self._held = held
        self._wsp = wsp
        self._cr = cr
        self._any = any
        return _out_finish(raw, cap, used)

    cdef object _flush(self):
        cdef bytes out = EMPTY
        if self._cr:  # a CR that no LF followed is content
            out = CRLF_BYTES * self._held + (b" \r" if self._wsp else b"\r")
            self._held = 0
            self._any = True
        if self._any or not self._relaxed:
            out += CRLF_BYTES
        return out


cdef enum:
    PLUS = 43  # '+': the lowest byte of the base64 alphabet; CR, LF, SP and TAB are all below it


cdef bint _dkim_canonical(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    # A word's bytes below '+' are flagged at once ((w - k) & ~w: exact for the
    # first one); each must be the CR of a CRLF pair. Base64 lines cost one
    # flagged byte a line, about two words' work per 8 bytes.
    cdef Py_ssize_t i = 0
    cdef uint64_t w, m
    while True:
        while i + 8 <= n:
            w = _load8(p + i)
            m = (w - SS_ONES * PLUS) & ~w & SS_HIGHS
            if m:
                i += SS_FIRST_FLAGGED(m)
                break
            i += 8
        else:
            while i < n and p[i] >= PLUS:
                i += 1
            if i >= n:
                return True
        if p[i] >= PLUS:  # a flag past a borrow (possible on big-endian): not a low byte
            i += 1
        elif p[i] == CR and i + 1 < n and p[i + 1] == LF:
            i += 2
        else:
            return False


def dkim_canonical(data):
    """True when ``data`` (bytes) is in DKIM canonical form already, for the relaxed
    and the simple body canonicalisation alike, but for line breaks at its ends:
    every byte below ``+`` in it (CR, LF, SP and TAB among them) is the CR or LF
    of a CRLF pair. Base64 lines are; the body hash takes them as they are."""
    if not isinstance(data, bytes):
        raise TypeError(f"dkim_canonical needs bytes, got {type(data).__name__}")
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef bint ok
    if n < NOGIL_MIN:
        return _dkim_canonical(p, n)
    with nogil:
        ok = _dkim_canonical(p, n)
    return ok


# ---------------------------------------------------------------- crlf_lines_only

cdef bint _crlf_lines_only(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    # memchr (vectorised by libc) from break to break: a base64 line is 78
    # bytes, so this runs at memory speed where counting would visit each byte.
    cdef const unsigned char* end = p + n
    cdef const unsigned char* cr
    cdef const unsigned char* lf
    if n == 0:
        return True
    if memchr(p, 46, <size_t>n) != NULL:  # "."
        return False
    while p < end:
        cr = <const unsigned char*>memchr(p, 13, <size_t>(end - p))
        if cr == NULL:
            return memchr(p, 10, <size_t>(end - p)) == NULL
        if cr + 1 == end or cr[1] != 10 or memchr(p, 10, <size_t>(cr - p)) != NULL:
            return False
        p = cr + 2
    return True


ctypedef bint (*_BytesCheck)(const unsigned char*, Py_ssize_t) noexcept nogil


cdef int _check_bytes(data, _BytesCheck check, str name) except -1:
    """``check`` over the bytes of ``data``, without the GIL: 1 or 0 (-1: not bytes)."""
    if not isinstance(data, bytes):
        raise TypeError(f"{name} needs bytes, got {type(data).__name__}")
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef bint ok
    with nogil:
        ok = check(p, n)
    return ok


def crlf_lines_only(data):
    """True when ``data`` (bytes) has no ``.`` and every CR and LF in it is a CRLF pair."""
    return _check_bytes(data, _crlf_lines_only, "crlf_lines_only") == 1


# ---------------------------------------------------------------- stuffed_lines_only

cdef bint _stuffed_lines_only(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    # Line by line with memchr: no line starts with ".", its one CR is the CRLF ending it.
    cdef const unsigned char* end = p + n
    cdef const unsigned char* cr
    while p < end:
        if p[0] == 46:  # "."
            return False
        cr = <const unsigned char*>memchr(p, 13, <size_t>(end - p))
        if cr == NULL or cr + 1 == end or cr[1] != 10 or memchr(p, 10, <size_t>(cr - p)) != NULL:
            return False
        p = cr + 2
    return True


def stuffed_lines_only(data):
    """True when ``data`` (bytes) is whole CRLF lines, no other CR or LF, none starting with ``.``."""
    return _check_bytes(data, _stuffed_lines_only, "stuffed_lines_only") == 1
