"""The trainer's SIGINT handler restores the previous one exactly, including a process-level (C) handler installed
outside Python, as R does when it embeds Python through reticulate."""
import ctypes
import signal
import sys

import pytest

from biclum import training

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no sigaction on Windows")


def test_interrupt_flag_restores_a_foreign_process_handler():
    libc = ctypes.CDLL(None)
    libc.signal.restype = ctypes.c_void_p
    libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
    python_handler = signal.getsignal(signal.SIGINT)
    try:
        libc.signal(signal.SIGINT, 1)  # SIG_IGN, set below Python (Python's own table does not know)
        handler = ctypes.sizeof(ctypes.c_void_p)  # struct sigaction starts with the handler
        before = training._c_sigint_action()[1].raw[:handler]
        with training._InterruptFlag() as flag:
            assert signal.getsignal(signal.SIGINT) == flag._handle
            assert training._c_sigint_action()[1].raw[:handler] != before  # Python's own C handler meanwhile
        assert training._c_sigint_action()[1].raw[:handler] == before  # the foreign handler is back
        assert signal.getsignal(signal.SIGINT) is python_handler
    finally:
        signal.signal(signal.SIGINT, python_handler)
