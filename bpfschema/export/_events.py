"""Event export: a ring buffer, a perf buffer or a queue to JSON lines, Arrow IPC stream files or Parquet files.

Back-pressure (``on_full``):

* ``"block"`` (default): one thread takes a record from the map, hands it to the sink, then takes the next. A
  slow sink slows the reading; the kernel-side buffer fills and the *producer* sees it (``bpf_ringbuf_output``
  fails with ``-EAGAIN``, a queue push with ``-E2BIG``; count those in the program). Memory: one batch.
* ``"drop"``: a reader thread takes records as fast as they come into a bounded buffer of ``buffer`` records; a
  record that finds the buffer full is dropped and counted (``stats.dropped``). Memory: ``buffer`` records.

What is never lost: a JSON line that could not be written (the reader of a pipe went away) leaves its record
in the map: a ring buffer's consumer position is not advanced past the last line written, a queue's value is
popped only after its line was written (peek, write, pop: the exporter must be the queue's only consumer). Arrow
and Parquet sinks hold at most one batch; it is written when full, on rotation, on :meth:`EventExporter.stop`
(SIGTERM in the CLI) and at the end; a batch that cannot be written is raised in :class:`SinkError` with its
records. In ``"drop"`` mode the records still in the bounded buffer when the sink fails are counted as dropped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import select
import stat
import sys
import termios
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import BpfError, DecodeError, MapEmptyError
from ..maps import Map, PerfBuffer, QueueMap, RingBuffer
from ._open import require
from ._values import to_plain

__all__ = ["ArrowSink", "EventExporter", "EventStats", "JsonLinesSink", "OnFull", "Sink", "SinkClosedError",
           "SinkError", "record_json"]

OnFull = Literal["block", "drop"]


class SinkError(BpfError):
    """A sink could not write; ``records`` holds the records taken out of the map and not written.

    Attributes:
        records: the decoded records (or bytes) that were not written.
    """

    def __init__(self, detail: str, records: Sequence[object]):
        self.records = list(records)
        super().__init__("export", detail)


class SinkClosedError(SinkError):
    """The sink's reader went away (a closed pipe): stop, leaving unwritten records in the map."""


@dataclass
class EventStats:
    """Counts of one export run.

    Attributes:
        exported: records written to the sink.
        dropped: records dropped because the bounded buffer was full (``on_full="drop"``), or left in it when
            the sink failed.
        undecodable: records that did not decode with the bound type (written as hex with their error).
        lost: records the kernel could not put in a perf buffer (``PERF_RECORD_LOST``); ring buffers and queues
            report their losts to the producer instead (a failed output or push).
        files: files completed (Arrow and Parquet sinks), in order.
    """

    exported: int = 0
    dropped: int = 0
    undecodable: int = 0
    lost: int = 0
    files: list[str] = field(default_factory=list)


def record_json(rec: object) -> str:
    """One record as a JSON object on one line: model and record fields by name, bytes as hex, addresses as
    text, enums by name; a scalar or bytes record as ``{"value": ...}``."""
    plain = to_plain(rec)
    if not isinstance(plain, dict):
        plain = {"value": plain}
    return json.dumps(plain, separators=(",", ":"), default=_json_default)


def _json_default(o: object) -> object:
    if isinstance(o, bytes):
        return o.hex()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")  # pragma: no cover - to_plain covers all


class Sink:
    """Where records go. ``add`` takes one record; ``flush`` writes what is held; ``close`` flushes and ends."""

    #: Records are written as they are added (no batch held): a failed write concerns only the record added.
    immediate: bool = False

    def add(self, rec: object) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def flush(self) -> None:
        """Write what is held. Raises :class:`SinkError` with the records that could not be written."""

    def close(self) -> None:
        """Flush and release. Idempotent."""

    def files(self) -> list[str]:
        """Files completed so far."""
        return []


