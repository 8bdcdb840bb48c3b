"""The GICv3 virtualization interface model (ICH_*_EL2, ICV_*_EL1), without a guest."""

from __future__ import annotations

from armvisor.devices.gic import virtual_interface as v
from armvisor.devices.gic.virtual_interface import VirtualCpuInterface, VirtualInterfaces
from armvisor.devices.timer import GenericTimer, HYP_TIMER_INTID


def lr(intid, state=v.STATE_PENDING, priority=0x80, group=1, hw=None, eoi=False):
    value = intid | (priority << v.LR_PRIORITY_SHIFT) | (state << v.LR_STATE_SHIFT)
    value |= v.LR_GROUP if group else 0
    if hw is not None:
        value |= v.LR_HW | (hw << v.LR_PINTID_SHIFT)
    return value | (v.LR_EOI if eoi else 0)


def enabled(**kw) -> VirtualCpuInterface:
    vif = VirtualCpuInterface(0, **kw)
    vif.ich_write(v.ICH_HCR_EL2, v.HCR_EN)
    vif.icv_write(v.ICV_PMR, 0xFF)
    vif.icv_write(v.ICV_IGRPEN1, 1)
    return vif


def test_shape_is_qemus():
    vif = VirtualCpuInterface(0)
    assert vif.ich_read(v.ICH_VTR_EL2) == 0x90A8_0003      # QEMU 7.2, 4 LRs, 5/5 bits
    assert vif.ich_read(v.ICC_SRE_EL2) == 0xF
    assert vif.ich_read(v.ich_lr(3)) == 0 and vif.ich_read(v.ich_lr(4)) is None
    assert vif.ich_read((3, 4, 12, 8, 1)) is None          # ICH_AP0R1: 5 preemption bits
    assert not vif.ich_write(v.ICH_VTR_EL2, 0)             # read-only
    assert vif.ich_read(v.ICH_ELRSR_EL2) == 0xF
    # VMCR: binary points never below their minimum, priority mask to 5 bits.
    vif.ich_write(v.ICH_VMCR_EL2, 0xFF << v.VMCR_VPMR_SHIFT)
    assert vif.ich_read(v.ICH_VMCR_EL2) == (0xF8 << 24) | (2 << 21) | (3 << 18)


def test_ack_and_eoi_through_the_list_registers():
    changes = []
    vif = enabled(changed=lambda: changes.append(1))
    vif.ich_write(v.ich_lr(1), lr(42))
    assert vif.virq() and not vif.vfiq()
    assert vif.ich_read(v.ICH_ELRSR_EL2) == 0b1101
    assert vif.icv_read(v.ICV_HPPIR1) == 42
    assert vif.icv_read(v.ICV_IAR1) == 42
    assert v.lr_state(vif.lr[1]) == v.STATE_ACTIVE and not vif.virq()
    assert vif.icv_read(v.ICV_RPR) == 0x80
    assert vif.icv_read(v.ICV_IAR1) == v.INTID_SPURIOUS
    vif.icv_write(v.ICV_EOIR1, 42)
    assert v.lr_state(vif.lr[1]) == v.STATE_INVALID and vif.icv_read(v.ICV_RPR) == 0xFF
    assert vif.ich_read(v.ICH_ELRSR_EL2) == 0xF and changes


def test_priority_mask_group_enable_and_en_gate_the_virtual_irq():
    vif = enabled()
    vif.ich_write(v.ich_lr(0), lr(5, priority=0x90))
    vif.icv_write(v.ICV_PMR, 0x90)
    assert not vif.virq()
    vif.icv_write(v.ICV_PMR, 0xA0)
    assert vif.virq()
    vif.icv_write(v.ICV_IGRPEN1, 0)
    assert not vif.virq()
    vif.icv_write(v.ICV_IGRPEN1, 1)
    vif.ich_write(v.ICH_HCR_EL2, 0)
    assert not vif.virq()


def test_group0_is_a_virtual_fiq_with_vfiqen():
    vif = enabled()
    vif.icv_write(v.ICV_IGRPEN0, 1)
    vif.ich_write(v.ich_lr(0), lr(7, group=0))
    assert vif.virq() and not vif.vfiq()
    vif.ich_write(v.ICH_VMCR_EL2, vif.vmcr | v.VMCR_VFIQEN)
    assert vif.vfiq() and not vif.virq()
    assert vif.icv_read(v.ICV_IAR0) == 7


def test_hardware_interrupts_deactivate_the_physical_one():
    deactivated = []
    vif = enabled(deactivate_physical=deactivated.append)
    vif.ich_write(v.ich_lr(0), lr(27, hw=27))
    assert vif.icv_read(v.ICV_IAR1) == 27
    vif.icv_write(v.ICV_EOIR1, 27)
    assert deactivated == [27]


