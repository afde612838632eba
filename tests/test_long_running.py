"""A long-running process keeps what its searches free for the next ones (glibc's malloc)."""

from __future__ import annotations

import subprocess
import sys

import pytest

FREED_THEN_KEPT = """
import ctypes, sys
class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Mallinfo2
if sys.argv[1] == "keep":
    from assistant.long_running import keep_freed_memory
    assert keep_freed_memory()
import numpy as np
postings = np.ones(20 << 17)  # 20 MiB, as a common term's shares
del postings
print(libc.mallinfo2().fordblks >> 20)  # MiB freed but kept by malloc
"""


def kept_mib(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", FREED_THEN_KEPT, mode], check=True,
                          capture_output=True, text=True, timeout=60)
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_freed_search_array_is_kept_for_the_next_search_only_when_asked() -> None:
    assert kept_mib("keep") >= 20
    assert kept_mib("plain") < 20  # given back to the system at once