class JsonLinesSink(Sink):
    """One JSON object per line on a file descriptor (stdout for log shippers), written as each record comes.

    ``pace`` (default: when ``fd`` is a pipe): after each line, wait until the reader has taken it out of the
    pipe, so that a line counts as written only once it was read; a reader that exits (``head -n 5``) then
    leaves every record it did not read in the map. Without pacing, lines sitting in the pipe's buffer when the
    reader exits are lost with it. A closed pipe raises :class:`SinkClosedError` (the record is not written).
    """

    immediate = True

    def __init__(self, fd: int = 1, *, pace: bool | None = None):
        self.fd = fd
        is_pipe = stat.S_ISFIFO(os.fstat(fd).st_mode)
        self.pace = is_pipe if pace is None else (pace and is_pipe)
        self._buf = bytearray(4)

    def _unread(self) -> int:
        fcntl.ioctl(self.fd, termios.FIONREAD, self._buf)
        return int.from_bytes(self._buf, sys.byteorder, signed=True)

    def add(self, rec: object) -> None:
        data = (record_json(rec) + "\n").encode()
        view = memoryview(data)
        try:
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
        except BrokenPipeError:
            raise SinkClosedError("the reader of the output went away", [rec]) from None
        except OSError as e:
            raise SinkError(f"cannot write: {e.strerror}", [rec]) from None
        if not self.pace:
            return
        poller = select.poll()
        poller.register(self.fd, select.POLLERR)
        delay = 0
        while self._unread() > 0:
            if poller.poll(delay):  # POLLERR: the read end was closed
                if self._unread() > 0:  # ... with this line still in the pipe: never read
                    raise SinkClosedError("the reader of the output went away", [rec])
                return
            delay = min(delay * 2 + 1, 50)


def _arrow_type(pa: Any, ct: object) -> Any:
    from ..layout import CStringType, FloatType, IntType, MappedType

    if isinstance(ct, IntType):
        bits = ct.width * 8
        return getattr(pa, f"{'int' if ct.signed else 'uint'}{bits}")()
    if isinstance(ct, FloatType):
        return pa.float32() if ct.width == 4 else pa.float64()
    if isinstance(ct, (CStringType, MappedType)):
        return pa.string()
    return None


