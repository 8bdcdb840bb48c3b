import shutil
import subprocess

import fdt
import pytest

from armvisor.devtools import qemu
from armvisor.errors import ArmvisorError
from armvisor.machine import memmap
from armvisor.machine.dtb import BoardDescription, build_dtb

RAM_BASE = 0x4000_0000
RAM_SIZE = 512 << 20


def board(**kw) -> BoardDescription:
    args = dict(cpu_count=4, ram_base=RAM_BASE, ram_size=RAM_SIZE, psci_conduit="hvc")
    args.update(kw)
    return BoardDescription(**args)


def parse(desc: BoardDescription) -> fdt.FDT:
    return fdt.parse_dtb(build_dtb(desc))


def words(tree: fdt.FDT, path: str, name: str) -> list[int]:
    return list(tree.get_property(name, path).data)


def strings(tree: fdt.FDT, path: str, name: str) -> list[str]:
    return list(tree.get_property(name, path).data)


def test_root_and_psci():
    tree = parse(board())
    assert strings(tree, "/", "compatible") == ["linux,dummy-virt"]
    assert strings(tree, "/", "model") == ["linux,dummy-virt"]
    assert words(tree, "/", "#address-cells") == [2]
    assert words(tree, "/", "#size-cells") == [2]
    gic_phandle = words(tree, "/intc@8000000", "phandle")[0]
    assert words(tree, "/", "interrupt-parent") == [gic_phandle]
    assert strings(tree, "/psci", "compatible") == ["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]
    assert words(tree, "/psci", "cpu_suspend") == [0xC4000001]
    assert words(tree, "/psci", "cpu_off") == [0x84000002]
    assert words(tree, "/psci", "cpu_on") == [0xC4000003]
    assert words(tree, "/psci", "migrate") == [0xC4000005]


@pytest.mark.parametrize("conduit", ["smc", "hvc"])
def test_conduit(conduit):
    assert strings(parse(board(psci_conduit=conduit)), "/psci", "method") == [conduit]


def test_bad_descriptions_rejected():
    for kw in (dict(psci_conduit="svc"), dict(cpu_count=0), dict(cpu_count=65),
               dict(virtio_slots=33), dict(initrd=(0x2000, 0x1000))):
        with pytest.raises(ArmvisorError):
            build_dtb(board(**kw))


def test_memory_node():
    tree = parse(board(ram_base=0x4000_0000, ram_size=0x1_2000_0000))
    assert words(tree, "/memory@40000000", "reg") == [0, 0x4000_0000, 1, 0x2000_0000]
    assert strings(tree, "/memory@40000000", "device_type") == ["memory"]


@pytest.mark.parametrize("count", [1, 4, 20, 64])
def test_cpu_nodes(count):
    tree = parse(board(cpu_count=count, cpu_compatible="arm,cortex-a72"))
    assert words(tree, "/cpus", "#address-cells") == [1]
    assert words(tree, "/cpus", "#size-cells") == [0]
    cpus = [n for n in tree.get_node("/cpus").nodes if n.name.startswith("cpu@")]
    assert len(cpus) == count
    phandles = set()
    for i in range(count):
        path = f"/cpus/cpu@{i}"
        reg = words(tree, path, "reg")[0]
        assert reg == ((i // 16) << 8) | (i % 16)
        assert strings(tree, path, "device_type") == ["cpu"]
        assert strings(tree, path, "compatible") == ["arm,cortex-a72"]
        assert tree.exist_property("enable-method", path) == (count > 1)
        if count > 1:
            assert strings(tree, path, "enable-method") == ["psci"]
        phandle = words(tree, path, "phandle")[0]
        # The cpu-map entry for core i points at cpu@i.
        assert words(tree, f"/cpus/cpu-map/socket0/cluster0/core{i}", "cpu") == [phandle]
        phandles.add(phandle)
    assert len(phandles) == count


def test_cpu_regs_of_20_cpus_cross_the_cluster_boundary():
    tree = parse(board(cpu_count=20))
    assert words(tree, "/cpus/cpu@15", "reg") == [0x0F]
    assert words(tree, "/cpus/cpu@16", "reg") == [0x100]
    assert words(tree, "/cpus/cpu@19", "reg") == [0x103]


def test_phandles_follow_qemu_numbering():
    tree = parse(board(cpu_count=4))
    assert words(tree, "/apb-pclk", "phandle") == [0x8000]
    assert words(tree, "/cpus/cpu@0", "phandle") == [0x8004]
    assert words(tree, "/cpus/cpu@3", "phandle") == [0x8001]
    assert words(tree, "/intc@8000000", "phandle") == [0x8005]


def test_gic_timer_and_devices():
    tree = parse(board())
    gic = "/intc@8000000"
    assert strings(tree, gic, "compatible") == ["arm,gic-v3"]
    assert words(tree, gic, "reg") == [0, memmap.GICD_BASE, 0, memmap.GICD_SIZE,
                                       0, memmap.GICR_BASE, 0, memmap.GICR_SIZE]
    assert words(tree, gic, "#interrupt-cells") == [3]
    assert words(tree, gic, "#redistributor-regions") == [1]
    assert tree.exist_property("interrupt-controller", gic)
    assert tree.exist_property("ranges", gic)
    assert not tree.exist_property("interrupts", gic)
    its = gic + "/its@8080000"                     # the ITS, QEMU's its=on
    assert [n.name for n in tree.get_node(gic).nodes] == ["its@8080000"]
    assert strings(tree, its, "compatible") == ["arm,gic-v3-its"]
    assert words(tree, its, "reg") == [0, memmap.GITS_BASE, 0, memmap.GITS_SIZE]
    assert words(tree, its, "#msi-cells") == [1]
    assert tree.exist_property("msi-controller", its)
    assert words(tree, its, "phandle") == [words(tree, gic, "phandle")[0] + 1]
    assert words(tree, "/pcie@10000000", "msi-map") == [0, words(tree, its, "phandle")[0],
                                                        0, 0x10000]
    no_its = parse(board(its=False))
    assert not no_its.get_node(gic).nodes
    assert not no_its.exist_property("msi-map", "/pcie@10000000")
    assert words(tree, "/timer", "interrupts") == [1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4]
    assert tree.exist_property("always-on", "/timer")
    uart = "/pl011@9000000"
    assert strings(tree, uart, "compatible") == ["arm,pl011", "arm,primecell"]
    assert words(tree, uart, "interrupts") == [0, 1, 4]
    clk = words(tree, "/apb-pclk", "phandle")[0]
    assert words(tree, uart, "clocks") == [clk, clk]
    assert strings(tree, uart, "clock-names") == ["uartclk", "apb_pclk"]
    assert words(tree, "/apb-pclk", "clock-frequency") == [24_000_000]
    rtc = "/pl031@9010000"
    assert strings(tree, rtc, "compatible") == ["arm,pl031", "arm,primecell"]
    assert words(tree, rtc, "interrupts") == [0, 2, 4]
    assert words(tree, rtc, "clocks") == [clk]
    assert strings(tree, "/chosen", "stdout-path") == ["/pl011@9000000"]


def test_pmu_node_names_ppi_7_level_high():
    # Linux's arm_pmu finds the PMU and its overflow interrupt (INTID 23) only here.
    tree = parse(board())
    assert strings(tree, "/pmu", "compatible") == ["arm,armv8-pmuv3"]
    assert words(tree, "/pmu", "interrupts") == [1, 7, 4]


def test_maintenance_interrupt_when_asked():
    tree = parse(board(gic_maintenance_irq=True, psci_conduit="smc"))
    assert words(tree, "/intc@8000000", "interrupts") == [1, 9, 4]


def test_virtio_slots():
    tree = parse(board())
    names = [n.name for n in tree.root.nodes if n.name.startswith("virtio_mmio@")]
    assert len(names) == 32
    for i in range(32):
        base = 0x0A00_0000 + i * 0x200
        path = f"/virtio_mmio@{base:x}"
        assert words(tree, path, "reg") == [0, base, 0, 0x200]
        assert words(tree, path, "interrupts") == [0, 16 + i, 1]
        assert tree.exist_property("dma-coherent", path)
    assert not [n for n in parse(board(virtio_slots=0)).root.nodes
                if n.name.startswith("virtio_mmio@")]


def test_flash_pcie_fw_cfg_and_platform_bus():
    tree = parse(board())
    gic = words(tree, "/intc@8000000", "phandle")[0]
    assert strings(tree, "/flash@0", "compatible") == ["cfi-flash"]
    assert words(tree, "/flash@0", "bank-width") == [4]
    assert words(tree, "/flash@0", "reg") == [0, 0, 0, 0x4000000, 0, 0x4000000, 0, 0x4000000]
    assert strings(tree, "/fw-cfg@9020000", "compatible") == ["qemu,fw-cfg-mmio"]
    assert words(tree, "/fw-cfg@9020000", "reg") == [0, 0x9020000, 0, 0x18]
    assert tree.exist_property("dma-coherent", "/fw-cfg@9020000")
    bus = "/platform-bus@c000000"
    assert strings(tree, bus, "compatible") == ["qemu,platform", "simple-bus"]
    assert words(tree, bus, "ranges") == [0, 0, 0xC000000, 0x2000000]
    assert words(tree, bus, "interrupt-parent") == [gic]
    assert not tree.get_node(bus).nodes
    pcie = "/pcie@10000000"
    assert strings(tree, pcie, "compatible") == ["pci-host-ecam-generic"]
    assert strings(tree, pcie, "device_type") == ["pci"]
    assert words(tree, pcie, "reg") == [0x40, 0x10000000, 0, 0x10000000]
    assert words(tree, pcie, "bus-range") == [0, 0xFF]
    assert words(tree, pcie, "linux,pci-domain") == [0]
    assert words(tree, pcie, "#address-cells") == [3]
    assert words(tree, pcie, "ranges") == [
        0x1000000, 0, 0, 0, 0x3EFF0000, 0, 0x10000,
        0x2000000, 0, 0x10000000, 0, 0x10000000, 0, 0x2EFF0000,
        0x3000000, 0x80, 0, 0x80, 0, 0x80, 0]
    assert words(tree, pcie, "msi-map") == [0, gic + 1, 0, 0x10000]    # the ITS
    imap = words(tree, pcie, "interrupt-map")
    assert len(imap) == 16 * 10
    entries = [imap[i:i + 10] for i in range(0, len(imap), 10)]
    assert entries[0] == [0, 0, 0, 1, gic, 0, 0, 0, 3, 4]
    assert entries[5] == [0x800, 0, 0, 2, gic, 0, 0, 0, 5, 4]      # slot 1, INTB -> SPI 5
    assert entries[15] == [0x1800, 0, 0, 4, gic, 0, 0, 0, 5, 4]
    assert words(tree, pcie, "interrupt-map-mask") == [0x1800, 0, 0, 7]


def test_new_nodes_can_be_turned_off():
    tree = parse(board(flash=False, pcie=False, fw_cfg=False, platform_bus=False))
    for path in ("/flash@0", "/pcie@10000000", "/fw-cfg@9020000", "/platform-bus@c000000"):
        assert not tree.exist_node(path)
    assert not parse(board(pmu=False)).exist_node("/pmu")
    tree = parse(board(gic=False, timer=False))
    assert not tree.exist_property("interrupts", "/pmu")
    assert not tree.exist_property("interrupt-map", "/pcie@10000000")
    assert not tree.exist_property("interrupt-parent", "/platform-bus@c000000")


def test_node_order_follows_qemu_blob():
    names = [n.name for n in parse(board(cpu_count=2)).root.nodes]
    names = [n for n in names if not n.startswith("virtio_mmio@")]
    assert names == ["psci", "memory@40000000", "platform-bus@c000000", "fw-cfg@9020000",
                     "pcie@10000000", "pl031@9010000", "pl011@9000000", "pmu", "intc@8000000",
                     "flash@0", "cpus", "timer", "apb-pclk", "chosen"]


def test_without_gic_or_timer():
    tree = parse(board(gic=False, timer=False))
    assert not tree.exist_node("/intc@8000000")
    assert not tree.exist_node("/timer")
    assert not tree.exist_property("interrupt-parent", "/")
    assert not tree.exist_property("interrupts", "/pl011@9000000")


def test_chosen_properties():
    seed = bytes(range(32))
    tree = parse(board(bootargs="console=ttyAMA0 earlycon", initrd=(0x4800_0000, 0x4800_1388),
                       rng_seed=seed, kaslr_seed=0x1122334455667788))
    assert strings(tree, "/chosen", "bootargs") == ["console=ttyAMA0 earlycon"]
    assert words(tree, "/chosen", "linux,initrd-start") == [0x4800_0000]
    assert words(tree, "/chosen", "linux,initrd-end") == [0x4800_1388]
    rng = tree.get_property("rng-seed", "/chosen")
    raw = bytes(rng.data) if isinstance(rng, fdt.PropBytes) else \
        b"".join(w.to_bytes(4, "big") for w in rng.data)
    assert raw == seed
    assert words(tree, "/chosen", "kaslr-seed") == [0x11223344, 0x55667788]


def test_chosen_minimal_and_high_initrd():
    tree = parse(board())
    for name in ("bootargs", "linux,initrd-start", "rng-seed", "kaslr-seed"):
        assert not tree.exist_property(name, "/chosen")
    tree = parse(board(initrd=(0x1_0000_0000, 0x1_0000_1000)))
    assert words(tree, "/chosen", "linux,initrd-start") == [1, 0]
    assert words(tree, "/chosen", "linux,initrd-end") == [1, 0x1000]


def _dtc(blob: bytes, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "board.dtb"
    path.write_bytes(blob)
    return subprocess.run(["dtc", "-I", "dtb", "-O", "dts", str(path)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc not installed")
@pytest.mark.parametrize("count", [1, 4, 64])
def test_dtc_accepts_blob_without_warnings(tmp_path, count):
    desc = board(cpu_count=count, bootargs="console=ttyAMA0", initrd=(0x4800_0000, 0x4810_0000),
                 rng_seed=bytes(32), kaslr_seed=5)
    result = _dtc(build_dtb(desc), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr and "ERROR" not in result.stderr, result.stderr
    assert "pl011@9000000 {" in result.stdout


def _node_paths(tree: fdt.FDT) -> set[str]:
    paths = set()
    for path, nodes, _props in tree.walk():
        for node in nodes:
            paths.add(f"{path.rstrip('/')}/{node.name}")
    return paths


# Nodes QEMU emits that armvisor does not model (see dtb.py).
QEMU_ONLY_NODES = ("/pl061@9030000", "/gpio-keys")


@pytest.mark.skipif(not qemu.available(), reason="QEMU not installed")
@pytest.mark.parametrize("count,virt,secure", [(4, False, False), (20, True, False),
                                              (4, True, True), (2, False, True)])
def test_same_nodes_as_qemu(tmp_path, count, virt, secure):
    # QEMU's default its=on: the ITS under the GIC node, msi-map on pcie.
    machine = "virt,gic-version=3" + (",virtualization=on" if virt else "") + \
        (",secure=on" if secure else "")
    qemu_dtb = tmp_path / "qemu.dtb"
    subprocess.run(qemu.virt_command(machine=f"{machine},dumpdtb={qemu_dtb}", smp=count),
                   capture_output=True, timeout=60, check=True)
    reference = fdt.parse_dtb(qemu_dtb.read_bytes())
    ours = parse(board(cpu_count=count, psci_conduit="smc" if virt else "hvc",
                       gic_maintenance_irq=virt, secure=secure))
    qemu_nodes = {p for p in _node_paths(reference) if not any(q in p for q in QEMU_ONLY_NODES)}
    assert _node_paths(ours) == qemu_nodes
    # Where both have a node, the properties and their values agree, except the random seeds.
    for path in qemu_nodes:
        q_node, o_node = reference.get_node(path), ours.get_node(path)
        q_props = {p.name: p for p in q_node.props if p.name not in ("rng-seed", "kaslr-seed")}
        o_props = {p.name: p for p in o_node.props}
        assert set(q_props) == set(o_props), path
        for name, prop in q_props.items():
            assert list(getattr(prop, "data", [])) == list(getattr(o_props[name], "data", [])), \
                f"{path}:{name}"
