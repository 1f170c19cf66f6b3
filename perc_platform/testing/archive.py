"""Archive routes for the loopback server: the shapes of the real services, served from files on disk.

``archive_server(data_dir, ...)`` starts an :class:`ArchiveServer` and points the ``PERC_*_URL`` endpoints
at it for the duration of a ``with`` block. It indexes the folders it is given (recursively) by file name:

=====================================  ============================================================
file                                   served as
=====================================  ============================================================
``1aki.cif``, ``1aki.pdb`` (4-char id)  RCSB ``/download/1AKI.cif|.pdb|.cif.gz``
``AF-<ACC>-F<n>-model_v<k>.pdb|cif``   AlphaFold DB ``/prediction/<ACC>`` (JSON list whose ``cifUrl``/
                                       ``pdbUrl`` point back here) and ``/files/<name>``; a model stored
                                       only as PDB is also served as mmCIF, converted with gemmi
``pdbe_best_structures_<ACC>.json``    PDBe ``/mappings/best_structures/<ACC>`` (404 ``{}`` when absent)
``ebi_proteins_api_<ACC>.json`` or     EBI Proteins ``/features/<ACC>?categories=...`` (features filtered
``proteins_features_<ACC>.json``       by category, sequence flattened as the features endpoint does)
``emd_<N>.map``/``EMD-<N>.map``/.mrc   EMDB ``/structures/EMD-<N>/map/emd_<N>.map.gz`` (gzipped here)
``emdb_entry_EMD-<N>.json``            EMDB ``/entry/EMD-<N>``; without one, a minimal entry from the header
=====================================  ============================================================

Faults (``add_fault``) match the request path, e.g. ``/rcsb/download/1AKI.cif``; :meth:`add_throttle`
makes matching bodies trickle out at a given rate (for killing a client mid-download).
"""

from __future__ import annotations

import contextlib
import fnmatch
import gzip
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gemmi
import mrcfile

from perc_platform._environ import environment
from perc_platform.testing.server import LoopbackServer, RequestRecord, Response, _Handler, serve_in_thread

__all__ = ["ARCHIVE_ENDPOINTS", "ArchiveServer", "archive_server"]

#: Config field -> path prefix of that endpoint on the archive server.
ARCHIVE_ENDPOINTS: dict[str, str] = {
    "rcsb_files_url": "/rcsb",
    "pdbe_api_url": "/pdbe/api",
    "afdb_api_url": "/afdb/api",
    "proteins_api_url": "/proteins/api",
    "emdb_files_url": "/emdb/files",
    "emdb_api_url": "/emdb/api",
}
_AFDB_FILES = "/afdb/files"

_PDB_FILE = re.compile(r"([0-9][a-z0-9]{3})\.(cif|pdb)", re.IGNORECASE)
_AF_FILE = re.compile(r"AF-([A-Z0-9]+)-F([0-9]+)-model_v([0-9]+)\.(cif|pdb)")
_SIFTS_FILE = re.compile(r"pdbe_best_structures_([A-Z0-9]+)\.json")
_FEATURES_FILE = re.compile(r"(?:ebi_proteins_api|proteins_features)_([A-Z0-9]+)\.json")
_MAP_FILE = re.compile(r"(?:emd_|EMD-)([0-9]{4,6})\.(?:map|mrc)", re.IGNORECASE)
_ENTRY_FILE = re.compile(r"emdb_entry_EMD-([0-9]{4,6})\.json")


class ArchiveIndex:
    """The archive files found under some folders, keyed the way the services address them."""

    def __init__(self, *roots: str | os.PathLike[str]) -> None:
        self.pdb: dict[tuple[str, str], Path] = {}
        self.afdb: dict[str, list[tuple[int, int, Path]]] = {}
        self.sifts: dict[str, Path] = {}
        self.features: dict[str, Path] = {}
        self.maps: dict[str, Path] = {}
        self.entries: dict[str, Path] = {}
        for root in roots:
            for path in sorted(Path(root).rglob("*")):
                if path.is_file():
                    self.add(path)

    def add(self, path: Path) -> None:
        name = path.name
        if m := _PDB_FILE.fullmatch(name):
            self.pdb[(m.group(1).upper(), m.group(2).lower())] = path
        elif m := _AF_FILE.fullmatch(name):
            self.afdb.setdefault(m.group(1), []).append((int(m.group(2)), int(m.group(3)), path))
        elif m := _SIFTS_FILE.fullmatch(name):
            self.sifts[m.group(1)] = path
        elif m := _FEATURES_FILE.fullmatch(name):
            self.features[m.group(1)] = path
        elif m := _MAP_FILE.fullmatch(name):
            self.maps[str(int(m.group(1)))] = path
        elif m := _ENTRY_FILE.fullmatch(name):
            self.entries[str(int(m.group(1)))] = path


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body).encode(), status, {"Content-Type": "application/json"})