class ArrowSink(Sink):
    """Records as Arrow IPC stream files (``format="arrow"``, ``.arrows``) or Parquet files, with rotation.

    Rows are batched (``batch_rows``); a file is completed after ``rotate_records`` rows or ``rotate_seconds``
    seconds, whichever comes first, and on :meth:`close`. Files are written as ``NAME.tmp`` and renamed when
    complete, so a reader never sees half a file: ``{prefix}-{n:06d}.arrows`` / ``.parquet`` in ``directory``.
    Column types come from the event type's layout (unsigned 64-bit stays ``uint64``), else are inferred from
    the first batch.

    Raises (at construction):
        ExtraNotInstalledError: ``pyarrow`` is missing (extra ``arrow``).
    """

    def __init__(self, directory: str | os.PathLike[str], *, format: Literal["arrow", "parquet"] = "arrow",
                 prefix: str = "events", batch_rows: int = 4096, rotate_records: int = 1_000_000,
                 rotate_seconds: float | None = None, layout: object = None):
        self.pa = require("pyarrow", "pyarrow", "arrow", "Arrow/Parquet export")
        if format == "parquet":
            self.pq = require("pyarrow.parquet", "pyarrow", "arrow", "Parquet export")
        if batch_rows < 1 or rotate_records < 1:
            raise ValueError("batch_rows and rotate_records must be >= 1")
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.format = format
        self.prefix = prefix
        self.batch_rows = batch_rows
        self.rotate_records = rotate_records
        self.rotate_seconds = rotate_seconds
        self._rows: list[dict[str, object]] = []
        self._recs: list[object] = []
        self._schema: Any = None
        self._known: dict[str, Any] = {}
        fields = getattr(layout, "fields", None)
        if fields:
            for f in fields:
                t = _arrow_type(self.pa, f.ctype)
                if t is not None:
                    self._known[f.name] = t
        self._writer: Any = None
        self._tmp: Path | None = None
        self._final: Path | None = None
        self._file_rows = 0
        self._opened = 0.0
        self._seq = self._next_seq()
        self._files: list[str] = []
        self._closed = False

    def _next_seq(self) -> int:
        ext = ".arrows" if self.format == "arrow" else ".parquet"
        n = 0
        for p in self.dir.glob(f"{self.prefix}-*{ext}"):
            tail = p.name[len(self.prefix) + 1: -len(ext)]
            if tail.isdigit():
                n = max(n, int(tail) + 1)
        return n

    def add(self, rec: object) -> None:
        plain = to_plain(rec)
        row = plain if isinstance(plain, dict) else {"value": plain}
        self._rows.append(row)
        self._recs.append(rec)
        due = self._writer is not None and self.rotate_seconds is not None and \
            time.monotonic() - self._opened >= self.rotate_seconds
        if due or len(self._rows) >= self.batch_rows:
            self.flush()

    def _batch(self) -> Any:
        pa = self.pa
        if self._schema is None:
            inferred = pa.RecordBatch.from_pylist(self._rows).schema
            fields = [pa.field(f.name, self._known.get(f.name, f.type)) for f in inferred]
            self._schema = pa.schema(fields)
        return pa.RecordBatch.from_pylist(self._rows, schema=self._schema)

    def _open(self) -> None:
        ext = ".arrows" if self.format == "arrow" else ".parquet"
        self._final = self.dir / f"{self.prefix}-{self._seq:06d}{ext}"
        self._tmp = self._final.with_name(self._final.name + ".tmp")
        self._seq += 1
        if self.format == "arrow":
            self._sinkfile = self.pa.OSFile(str(self._tmp), "wb")
            self._writer = self.pa.ipc.new_stream(self._sinkfile, self._schema)
        else:
            self._writer = self.pq.ParquetWriter(str(self._tmp), self._schema)
        self._file_rows = 0
        self._opened = time.monotonic()

    def _finish(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        if self.format == "arrow":
            self._sinkfile.close()
        assert self._tmp is not None and self._final is not None
        os.replace(self._tmp, self._final)
        self._files.append(str(self._final))
        self._writer = None

    def flush(self) -> None:
        """Write the rows held (completing the file when it is due for rotation).

        Raises:
            SinkError: the batch could not be converted or written; ``records`` holds its records.
        """
        try:
            if self._rows:
                batch = self._batch()
                if self._writer is None:
                    self._open()
                if self.format == "arrow":
                    self._writer.write_batch(batch)
                else:
                    self._writer.write_table(self.pa.Table.from_batches([batch]))
                self._file_rows += batch.num_rows
                self._rows = []
                self._recs = []
            if self._writer is not None and (self._file_rows >= self.rotate_records or (
                    self.rotate_seconds is not None and time.monotonic() - self._opened >= self.rotate_seconds)):
                self._finish()
        except (OSError, self.pa.ArrowException) as e:
            recs, self._recs, self._rows = self._recs, [], []
            raise SinkError(f"cannot write {self.format} to {self.dir}: {e}", recs) from None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.flush()
        finally:
            with contextlib.suppress(OSError):
                self._finish()

    def files(self) -> list[str]:
        return list(self._files)


class EventExporter:
    """Copies records from a ring buffer, a perf buffer or a queue map into a :class:`Sink` until stopped.

    ::

        with bs.RingBuffer[Event].from_pin(pin) as rb:
            ex = EventExporter(rb, JsonLinesSink(1))
            stats = ex.run(idle_timeout=5)

    :meth:`stop` (from a signal handler or another thread) ends :meth:`run` after the record in hand; the sink is
    then flushed and closed.

    Raises (at construction):
        TypeError: not a ring buffer, a queue or a perf buffer (for a perf event array, pass
            ``array.open_buffer()``).
        ValueError: ``buffer < 1``.
    """

    def __init__(self, source: Map | PerfBuffer[Any], sink: Sink, *, on_full: OnFull = "block",
                 buffer: int = 8192, tick: float = 0.2):
        if not isinstance(source, (RingBuffer, QueueMap, PerfBuffer)):
            raise TypeError(f"cannot export events from a {type(source).__name__}: a RingBuffer, a QueueMap or a "
                            "PerfBuffer (PerfEventArray.open_buffer())")
        if buffer < 1:
            raise ValueError("buffer must be >= 1")
        self.source = source
        self.sink = sink
        self.on_full = on_full
        self.buffer = buffer
        self.tick = tick
        self.stats = EventStats()
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask :meth:`run` to end after the record in hand (safe from a signal handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    def run(self, *, limit: int | None = None, idle_timeout: float | None = None) -> EventStats:
        """Export until stopped, ``limit`` records were exported, or no record came for ``idle_timeout`` seconds.

        Returns:
            The run's :class:`EventStats` (also on ``self.stats``).

        Raises:
            SinkClosedError: the reader of the output went away (the records not written stay in the map, except
                those in the bounded buffer of ``on_full="drop"``, counted as dropped).
            SinkError: the sink failed; ``records`` holds what was taken and not written.
            bpfschema.errors.BpfError: reading the map failed.
        """
        try:
            if self.on_full == "drop":
                self._run_dropping(limit, idle_timeout)
            else:
                self._run_blocking(limit, idle_timeout)
        finally:
            self.update_lost()
            try:
                self.sink.close()
            finally:
                self.stats.files = self.sink.files()
        return self.stats

    def update_lost(self) -> int:
        """Refresh ``stats.lost`` from a perf buffer's lost-record counts (records delivered so far); returns it."""
        if isinstance(self.source, PerfBuffer) and not self.source.closed:
            self.stats.lost = self.source.lost_total
        return self.stats.lost

    # -- block: one thread, record by record ---------------------------------------------------------------------

    def _done(self, limit: int | None) -> bool:
        return self._stop.is_set() or (limit is not None and self.stats.exported >= limit)

    def _emit(self, rec: object) -> None:
        if isinstance(rec, DecodeError):  # pragma: no cover - handled by callers
            raise rec
        self.sink.add(rec)
        self.stats.exported += 1

    def _undecodable(self, e: DecodeError) -> None:
        for raw in e.raw:
            self.stats.undecodable += 1
            self._emit({"undecodable": raw.hex() if isinstance(raw, bytes) else str(raw), "error": e.detail})

    def _run_blocking(self, limit: int | None, idle_timeout: float | None) -> None:
        if isinstance(self.source, (RingBuffer, PerfBuffer)):
            self._ring_blocking(self.source, limit, idle_timeout)
        else:
            self._queue_blocking(self.source, limit, idle_timeout)

    def _ring_blocking(self, rb: RingBuffer[Any] | PerfBuffer[Any], limit: int | None,
                       idle_timeout: float | None) -> None:
        idle_since = time.monotonic()
        while not self._done(limit):
            got = False
            with rb.events(timeout=self.tick) as s:
                while not self._done(limit):
                    try:
                        rec = next(s)
                    except StopIteration:
                        break
                    except DecodeError as e:
                        self._undecodable(e)
                        continue
                    got = True
                    try:
                        self._emit(rec)
                    except SinkError:
                        if self.sink.immediate:
                            s.unread_last()  # not written: leave it in the ring
                        raise
            if got:
                idle_since = time.monotonic()
            elif idle_timeout is not None and time.monotonic() - idle_since >= idle_timeout:
                return
            if not self.sink.immediate:
                self.sink.flush()  # an idle gap: write what is held

    def _queue_blocking(self, q: QueueMap[Any], limit: int | None, idle_timeout: float | None) -> None:
        idle_since = time.monotonic()
        if not self.sink.immediate:  # records are held by the sink: take them in batches
            while not self._done(limit):
                n = 0
                want = 4096 if limit is None else min(4096, limit - self.stats.exported)
                with q.drain(limit=want) as d:
                    while not self._stop.is_set():
                        try:
                            rec = next(d)
                        except StopIteration:
                            break
                        except DecodeError as e:
                            self._undecodable(e)
                            continue
                        n += 1
                        self._emit(rec)
                if n:
                    idle_since = time.monotonic()
                    continue
                self.sink.flush()
                if idle_timeout is not None and time.monotonic() - idle_since >= idle_timeout:
                    return
                self._stop.wait(min(self.tick, 0.05))
            return
        while not self._done(limit):  # immediate sink: peek, write, then pop
            try:
                rec = q.peek()
            except MapEmptyError:
                if idle_timeout is not None and time.monotonic() - idle_since >= idle_timeout:
                    return
                self._stop.wait(min(self.tick, 0.05))
                continue
            except DecodeError:
                try:
                    q.pop()  # take the undecodable value out; its bytes come with the error
                except DecodeError as e:
                    self._undecodable(e)
                except MapEmptyError:
                    pass
                continue
            self._emit(rec)  # a SinkError here leaves the value in the queue
            try:
                popped = q.pop()
            except MapEmptyError:  # another consumer took it: written anyway
                popped = rec
            if popped != rec:  # another consumer took ours; write the one we got rather than lose it
                self._emit(popped)
            idle_since = time.monotonic()

    # -- drop: a reader thread and a bounded buffer ------------------------------------------------------------

    def _read_into(self, buf: queue.Queue[object], failed: list[BaseException]) -> None:
        try:
            for rec in self._records():
                try:
                    buf.put_nowait(rec)
                except queue.Full:
                    self.stats.dropped += 1
        except BaseException as e:  # reported by the writer
            failed.append(e)

    def _records(self) -> Iterator[object]:
        src = self.source
        while not self._stop.is_set():
            if isinstance(src, (RingBuffer, PerfBuffer)):
                stream: Any = src.events(timeout=self.tick)
            else:
                stream = src.drain(limit=4096)
            with stream:
                n = 0
                while not self._stop.is_set():
                    try:
                        rec = next(stream)
                    except StopIteration:
                        break
                    except DecodeError as e:
                        for raw in e.raw:
                            self.stats.undecodable += 1
                            yield {"undecodable": raw.hex() if isinstance(raw, bytes) else str(raw),
                                   "error": e.detail}
                        continue
                    n += 1
                    yield rec
            if not n and isinstance(src, QueueMap):
                self._stop.wait(min(self.tick, 0.05))

    def _run_dropping(self, limit: int | None, idle_timeout: float | None) -> None:
        buf: queue.Queue[object] = queue.Queue(maxsize=self.buffer)
        failed: list[BaseException] = []
        reader = threading.Thread(target=self._read_into, args=(buf, failed), name="bpfschema-export-reader",
                                  daemon=True)
        reader.start()
        idle_since = time.monotonic()
        try:
            while not (limit is not None and self.stats.exported >= limit):
                try:
                    rec = buf.get(timeout=self.tick)
                except queue.Empty:
                    if failed:
                        raise failed[0] from None
                    if self._stop.is_set():
                        break
                    if not self.sink.immediate:
                        self.sink.flush()
                    if idle_timeout is not None and time.monotonic() - idle_since >= idle_timeout:
                        break
                    continue
                idle_since = time.monotonic()
                try:
                    self._emit(rec)
                except SinkError:
                    self.stats.dropped += 1 + len(self._stop_reader(reader, buf))
                    raise
        finally:
            left = self._stop_reader(reader, buf)
        # Taken by the reader, not yet written: written now (``limit`` may be passed by up to ``buffer``).
        for i, rec in enumerate(left):
            try:
                self._emit(rec)
            except SinkError:
                self.stats.dropped += len(left) - i
                raise

    def _stop_reader(self, reader: threading.Thread, buf: queue.Queue[object]) -> list[object]:
        """Stop the reader thread; returns what is left in the buffer (emptied)."""
        self._stop.set()
        reader.join()
        left: list[object] = []
        with contextlib.suppress(queue.Empty):
            while True:
                left.append(buf.get_nowait())
        return left
