"""An ADBC stream handed to DuckDB that keeps the driver's error when it fails.

DuckDB scans an ADBC stream (Arrow's C stream interface) directly. When the stream fails
mid-read (the server terminated the backend, the connection dropped), DuckDB raises its own
``InvalidInputException`` with the driver's message text only, and releases the stream, so
the ADBC error (its status and SQLSTATE) is gone by the time Python sees the failure.
``KeptErrorStream`` stands in front of the ADBC stream: DuckDB reads the same batches through
it, and when a read fails it asks ADBC for the error (``AdbcErrorFromArrayStream``) while the
stream is still alive, and keeps it as the ``adbc_driver_manager.Error`` ADBC would have raised.

Costs one call through ctypes per batch (a batch is thousands of rows); no pyarrow.
"""

import ctypes
import functools
import threading

from etl_platform.connectors.arrow_capsule import _capsule_pointer


class _Stream(ctypes.Structure):
    pass


_GET_SCHEMA = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(_Stream), ctypes.c_void_p)
_GET_NEXT = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(_Stream), ctypes.c_void_p)
_GET_LAST_ERROR = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.POINTER(_Stream))  # a char*, left as an address
_RELEASE = ctypes.CFUNCTYPE(None, ctypes.POINTER(_Stream))
_Stream._fields_ = [
    ("get_schema", _GET_SCHEMA),
    ("get_next", _GET_NEXT),
    ("get_last_error", _GET_LAST_ERROR),
    ("release", ctypes.c_void_p),
    ("private_data", ctypes.c_void_p),
]


class _AdbcError(ctypes.Structure):
    _fields_ = [
        ("message", ctypes.c_char_p),
        ("vendor_code", ctypes.c_int32),
        ("sqlstate", ctypes.c_char * 5),
        ("release", ctypes.c_void_p),
        ("private_data", ctypes.c_void_p),
        ("private_driver", ctypes.c_void_p),
    ]


_STREAM_CAPSULE = b"arrow_array_stream"
_new_capsule = ctypes.pythonapi.PyCapsule_New
_new_capsule.restype = ctypes.py_object
_new_capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]

# Streams DuckDB still holds when their reader was closed: their callbacks must outlive them.
_held: set["KeptErrorStream"] = set()
_held_lock = threading.Lock()


@functools.cache
def _error_from_stream():
    """ADBC's ``AdbcErrorFromArrayStream``, from the driver manager Python has loaded already."""
    import adbc_driver_manager._lib as lib

    function = ctypes.CDLL(lib.__file__).AdbcErrorFromArrayStream
    function.restype = ctypes.POINTER(_AdbcError)
    function.argtypes = [ctypes.POINTER(_Stream), ctypes.POINTER(ctypes.c_uint8)]
    return function


class KeptErrorStream:
    """The ADBC stream in ``capsule``, moved behind ``self.capsule`` for DuckDB to scan.

    After a failed read, ``error`` is the driver's error (``adbc_driver_manager.Error`` with
    ``status_code`` and ``sqlstate``); None while every read succeeded. ``close()`` releases
    the ADBC stream if DuckDB never took it.
    """

    def __init__(self, capsule: object):
        source = _Stream.from_address(_capsule_pointer(capsule, _STREAM_CAPSULE))
        self._inner = _Stream()
        ctypes.memmove(ctypes.byref(self._inner), ctypes.byref(source), ctypes.sizeof(_Stream))
        source.release = None  # moved: its capsule no longer releases it
        self.error = None
        # The callbacks are kept on self: ctypes frees a callback with its Python object.
        self._callbacks = (
            _GET_SCHEMA(self._get_schema),
            _GET_NEXT(self._get_next),
            _GET_LAST_ERROR(self._get_last_error),
            _RELEASE(self._release),
        )
        get_schema, get_next, get_last_error, release = self._callbacks
        self._outer = _Stream(get_schema, get_next, get_last_error, ctypes.cast(release, ctypes.c_void_p), None)
        self.capsule = _new_capsule(ctypes.addressof(self._outer), _STREAM_CAPSULE, None)
        with _held_lock:
            _held.add(self)

    # DuckDB moves the outer stream into its own memory: the callbacks get its copy, and
    # forward to the ADBC stream, which stays here.
    def _get_schema(self, _stream, out) -> int:
        return self._inner.get_schema(ctypes.byref(self._inner), out)

    def _get_next(self, _stream, out) -> int:
        code = self._inner.get_next(ctypes.byref(self._inner), out)
        if code != 0 and self.error is None:
            try:
                self.error = self._adbc_error(code)
            except Exception:  # an exception cannot cross into DuckDB; the failure still does
                pass
        return code

    def _get_last_error(self, _stream) -> int | None:
        return self._inner.get_last_error(ctypes.byref(self._inner))

    def _release(self, stream) -> None:
        if self._inner.release:
            _RELEASE(self._inner.release)(ctypes.byref(self._inner))
            self._inner.release = None
        stream.contents.release = None
        with _held_lock:
            _held.discard(self)

    def _adbc_error(self, code: int):
        import adbc_driver_manager

        status = ctypes.c_uint8(0)
        found = _error_from_stream()(ctypes.byref(self._inner), ctypes.byref(status))
        if not found:  # a driver without ADBC 1.1 errors: only the message
            text = self._inner.get_last_error(ctypes.byref(self._inner))
            message = ctypes.string_at(text).decode(errors="replace") if text else f"reading failed (error {code})"
            return adbc_driver_manager.Error(message.strip(), status_code=adbc_driver_manager.AdbcStatusCode.UNKNOWN)
        error = found.contents
        sqlstate = error.sqlstate.decode("ascii", "replace").strip("\0") or None
        message = (error.message or b"").decode(errors="replace").strip()
        status_code = adbc_driver_manager.AdbcStatusCode(status.value)
        return adbc_driver_manager.Error(message, status_code=status_code, sqlstate=sqlstate)

    def close(self) -> None:
        """Release the ADBC stream unless DuckDB has taken it (DuckDB then releases it)."""
        if self._outer.release:
            self._release(ctypes.pointer(self._outer))
