"""Exception hierarchy of perc-platform.

Every error is a :class:`PercError` and also subclasses the builtin that fits it, so callers can catch
either ``perc_platform.errors.MrcFormatError`` or plain ``ValueError``. Messages name the input and say
how to fix it.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "CsFormatError",
    "DataNotFoundError",
    "FormatError",
    "IdentifierError",
    "InputError",
    "MdocFormatError",
    "MrcFormatError",
    "NetworkPolicyError",
    "ParameterError",
    "PercError",
    "RangeNotSupportedWarning",
    "RemoteError",
    "SizeLimitError",
    "StarFormatError",
    "StorageError",
    "StructureFormatError",
    "TruncatedFileError",
    "UnsafeCatalogError",
    "UnsupportedModeError",
]


class PercError(Exception):
    """Root of every error raised by perc-platform."""


class InputError(PercError, ValueError):
    """A user-supplied value or file is not acceptable."""


class FormatError(InputError):
    """A file does not follow its format."""


class MrcFormatError(FormatError):
    """An MRC/MRCS file is malformed or not an MRC file."""


class TruncatedFileError(MrcFormatError):
    """A file holds fewer bytes than its header promises."""


class UnsupportedModeError(MrcFormatError):
    """An MRC data mode that perc-platform does not read."""


class StarFormatError(FormatError):
    """A STAR file is malformed or lacks a needed column."""


class CsFormatError(FormatError):
    """A cryoSPARC ``.cs`` particle table is malformed or lacks a needed field."""


class MdocFormatError(FormatError):
    """A SerialEM ``.mdoc`` file is malformed or lacks a needed section or field."""


class StructureFormatError(FormatError):
    """A PDB/mmCIF file could not be parsed."""


class StorageError(PercError, OSError):
    """Local storage (the cache or a download folder) cannot be written: disk full, read-only, no permission."""


class SizeLimitError(InputError):
    """An input claims more data than the configured limit allows."""


class ParameterError(InputError):
    """A bad parameter (catalog user parameter or function argument)."""


class UnsafeCatalogError(InputError):
    """A catalog opened untrusted asks for something an untrusted catalog may not do."""


class IdentifierError(InputError):
    """An archive identifier (UniProt, PDB, EMDB, EMPIAR) has the wrong form."""


class ConfigError(InputError):
    """Configuration (PERC_* environment variables or settings) is invalid."""


class NetworkPolicyError(InputError):
    """A URL (or a redirect) points at a host or scheme the network policy does not allow."""


class DataNotFoundError(PercError, FileNotFoundError):
    """A file, URL or archive entry does not exist."""


class RemoteError(PercError, ConnectionError):
    """A remote service failed (after retries) or answered something unusable."""


class RangeNotSupportedWarning(UserWarning):
    """A server ignored an HTTP Range request; the file was cached locally once instead."""
