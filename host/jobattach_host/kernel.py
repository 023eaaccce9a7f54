"""The hashing kernel: the engine's xxh3-128 as a core WebAssembly module with no imports.

Built from the engine crate's own hashing code (``component/kernel``), it computes digests and
nothing else: it is given no function to call, so it can reach nothing but its own memory.
The host reads files straight into that memory (``hashing.py``) and asks for many digests per
call, because one call through wasmtime-py costs about as much as hashing 100 KiB.

Compiled once per process by the engine's ``wasmtime.Engine`` (and cached on disk with the
component). Each :class:`Kernel` is one Store and instance, for one thread at a time; a few
are kept for reuse, since making one zeroes its buffer.
"""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path

import wasmtime

from .component import default_engine
from .errors import AttachmentError

#: The kernel shipped inside this package (built by ``just build``).
KERNEL_PATH = Path(__file__).with_name("kernel.wasm")

#: Bytes of file content a kernel holds at once: small files laid out side by side, or two
#: pieces of a large one (one hashed while the next is read). Large enough that calls cost
#: nothing beside the hashing, small enough that a few threads' worth is little memory.
BUFFER = 16 << 20
#: Files whose digests one call computes at most (those laid out in the buffer together).
SPANS = 1024
_DIGITS = 32  # hex digits per digest


class Kernel:
    """One instance of the kernel: a buffer to read into, and digests of what it holds.

    Not thread-safe; :meth:`take` one for a thread's work and :meth:`give_back` it after.
    """

    @staticmethod
    def take() -> Kernel:
        """An idle kernel, or a new one."""
        with _lock:
            if _idle:
                return _idle.pop()
        return Kernel.new()

    @staticmethod
    def new(memory_limit: int | None = None) -> Kernel:
        """A new kernel; ``memory_limit`` bounds its memory, in bytes."""
        return Kernel(_compiled(), default_engine().wasm_engine, memory_limit)

    def give_back(self) -> None:
        """Keeps this kernel for the next :meth:`take` (at most four, and no more than there
        are cores, so idle memory stays a few buffers); its user must not touch it again."""
        with _lock:
            if len(_idle) < min(4, os.cpu_count() or 1):
                _idle.append(self)

    def __init__(
        self, module: wasmtime.Module, engine: wasmtime.Engine, memory_limit: int | None = None
    ) -> None:
        self.store = wasmtime.Store(engine)
        if memory_limit is not None:
            self.store.set_limits(memory_size=memory_limit)
        try:
            instance = wasmtime.Instance(self.store, module, [])
        except wasmtime.WasmtimeError as e:
            raise AttachmentError(f"the hashing kernel could not start: {e}") from e
        exports = instance.exports(self.store)
        self._digests = _func(exports, "digests")
        self._update = _func(exports, "update")
        self._finish = _func(exports, "finish")
        reserve = _func(exports, "reserve")
        memory = exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        try:
            self._base = int(reserve(self.store, BUFFER + SPANS * (8 + _DIGITS)))
        except (wasmtime.WasmtimeError, wasmtime.Trap) as e:  # memory over its limit
            raise AttachmentError(f"the hashing kernel could not start: {e}") from e
        self._spans = self._base + BUFFER
        self._out = self._spans + SPANS * 8
        # The whole memory as a buffer Python can read files into (it no longer grows).
        address = ctypes.cast(memory.data_ptr(self.store), ctypes.c_void_p).value or 0
        whole = (ctypes.c_ubyte * memory.data_len(self.store)).from_address(address)
        self._memory = memoryview(whole).cast("B")
        #: Where file content goes: ``BUFFER`` bytes.
        self.buffer = self._memory[self._base : self._spans]

    def digests(self, spans: list[tuple[int, int]]) -> list[str]:
        """The digests of ``spans`` of :attr:`buffer` (offset, length), at most ``SPANS``."""
        table = b"".join(
            (self._base + offset).to_bytes(4, "little") + length.to_bytes(4, "little")
            for offset, length in spans
        )
        self._memory[self._spans : self._spans + len(table)] = table
        self._call(self._digests, self._spans, len(spans), self._out)
        text = self._memory[self._out : self._out + _DIGITS * len(spans)].tobytes().decode()
        return [text[i : i + _DIGITS] for i in range(0, len(text), _DIGITS)]

    def update(self, start: int, length: int) -> None:
        """Feeds ``length`` bytes of :attr:`buffer` from ``start`` to the running digest."""
        self._call(self._update, self._base + start, length)

    def finish(self) -> str:
        """The running digest; the next :meth:`update` starts another."""
        self._call(self._finish, self._out)
        return self._memory[self._out : self._out + _DIGITS].tobytes().decode()

    def _call(self, func: wasmtime.Func, *args: int) -> None:
        try:
            func(self.store, *args)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as trap:
            raise AttachmentError(f"the hashing kernel failed: {trap}") from trap


def _func(exports: wasmtime._instance.InstanceExports, name: str) -> wasmtime.Func:
    found = exports[name]
    if not isinstance(found, wasmtime.Func):
        raise AttachmentError(f"the hashing kernel has no function {name}")
    return found


_module: wasmtime.Module | None = None
_idle: list[Kernel] = []
_lock = threading.Lock()


def _compiled() -> wasmtime.Module:
    global _module
    with _lock:
        if _module is None:
            try:
                wasm = KERNEL_PATH.read_bytes()
            except FileNotFoundError:
                raise AttachmentError(
                    f"the hashing kernel is missing at {KERNEL_PATH}; build it with `just build`"
                ) from None
            _module = default_engine().compiled_module(wasm, "kernel")
        return _module
