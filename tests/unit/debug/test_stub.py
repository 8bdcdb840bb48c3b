"""The stub against a scripted client on a Unix socket (no gdb): the SMP demo on 4 CPUs."""

import socket
import threading
from pathlib import Path

import pytest

import armvisor
from armvisor.debug.gdbstub import GdbStub
from armvisor.debug.packets import PacketReader, frame
from armvisor.debug.transport import Listener, parse_endpoint

DEMO = Path(__file__).resolve().parents[3] / "guests" / "build" / "smp_demo.elf"
SECONDARY_ENTRY = 0x40202D78      # checked against the ELF below


class Client:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(path)
        self.reader = PacketReader()
        self.pending = []

    def ask(self, data: str) -> str:
        self.sock.sendall(frame(data))
        return self.reply()

    def reply(self) -> str:
        while not self.pending:
            chunk = self.sock.recv(65536)
            assert chunk, "the stub closed the connection"
            self.pending += [p for p in self.reader.feed(chunk) if isinstance(p, bytes)]
        return self.pending.pop(0).decode("latin-1")


def _symbol(name):
    import subprocess
    out = subprocess.run(["aarch64-linux-gnu-nm", str(DEMO)], capture_output=True, text=True).stdout
    return int(next(line.split()[0] for line in out.splitlines() if line.endswith(" " + name)), 16)


@pytest.fixture
def session(tmp_path):
    if not DEMO.exists():
        pytest.skip("needs the guest programs (make -C guests)")
    machine = armvisor.Machine(kernel=str(DEMO), smp=4, memory="256M")
    path = str(tmp_path / "gdb.sock")
    stub = GdbStub(machine, Listener(parse_endpoint(f"unix:{path}")))
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("status", stub.serve(wait=True, timeout=120)))
    thread.start()
    client = None
    for _ in range(100):
        try:
            client = Client(path)
            break
        except OSError:
            threading.Event().wait(0.05)
    yield client, machine, result
    try:
        client.sock.sendall(frame("k"))
    except OSError:
        pass
    thread.join(60)
    assert not thread.is_alive()
    machine.close()


def regs(client):
    raw = bytes.fromhex(client.ask("g"))
    return [int.from_bytes(raw[i * 8:i * 8 + 8], "little") for i in range(33)]


def test_threads_registers_memory_and_stop_replies(session):
    client, machine, _ = session
    assert "vContSupported+" in client.ask("qSupported:multiprocess+;swbreak+")
    assert client.ask("?").startswith("T05thread:1;")
    assert client.ask("qfThreadInfo") == "m1,2,3,4" and client.ask("qsThreadInfo") == "l"
    extra = bytes.fromhex(client.ask("qThreadExtraInfo,2")).decode()
    assert extra == "cpu1 OFF EL1"
    xml = client.ask("qXfer:features:read:target.xml:0,3fff")
    assert xml.startswith("l<?xml") and "org.gnu.gdb.aarch64.fpu" in xml
    pc = regs(client)[32]
    assert pc == machine.cpus[0].regs.pc
    # Memory through CPU 0's translation (MMU off: physical): the DTB's magic.
    assert client.ask("m40000000,4") == "d00dfeed"
    assert client.ask("m10,4").startswith("E")                   # not RAM
    # Registers: x5 and v3 written, read back.
    assert client.ask("P5=efbeadde00000000") == "OK"
    assert client.ask("p5") == "efbeadde00000000"
    assert client.ask("P25=" + "11" * 8 + "22" * 8) == "OK"       # v3 is register 0x25
    assert client.ask("p25") == "11" * 8 + "22" * 8
    assert machine.cpus[0].core.uc.reg_read(armvisor.api.A.UC_ARM64_REG_V3) == int("22" * 8 + "11" * 8, 16)
    assert client.ask("Hg2") == "OK" and client.ask("Hg9").startswith("E")


