"""Bad input as a new user types it: one line on stderr, exit code 2, never a traceback or a hang.

Each test runs `python -m armvisor run ...` and, where the input applies to the
hypervisor too, the same with `--hyp` (or through `--vm` / `--config`).
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys

import pytest

from tests.machine.tinyguest import build

BARE_AND_HYP = pytest.mark.parametrize("mode", ["bare", "hyp"])
GiB = 1 << 30


def armvisor(*args, timeout=60):
    """The CLI in a subprocess; arguments may be bytes (argv that is not UTF-8)."""
    argv = [a if isinstance(a, bytes) else str(a) for a in args]
    return subprocess.run([sys.executable, "-m", "armvisor", "run", *argv], capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def assert_one_line_error(proc, *words):
    stderr = proc.stderr.decode("utf-8", "backslashreplace")
    assert proc.returncode == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("armvisor: error: "), stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def with_kernel(mode, kernel, *args):
    """The same options for the bare board or as the one VM of --hyp."""
    return (["--hyp"] if mode == "hyp" else []) + ["--kernel", kernel, *args]


@pytest.fixture(scope="module")
def hello(tmp_path_factory):
    return build(tmp_path_factory.mktemp("hello"), """
    mov w1, #'h'
    putc w1
    system_off
""", "hello")


def write_toml(tmp_path, data: bytes):
    path = tmp_path / "vms.toml"
    path.write_bytes(data)
    return path


# -- 1. --append --------------------------------------------------------------------------

BAD_APPEND = [
    pytest.param(b"console=ttyAMA0 \x01", "U+0001", id="control"),
    pytest.param(b"root=/dev/vda\tquiet", "U+0009", id="tab"),
    pytest.param(b"caf\xe9", "byte 0xe9", id="latin1"),
]


@BARE_AND_HYP
@pytest.mark.parametrize("append, word", BAD_APPEND)
def test_bad_append(hello, mode, append, word):
    assert_one_line_error(armvisor(*with_kernel(mode, hello, b"--append", append)),
                          "append", word)


@pytest.mark.parametrize("append, word", BAD_APPEND)
def test_bad_append_in_vm_option(hello, append, word):
    spec = b"kernel=" + os.fsencode(str(hello)) + b",append=" + append
    assert_one_line_error(armvisor("--hyp", "--vm", spec), "--vm #1", "append", word)


def test_bad_append_in_config_file(hello, tmp_path):
    path = write_toml(tmp_path, f'[[vm]]\nkernel = "{hello}"\nappend = "a\\u0001b"\n'.encode())
    assert_one_line_error(armvisor("--hyp", "--config", path), "append", "U+0001")


def test_utf8_append_is_accepted(hello):
    proc = armvisor("--kernel", hello, "--append", "console=ttyAMA0 name=café")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"h", b"")


# -- 2. --trace ---------------------------------------------------------------------------

@BARE_AND_HYP
@pytest.mark.parametrize("where", ["missing-dir", "not-a-dir"])
def test_trace_in_a_directory_that_cannot_hold_it(hello, tmp_path, mode, where):
    if where == "missing-dir":
        trace = tmp_path / "nope" / "t.json"
    else:                       # writable by nobody, not even root: a file as the directory
        (tmp_path / "file").write_text("")
        trace = tmp_path / "file" / "t.json"
    proc = armvisor(*with_kernel(mode, hello, "--trace", trace))
    assert_one_line_error(proc, "trace", "t.json")
    assert proc.stdout == b""                 # refused before the guest ran


# -- 3. --config --------------------------------------------------------------------------

def test_config_not_utf8(hello, tmp_path):
    path = write_toml(tmp_path, b'[[vm]]\nkernel = "k\xff"\n')
    assert_one_line_error(armvisor("--hyp", "--config", path), "UTF-8", "0xff", "line 2")


def test_config_toml_syntax_error(tmp_path):
    path = write_toml(tmp_path, b'[[vm]\nkernel = "k"\n')
    assert_one_line_error(armvisor("--hyp", "--config", path), "vms.toml", "TOML")


def test_config_nested_too_deeply(tmp_path):
    path = write_toml(tmp_path, b"a = " + b"[" * 100_000)
    assert_one_line_error(armvisor("--hyp", "--config", path), "TOML")


# -- 4. --memory larger than the host can give --------------------------------------------

def host_can_back(size: int) -> bool:
    with open("/proc/meminfo") as handle:
        info = {k: int(v.split()[0]) * 1024 for k, v in
                (line.split(":", 1) for line in handle)}
    return info["MemTotal"] + info.get("SwapTotal", 0) >= size


@BARE_AND_HYP
def test_memory_larger_than_the_host(hello, mode):
    if host_can_back(200 * GiB):
        pytest.skip("this host could back 200 GiB of guest RAM")
    line = assert_one_line_error(armvisor(*with_kernel(mode, hello, "-m", "200G")),
                                 "200 GiB", "MemAvailable")
    assert "available" in line


# -- 5. numbers out of range ----------------------------------------------------------------

@pytest.mark.parametrize("value", [2**63, 2**64 + 5, 10**9 + 1, 0, -1])
def test_slice_out_of_range(hello, value):
    assert_one_line_error(armvisor("--kernel", hello, "--slice", value), "--slice", "1,000,000,000")


@BARE_AND_HYP
@pytest.mark.parametrize("value", ["-1", "nan", "inf", "0"])
def test_timeout_not_a_positive_number(hello, mode, value):
    assert_one_line_error(armvisor(*with_kernel(mode, hello, "--timeout", value)), "--timeout")


@BARE_AND_HYP
def test_negative_smp(hello, mode):
    assert_one_line_error(armvisor(*with_kernel(mode, hello, "--smp", "-1")), "smp")


def test_negative_pcpus(hello):
    assert_one_line_error(armvisor("--hyp", "--kernel", hello, "--pcpus", "-1"), "--pcpus")


@pytest.mark.parametrize("value", ["0", "-1"])
def test_bad_pcpus_next_to_a_config_file(hello, tmp_path, value):
    # --pcpus 0 used to count as "not given" and fall back to the file's pcpus.
    path = write_toml(tmp_path, f'pcpus = 1\n[[vm]]\nkernel = "{hello}"\n'.encode())
    assert_one_line_error(armvisor("--hyp", "--config", path, "--pcpus", value), "--pcpus")


@pytest.mark.parametrize("pcpus", ["0-999999999999", "64"])
def test_pcpu_list_beyond_any_machine(hello, pcpus):
    # The range used to be expanded before any check: a hang, then MemoryError.
    assert_one_line_error(armvisor("--hyp", "--vm", f"kernel={hello},pcpus={pcpus}", timeout=20),
                          "pCPU", "does not exist")


# -- 6. files that are not regular files, or far too big -----------------------------------

@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def special_file(kind, tmp_path, fifo):
    return {"fifo": fifo, "chardev": "/dev/zero", "dir": tmp_path}[kind]


@pytest.mark.parametrize("kind, word", [("fifo", "FIFO"), ("chardev", "character device"),
                                        ("dir", "directory")])
@pytest.mark.parametrize("option", ["--kernel", "--initrd", "--dtb"])
def test_special_files_bare(hello, tmp_path, fifo, option, kind, word):
    path = special_file(kind, tmp_path, fifo)
    args = ["--kernel", path] if option == "--kernel" else ["--kernel", hello, option, path]
    if kind == "dir":                         # click's dir_okay=False answers for the CLI
        word = "directory"
    assert_one_line_error(armvisor(*args, timeout=20), word)


@pytest.mark.parametrize("kind, word", [("fifo", "FIFO"), ("chardev", "character device"),
                                        ("dir", "directory")])
@pytest.mark.parametrize("key", ["kernel", "initrd"])
def test_special_files_in_vm_option(hello, tmp_path, fifo, key, kind, word):
    path = special_file(kind, tmp_path, fifo)
    spec = f"kernel={path}" if key == "kernel" else f"kernel={hello},initrd={path}"
    assert_one_line_error(armvisor("--hyp", "--vm", spec, timeout=20), word, key)


@BARE_AND_HYP
def test_fifo_initrd_with_hyp_shorthand(hello, fifo, mode):
    assert_one_line_error(armvisor(*with_kernel(mode, hello, "--initrd", fifo), timeout=20),
                          "FIFO")


@BARE_AND_HYP
@pytest.mark.parametrize("option", ["--kernel", "--initrd"])
def test_enormous_file_is_refused_before_reading(hello, tmp_path, mode, option):
    huge = tmp_path / "huge.bin"
    with open(huge, "wb") as handle:
        handle.truncate(1 << 40)              # sparse: 1 TiB that takes no disk space
    args = ["--kernel", huge] if option == "--kernel" else ["--kernel", hello, option, huge]
    if mode == "hyp":
        args.insert(0, "--hyp")
    assert_one_line_error(armvisor(*args, "-m", "64M", timeout=20), "1 TiB", "64 MiB")


# -- 7. --dtb that is not a device tree ----------------------------------------------------

def fdt_header(totalsize=0x100, version=17, last_comp=16, magic=0xD00DFEED,
               struct_off=0x38, strings_off=0x60, rsvmap_off=0x28) -> bytes:
    return struct.pack(">10I", magic, totalsize, struct_off, strings_off, rsvmap_off,
                       version, last_comp, 0, 0, 0)


@pytest.mark.parametrize("data, words", [
    pytest.param(b"hello world\n" * 10, ["magic"], id="text"),
    pytest.param(b"\xd0\x0d", ["too short"], id="short"),
    pytest.param(fdt_header(totalsize=1 << 20).ljust(0x100, b"\0"), ["totalsize"], id="totalsize"),
    pytest.param(fdt_header(version=1, last_comp=1).ljust(0x100, b"\0"), ["version"],
                 id="version"),
    pytest.param(fdt_header(struct_off=0x1000).ljust(0x100, b"\0"), ["off_dt_struct"],
                 id="offset"),
    pytest.param(fdt_header().ljust(0x100, b"\xff"), ["corrupt"], id="structure"),
])
def test_dtb_that_is_not_a_device_tree(hello, tmp_path, data, words):
    dtb = tmp_path / "bad.dtb"
    dtb.write_bytes(data)
    assert_one_line_error(armvisor("--kernel", hello, "--dtb", dtb), "bad.dtb", *words)


# -- fuzz ------------------------------------------------------------------------------

FUZZ_SEED = 20240607
FUZZ_RUNS = 16


def random_text(rng: random.Random, size: int) -> bytes:
    """Option text as a user (or a broken script) might type it: mostly printable, some not."""
    alphabet = b"abcKMGT0123456789=,.-_/ " + bytes([0x01, 0x09, 0x0A, 0x7F, 0xC3, 0xA9, 0xFF])
    return bytes(rng.choice(alphabet) for _ in range(size))


def fuzz_case(rng: random.Random, tmp_path, hello, index: int) -> list:
    blob = tmp_path / f"blob{index}"
    blob.write_bytes(rng.randbytes(rng.choice([0, 1, 40, 64, 300, 4096])))
    choice = index % 8
    if choice == 0:
        return ["--kernel", blob, "--timeout", "0.5"]
    if choice == 1:
        return ["--kernel", hello, "--dtb", blob, "--timeout", "0.5"]
    if choice == 2:
        return ["--kernel", hello, "--initrd", blob, "--dumpdtb", tmp_path / "out.dtb"]
    if choice == 3:
        return ["--kernel", hello, b"--append", random_text(rng, 20), "--dumpdtb",
                tmp_path / "out.dtb"]
    if choice == 4:
        return ["--kernel", hello, b"--memory", random_text(rng, 6), "--dumpdtb",
                tmp_path / "out.dtb"]
    if choice == 5:
        return ["--kernel", hello, b"--slice", random_text(rng, 8), "--timeout", "0.5"]
    if choice == 6:
        drive = b"file=" + os.fsencode(str(blob)) + b"," + random_items(rng, DRIVE_KEYS)
        return ["--kernel", hello, b"--drive", drive, "--timeout", "0.5"]
    vm = b"kernel=" + os.fsencode(str(hello)) + b"," + random_items(rng, VM_KEYS)
    return ["--hyp", b"--vm", vm, "--timeout", "0.5"]


DRIVE_KEYS = [b"format", b"readonly", b"if", b"cache"]
VM_KEYS = [b"smp", b"memory", b"append", b"placement", b"pcpus", b"name", b"cpu", b"drive",
           b"initrd"]


def random_items(rng: random.Random, keys: list) -> bytes:
    """key=value items with known keys, so that values get past the syntax to the checks."""
    return b",".join(rng.choice(keys) + b"=" + random_text(rng, rng.randint(0, 6))
                     for _ in range(rng.randint(1, 3)))


def test_fuzz_never_a_traceback_or_a_hang(hello, tmp_path):
    rng = random.Random(FUZZ_SEED)
    for index in range(FUZZ_RUNS):
        args = fuzz_case(rng, tmp_path, hello, index)
        proc = armvisor(*args, timeout=20)
        stderr = proc.stderr.decode("utf-8", "backslashreplace")
        assert "Traceback" not in stderr, (args, stderr)
        # 0 powered off, 2 bad input, 3 the guest crashed, 4 --timeout.
        assert proc.returncode in (0, 2, 3, 4), (args, proc.returncode, stderr)
        if proc.returncode == 2:
            lines = stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("armvisor: error: "), (args, stderr)
