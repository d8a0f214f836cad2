"""Loading small BPF programs from Python: hand-assembled instructions, no compiler, no libbpf."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from types import TracebackType

from .._sys import ops
from .._sys.asm import Item, assemble
from .._sys.consts import F_SLEEPABLE, ProgType
from .._sys.fd import Fd
from .._sys.ops import TestRunResult
from ..errors import VerifierError

__all__ = ["SO_ATTACH_BPF", "Program", "ProgType", "TestRunResult", "VerifierError"]

#: ``setsockopt(SOL_SOCKET, SO_ATTACH_BPF, prog_fd)`` attaches a socket filter program to a socket.
SO_ATTACH_BPF = 50


class Program:
    """A loaded BPF program that owns its fd (``close()`` idempotent; a context manager).

    ```py
    from bpfschema.testing import asm
    prog = Program.load(ProgType.SOCKET_FILTER, [asm.mov64(asm.R0, 0), asm.exit_()], name="drop_all")
    prog.attach_socket(sock)
    ```
    """

    def __init__(self, fd: Fd, name: str):
        self._fd = fd
        self.name = name

    @classmethod
    def load(
        cls,
        prog_type: ProgType | int,
        insns: bytes | Iterable[Item],
        *,
        name: str = "",
        license: str = "GPL",
        sleepable: bool = False,
    ) -> Program:
        """Load a program (BPF_PROG_LOAD).

        Args:
            prog_type: the program type (``ProgType.SOCKET_FILTER``, ``XDP``, ``SYSCALL``...).
            insns: encoded instructions, or items for :func:`bpfschema.testing.asm.assemble`.
            name: kernel object name (at most 15 characters).
            license: the license string (GPL-only helpers need a GPL-compatible one).
            sleepable: load with ``BPF_F_SLEEPABLE`` (SYSCALL programs need it; Linux 5.14+).

        Raises:
            VerifierError: the verifier refused the program; ``.log`` holds the verifier's output.
            BpfPermissionError: no privilege (root, or CAP_BPF plus CAP_PERFMON/CAP_NET_ADMIN by program type).
        """
        code = insns if isinstance(insns, bytes) else assemble(insns)
        fd = ops.prog_load(int(prog_type), code, license=license, name=name, flags=F_SLEEPABLE if sleepable else 0)
        return cls(Fd(fd, f"program {name!r}"), name)

    @property
    def fd(self) -> int:
        return self._fd.fileno()

    def fileno(self) -> int:
        return self._fd.fileno()

    def test_run(self, *, data: bytes = b"", ctx: bytes = b"", repeat: int = 0) -> TestRunResult:
        """Run the program in the kernel on ``data``/``ctx`` (BPF_PROG_TEST_RUN), ``repeat`` times.

        SYSCALL programs take only ``ctx`` (and ``repeat=0``); SOCKET_FILTER needs ``data`` of at least 14 bytes.

        Raises:
            NotSupportedError: the program type cannot be test-run (KPROBE, TRACEPOINT...).
            SyscallError: the kernel refused the run (EINVAL: bad sizes for this program type).
        """
        return ops.prog_test_run(self._fd.fileno(), data_in=data, ctx_in=ctx, repeat=repeat)

    def attach_socket(self, sock: socket.socket) -> None:
        """Attach this SOCKET_FILTER program to ``sock`` (``SO_ATTACH_BPF``): it then runs on every packet the
        socket receives (for UDP it sees the datagram from the UDP header on). The socket keeps its own
        reference: closing the program does not detach it."""
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, self._fd.fileno())

    def close(self) -> None:
        self._fd.close()

    def __enter__(self) -> Program:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