def test_split_eoi_and_the_eoi_count():
    vif = enabled()
    vif.icv_write(v.ICV_CTLR, 2)                            # EOImode: DIR deactivates
    assert vif.icv_read(v.ICV_CTLR) & 2
    vif.ich_write(v.ich_lr(0), lr(9))
    vif.icv_read(v.ICV_IAR1)
    vif.icv_write(v.ICV_EOIR1, 9)
    assert v.lr_state(vif.lr[0]) == v.STATE_ACTIVE          # priority dropped only
    vif.icv_write(v.ICV_DIR, 9)
    assert v.lr_state(vif.lr[0]) == v.STATE_INVALID
    vif.icv_write(v.ICV_DIR, 99)                            # in no LR: counted
    assert vif.ich_read(v.ICH_HCR_EL2) >> v.HCR_EOICOUNT_SHIFT == 1


def test_maintenance_reasons():
    vif = enabled()
    vif.ich_write(v.ICH_HCR_EL2, v.HCR_EN | v.HCR_UIE)
    assert vif.ich_read(v.ICH_MISR_EL2) == v.MISR_U and vif.maintenance()
    vif.ich_write(v.ich_lr(0), lr(1))
    vif.ich_write(v.ich_lr(1), lr(2))
    assert vif.ich_read(v.ICH_MISR_EL2) == 0 and not vif.maintenance()
    vif.ich_write(v.ICH_HCR_EL2, v.HCR_EN | v.HCR_NPIE)
    assert not vif.maintenance()
    for n in (0, 1):
        vif.ich_write(v.ich_lr(n), 0)
    assert vif.ich_read(v.ICH_MISR_EL2) == v.MISR_NP
    vif.ich_write(v.ich_lr(2), lr(3, state=v.STATE_INVALID, eoi=True))
    assert vif.ich_read(v.ICH_EISR_EL2) == 0b100 and vif.ich_read(v.ICH_MISR_EL2) & v.MISR_EOI
    assert vif.ich_read(v.ICH_ELRSR_EL2) == 0b1011
    vif.ich_write(v.ICH_HCR_EL2, v.HCR_EN | v.HCR_VGRP1EIE)
    assert vif.ich_read(v.ICH_MISR_EL2) & v.MISR_VGRP1E
    vif.ich_write(v.ICH_HCR_EL2, v.HCR_VGRP1EIE)            # En off: no interrupt
    assert not vif.maintenance()


def test_the_machine_side_drives_ppi_25_and_traces_list_registers():
    from armvisor.trace import TraceBus
    bus, ppis, lines = TraceBus(), [], []
    seen = []
    bus.subscribe(seen.append)
    vifs = VirtualInterfaces(2, lambda cpu, intid, level: ppis.append((cpu, intid, level)),
                             lambda cpu, intid: None, lines.append, trace=bus)
    vifs[1].ich_write(v.ICH_HCR_EL2, v.HCR_EN | v.HCR_UIE)
    assert ppis == [(1, v.MAINTENANCE_INTID, True)] and lines == [1]
    vifs[1].ich_write(v.ich_lr(0), lr(33))
    vifs[1].ich_write(v.ich_lr(1), lr(34))
    assert ppis[-1] == (1, v.MAINTENANCE_INTID, False)
    written = [e for e in seen if e.kind == "gic.ich_lr"]
    assert [(e.cpu, e.fields["vintid"], e.fields["state"]) for e in written] == \
        [(1, 33, "pending"), (1, 34, "pending")]
    vifs[0].ich_write(v.ICH_HCR_EL2, v.HCR_EN | v.HCR_UIE)
    assert ppis[-1] == (0, v.MAINTENANCE_INTID, True)
    vifs.reset_cpu(0)                                       # CPU_ON: the line falls too
    assert ppis[-1] == (0, v.MAINTENANCE_INTID, False) and vifs[0].hcr == 0
    state = vifs.save_state()
    vifs.reset()
    assert vifs[1].lr[0] == 0
    vifs.restore_state(state)
    assert vifs[1].lr[0] == lr(33)


def test_el2_timer_and_virtual_offset():
    levels = []
    now = [1000]
    timer = GenericTimer(lambda intid, level: levels.append((intid, level)),
                         counter=lambda: now[0])
    assert GenericTimer.is_el2_timer_register((3, 4, 14, 2, 1))
    timer.write((3, 4, 14, 2, 0), 500)                       # CNTHP_TVAL_EL2
    timer.write((3, 4, 14, 2, 1), 1)                         # enable
    assert timer.next_deadline() == 1500
    now[0] = 1500
    timer.update(now[0])
    assert levels == [(HYP_TIMER_INTID, True)]
    assert timer.read((3, 4, 14, 2, 1)) == 0b101
    # The virtual timer compares CNTPCT - CNTVOFF_EL2 with its CVAL.
    timer.set_virtual_offset(1000)
    timer.write((3, 3, 14, 3, 2), 600)                       # CNTV_CVAL_EL0
    timer.write((3, 3, 14, 3, 1), 1)
    assert timer.virt.deadline() == 1600
    assert timer.read((3, 3, 14, 3, 0)) == 100               # TVAL: 600 - (1500 - 1000)
    now[0] = 1600
    timer.update(now[0])
    assert (27, True) in levels