def test_breakpoints_step_watch_and_interrupt(session):
    client, machine, result = session
    assert _symbol("secondary_entry") == SECONDARY_ENTRY
    before = bytes(machine.memory.read(SECONDARY_ENTRY, 4))
    assert client.ask(f"Z0,{SECONDARY_ENTRY:x},4") == "OK"
    assert machine.memory.read(SECONDARY_ENTRY, 4) == before          # guest memory untouched
    seen = []
    for _ in range(3):
        reply = client.ask("vCont;c")
        assert reply.endswith("swbreak:;"), reply
        thread = int(reply.split("thread:")[1].split(";")[0], 16)
        seen.append(thread)
        assert machine.cpus[thread - 1].regs.pc == SECONDARY_ENTRY
    assert seen == [2, 3, 4]
    # A step moves only the thread that steps.
    pcs = [cpu.regs.pc for cpu in machine.cpus]
    assert client.ask("z0,%x,4" % SECONDARY_ENTRY) == "OK"
    assert client.ask("vCont;s:4;c").startswith("T05thread:4;")
    after = [cpu.regs.pc for cpu in machine.cpus]
    assert after[3] == pcs[3] + 4 and after[:3] == pcs[:3]
    # A write watchpoint on the shared counter: stops before the store, data address given.
    counter = _symbol("demo")
    assert client.ask(f"Z2,{counter:x},8") == "OK"
    for _ in range(4):
        reply = client.ask("vCont;c")
        assert f"watch:{counter:x};" in reply, reply
        cpu = machine.cpus[int(reply.split("thread:")[1].split(";")[0], 16) - 1]
        value = int.from_bytes(machine.memory.read(counter, 8), "little")
        assert client.ask("vCont;s:%x" % (cpu.index + 1)).startswith("T05")   # do the store
        assert int.from_bytes(machine.memory.read(counter, 8), "little") in (value, value + 1)
    assert client.ask(f"z2,{counter:x},8") == "OK"


def test_interrupt_stops_a_running_guest(session):
    client, machine, _ = session
    # CPU 0 spins on `b .` (written by the debugger, as `M`), so the guest never ends.
    assert client.ask("M48000000,4:00000014") == "OK"
    assert client.ask("P20=0000004800000000") == "OK"
    client.sock.sendall(frame("vCont;c"))
    threading.Event().wait(0.3)
    client.sock.sendall(b"\x03")
    assert client.reply().startswith("T02thread:1;")
    assert machine.cpus[0].regs.pc == 0x48000000
    assert machine.instructions > 1000


def monitor(client, command: str) -> str:
    client.sock.sendall(frame("qRcmd," + command.encode().hex()))
    output = bytes.fromhex(client.reply()[1:]).decode()
    assert client.reply() == "OK"
    return output


def test_monitor_and_detach(session):
    client, machine, result = session
    output = monitor(client, "psci")
    assert "cpu0" in output and "ON" in output and "cpu3" in output
    # PCs as symbol+offset, in `psci` and in the events' pc/entry fields.
    assert client.ask(f"Z0,{SECONDARY_ENTRY:x},4") == "OK"
    assert client.ask("vCont;c").startswith("T05thread:2;")
    assert client.ask(f"z0,{SECONDARY_ENTRY:x},4") == "OK"
    psci = monitor(client, "psci").splitlines()
    assert psci[1].split()[1:] == ["cpu1", "ON", "EL1", f"pc={SECONDARY_ENTRY:#x}",
                                   "<secondary_entry>"]
    events = monitor(client, "events 40")
    assert f"pc={SECONDARY_ENTRY:#x}<secondary_entry>" in events, events
    client.sock.sendall(frame("qRcmd," + b"phys 0x40000000 16".hex()))
    assert "d0 0d fe ed" in bytes.fromhex(client.reply()[1:]).decode()
    assert client.reply() == "OK"
    assert client.ask("D") == "OK"
    client.sock.close()
    for _ in range(600):
        if "status" in result:
            break
        threading.Event().wait(0.1)
    assert result.get("status") == 0 and "RESULT: PASS" in machine.console.text