def _not_found(what: str) -> Response:
    return Response(f"not found: {what}".encode(), 404, {"Content-Type": "text/plain"})


class ArchiveServer(LoopbackServer):
    """A :class:`LoopbackServer` with RCSB, PDBe, AlphaFold DB, Proteins API and EMDB routes."""

    def __init__(self, *data_dirs: str | os.PathLike[str], latency: float = 0.0) -> None:
        super().__init__(None, latency=latency)
        self.index = ArchiveIndex(*data_dirs)
        self.throttles: list[tuple[str, float]] = []
        self._derived: dict[str, bytes] = {}
        self._derived_lock = threading.Lock()
        self.add_route("/rcsb/download/", self._rcsb)
        self.add_route("/pdbe/api/mappings/best_structures/", self._sifts)
        self.add_route("/afdb/api/prediction/", self._prediction)
        self.add_route(_AFDB_FILES + "/", self._afdb_file)
        self.add_route("/proteins/api/features/", self._features)
        self.add_route("/emdb/files/structures/", self._emdb_map)
        self.add_route("/emdb/api/entry/", self._emdb_entry)

    # -- life cycle ---------------------------------------------------------------------------------
    def start(self) -> ArchiveServer:
        server = self

        class Handler(_ThrottledHandler):
            owner = server

        self._httpd, self._thread = serve_in_thread(Handler, "perc-archive")
        return self

    @property
    def env(self) -> dict[str, str]:
        """``PERC_*_URL`` variables that point the archive clients at this server."""
        return {f"PERC_{field.upper()}": self.url + prefix for field, prefix in ARCHIVE_ENDPOINTS.items()}

    def add_throttle(self, pattern: str, bytes_per_second: float) -> None:
        """Send bodies of paths matching ``pattern`` (fnmatch) at about ``bytes_per_second``."""
        self.throttles.append((pattern, bytes_per_second))

    def throttle_for(self, path: str) -> float | None:
        for pattern, rate in self.throttles:
            if fnmatch.fnmatch(path, pattern):
                return rate
        return None

    def _derive(self, key: str, make: Any) -> bytes:
        with self._derived_lock:
            if key not in self._derived:
                self._derived[key] = make()
            return self._derived[key]

    # -- routes -------------------------------------------------------------------------------------
    def _rcsb(self, path: str, query: dict[str, str]) -> Response | Path:
        name = path.rsplit("/", 1)[-1]
        gz = name.lower().endswith(".gz")
        m = _PDB_FILE.fullmatch(name[:-3] if gz else name)
        if not m or (m.group(1).upper(), m.group(2).lower()) not in self.index.pdb:
            return _not_found(name)
        source = self.index.pdb[(m.group(1).upper(), m.group(2).lower())]
        if not gz:
            return source
        return Response(self._derive(f"gz:{source}", lambda: gzip.compress(source.read_bytes(), mtime=0)))

    def _sifts(self, path: str, query: dict[str, str]) -> Response:
        acc = path.rstrip("/").rsplit("/", 1)[-1].upper()
        if acc not in self.index.sifts:
            return _json({}, 404)
        return Response(self.index.sifts[acc].read_bytes(), 200, {"Content-Type": "application/json"})

    def _prediction(self, path: str, query: dict[str, str]) -> Response:
        acc = path.rstrip("/").rsplit("/", 1)[-1].upper()
        models = self.index.afdb.get(acc)
        if not models:
            return _json({"error": "no prediction"}, 404)
        answer = []
        for fragment, version, model_path in sorted(models):
            structure = gemmi.read_structure(str(model_path))
            residues = [res for res in structure[0][0]]
            ca = [atom.b_iso for res in residues for atom in res if atom.name == "CA"]
            entry = f"AF-{acc}-F{fragment}"
            files = f"{self.url}{_AFDB_FILES}/{entry}-model_v{version}"
            answer.append({
                "entryId": entry, "gene": None, "uniprotAccession": acc, "uniprotId": f"{acc}_LOOPBACK",
                "uniprotDescription": str(structure.info["_struct.title"]) if "_struct.title" in structure.info
                else "", "taxId": 0, "organismScientificName": "unknown",
                "uniprotStart": residues[0].seqid.num, "uniprotEnd": residues[-1].seqid.num,
                "uniprotSequence": gemmi.one_letter_code([r.name for r in residues]),
                "modelCreatedDate": "2022-06-01", "latestVersion": version, "allVersions": [version],
                "cifUrl": f"{files}.cif", "bcifUrl": f"{files}.bcif", "pdbUrl": f"{files}.pdb",
                "paeDocUrl": f"{self.url}{_AFDB_FILES}/{entry}-predicted_aligned_error_v{version}.json",
                "paeImageUrl": f"{self.url}{_AFDB_FILES}/{entry}-predicted_aligned_error_v{version}.png",
                "globalMetricValue": round(sum(ca) / len(ca), 2) if ca else None,
            })
        return _json(answer)

    def _afdb_file(self, path: str, query: dict[str, str]) -> Response | Path:
        name = path.rsplit("/", 1)[-1]
        m = _AF_FILE.fullmatch(name)
        if not m:
            return _not_found(name)
        acc, fragment, version, ext = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
        stored = {p.suffix.lstrip("."): p for f, v, p in self.index.afdb.get(acc, []) if (f, v) == (fragment, version)}
        if ext in stored:
            return stored[ext]
        if ext == "cif" and "pdb" in stored:
            source = stored["pdb"]

            def convert() -> bytes:
                structure = gemmi.read_structure(str(source))
                structure.setup_entities()
                return structure.make_mmcif_document().as_string().encode()

            return Response(self._derive(f"cif:{source}", convert))
        return _not_found(name)

    def _features(self, path: str, query: dict[str, str]) -> Response:
        acc = path.rstrip("/").rsplit("/", 1)[-1].upper()
        if acc not in self.index.features:
            return _json({"requestedURL": path, "errorMessage": ["No entry found"]}, 404)
        data = json.loads(self.index.features[acc].read_text(encoding="utf-8"))
        wanted = {c.strip().upper() for c in query.get("categories", "").split(",") if c.strip()}
        sequence = data.get("sequence")
        if isinstance(sequence, dict):
            sequence = sequence.get("sequence")
        features = [f for f in data.get("features", []) if not wanted or str(f.get("category")).upper() in wanted]
        return _json({"accession": acc, "entryName": data.get("id") or data.get("entryName"),
                      "sequence": sequence, "taxid": (data.get("organism") or {}).get("taxonomy", data.get("taxid")),
                      "features": features})

    def _emdb_map(self, path: str, query: dict[str, str]) -> Response:
        m = re.fullmatch(r"/emdb/files/structures/EMD-([0-9]+)/map/emd_([0-9]+)\.map\.gz", path)
        if not m or m.group(1) != m.group(2) or str(int(m.group(1))) not in self.index.maps:
            return _not_found(path)
        source = self.index.maps[str(int(m.group(1)))]
        return Response(self._derive(f"gz:{source}", lambda: gzip.compress(source.read_bytes(), mtime=0)))

    def _emdb_entry(self, path: str, query: dict[str, str]) -> Response:
        m = re.fullmatch(r"/emdb/api/entry/EMD-([0-9]+)", path.rstrip("/"))
        if not m:
            return _not_found(path)
        number = str(int(m.group(1)))
        if number in self.index.entries:
            return Response(self.index.entries[number].read_bytes(), 200, {"Content-Type": "application/json"})
        if number not in self.index.maps:
            return _json({"detail": "Not found."}, 404)
        with mrcfile.open(self.index.maps[number], header_only=True, permissive=True) as mrc:
            h = mrc.header
            size = {"col": int(h.nx), "row": int(h.ny), "sec": int(h.nz)}
            spacing = {a: {"valueOf_": float(v), "units": "Å"} for a, v in zip("xyz", mrc.voxel_size.tolist(),
                                                                                 strict=True)}
        return _json({"emdb_id": f"EMD-{m.group(1)}", "admin": {"title": f"EMD-{m.group(1)} (loopback)"},
                      "map": {"file": f"emd_{number}.map.gz", "dimensions": size, "pixel_spacing": spacing}})


class _ThrottledHandler(_Handler):
    owner: ArchiveServer

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str], head: bool,
              path: str, rng: str | None, drop: bool = False) -> None:
        rate = self.owner.throttle_for(path)
        if rate is None or head or drop:
            super()._send(status, body, ctype, headers, head, path, rng, drop)
            return
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        step = max(1, int(rate / 20))
        sent = 0
        try:
            for start in range(0, len(body), step):
                self.wfile.write(body[start:start + step])
                self.wfile.flush()
                sent += len(body[start:start + step])
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        self.owner._log(RequestRecord(self.command, path, rng, status, sent))


@contextlib.contextmanager
def archive_server(*data_dirs: str | os.PathLike[str], latency: float = 0.0) -> Iterator[ArchiveServer]:
    """Start an :class:`ArchiveServer` over ``data_dirs`` and point ``PERC_*_URL`` at it inside the block."""
    server = ArchiveServer(*data_dirs, latency=latency).start()
    try:
        with environment(server.env):
            yield server
    finally:
        server.stop()
