"""GICv3 register offsets, fields and system register encodings.

Every name follows the GICv3 architecture specification (Arm IHI 0069H):
12.2 "AArch64 System register descriptions" (ICC_*), 12.8/12.9 the
Distributor register map and descriptions (GICD_*), 12.10/12.11 the
Redistributor register map and descriptions (GICR_*). Affinity routing is
always on (ARE == 1); the control registers have the layouts of a GIC with
one Security state (GICD_CTLR.DS == 1) and of one with two (DS == 0, the
Security Extensions: `--secure`).
"""

from __future__ import annotations

# --------------------------------------------------------------- INTID space
# IHI0069 2.2 "INTIDs": SGIs 0-15, PPIs 16-31, SPIs 32-1019, 1020-1023 special.
SGI_COUNT = 16
PRIVATE_COUNT = 32                 # SGIs + PPIs: banked per PE in the Redistributor
SPI_BASE = 32
MAX_SPI_LIMIT = 1020               # first special INTID
INTID_SECURE = 1020                # IHI0069 2.2.1: EL3's IAR0/HPPIR0 for a Secure Group 1 HPPI
INTID_NONSECURE = 1021             # ... and a Non-secure Group 1 one
INTID_SPURIOUS = 1023              # IHI0069 2.2.1: "no pending interrupt" from IAR/HPPIR
LPI_BASE = 8192                    # IHI0069 2.2.1: LPIs are INTIDs 8192 and up

# Priority (IHI0069 4.8): the CPU interface implements 5 bits as QEMU's TCG
# GICv3 does for a Cortex-A57 (cpu->gic_pribits = 5), so 5 preemption bits,
# the minimum BPR0 is 7 - 5 = 2 and the minimum BPR1 (Non-secure view) is 3,
# and only ICC_AP0R0/ICC_AP1R0 exist (32 group priorities).
PRIORITY_BITS = 5
PREEMPTION_BITS = 5
PRIORITY_MASK = (0xFF << (8 - PRIORITY_BITS)) & 0xFF      # 0xF8
APR_SHIFT = 8 - PREEMPTION_BITS                            # group priority -> APR bit
MIN_BPR0 = 7 - PREEMPTION_BITS                             # 2
MIN_BPR1 = MIN_BPR0 + 1                                    # 3 (IHI0069 12.2, ICC_BPR1_EL1)
IDLE_PRIORITY = 0xFF                                       # ICC_RPR_EL1 with nothing active

# ------------------------------------------------------- Distributor (12.8)
GICD_CTLR = 0x0000
GICD_TYPER = 0x0004
GICD_IIDR = 0x0008
GICD_TYPER2 = 0x000C
GICD_STATUSR = 0x0010
GICD_SETSPI_NSR = 0x0040
GICD_CLRSPI_NSR = 0x0048
GICD_SETSPI_SR = 0x0050
GICD_CLRSPI_SR = 0x0058
GICD_IGROUPR = 0x0080              # ..0x00FC, 1 bit per INTID
GICD_ISENABLER = 0x0100
GICD_ICENABLER = 0x0180
GICD_ISPENDR = 0x0200
GICD_ICPENDR = 0x0280
GICD_ISACTIVER = 0x0300
GICD_ICACTIVER = 0x0380
GICD_IPRIORITYR = 0x0400           # ..0x07FB, 1 byte per INTID
GICD_ITARGETSR = 0x0800            # ..0x0BFB, RES0 with affinity routing
GICD_ICFGR = 0x0C00                # ..0x0CFF, 2 bits per INTID
GICD_IGRPMODR = 0x0D00             # ..0x0D7C
GICD_NSACR = 0x0E00                # ..0x0EFC
GICD_SGIR = 0x0F00                 # RES0 with affinity routing
GICD_CPENDSGIR = 0x0F10            # ..0x0F1F, RES0 with affinity routing
GICD_SPENDSGIR = 0x0F20            # ..0x0F2F, RES0 with affinity routing
GICD_INMIR = 0x0F80                # ..0x0FFC, RES0 without FEAT_GICv3_NMI
GICD_IROUTER = 0x6000              # + 8 * INTID (SPIs only), 64-bit
GICD_IROUTER_END = 0x7FE0
BITMAP_REGION_SIZE = 0x80          # one bit-per-INTID register family spans 32 words

# GICD_CTLR with DS == 1 (12.9, GICD_CTLR, "When access is Secure, in a system
# that supports one Security state").
GICD_CTLR_ENABLE_GRP0 = 1 << 0
GICD_CTLR_ENABLE_GRP1 = 1 << 1
GICD_CTLR_ARE = 1 << 4             # RAO/WI: this GIC has no legacy (GICv2) mode
GICD_CTLR_DS = 1 << 6              # RAO/WI: one Security state
GICD_CTLR_E1NWF = 1 << 7           # RAZ/WI: no 1-of-N wake-up
GICD_CTLR_RWP = 1 << 31            # register writes take effect at once: always 0
# GICD_CTLR with DS == 0, Secure view (12.9, "When access is Secure, in a system that
# supports two Security states"): a group enable each; both ARE RAO/WI (no legacy
# mode in either state); DS RAZ/WI (IMPLEMENTATION DEFINED whether Secure software
# may set it: QEMU lets it, this model does not, so the two states cannot merge).
GICD_CTLR_ENABLE_GRP1NS = 1 << 1   # the bit DS == 1's EnableGrp1 occupies
GICD_CTLR_ENABLE_GRP1S = 1 << 2
GICD_CTLR_ARE_S = 1 << 4
GICD_CTLR_ARE_NS = 1 << 5
# ... and its Non-secure view ("When access is Non-secure, in a system that supports
# two Security states"): EnableGrp1A at [1] is the Secure view's EnableGrp1NS,
# ARE_NS at [4] its ARE_NS; RWP at [31] (0 here); the rest RES0.
GICD_CTLR_NS_ENABLE_GRP1A = 1 << 1
GICD_CTLR_NS_ARE_NS = 1 << 4

# GICD_TYPER (12.9, GICD_TYPER).
GICD_TYPER_ITLINES_MASK = 0x1F     # ITLinesNumber [4:0] = INTIDs / 32 - 1
GICD_TYPER_CPUNUMBER_SHIFT = 5     # [7:5], 0 when ARE cannot be cleared
GICD_TYPER_SECURITYEXTN = 1 << 10  # 1: two Security states (DS == 0)
GICD_TYPER_MBIS = 1 << 16          # GICD_SETSPI_NSR/CLRSPI_NSR implemented
GICD_TYPER_LPIS = 1 << 17          # 0: no LPIs, no ITS
GICD_TYPER_IDBITS_SHIFT = 19       # [23:19] = INTID bits - 1
GICD_TYPER_A3V = 1 << 24           # Aff3 supported
GICD_TYPER_NO1N = 1 << 25          # 0: 1-of-N SPI routing (IROUTER.IRM) supported
GICD_TYPER_RSS = 1 << 26           # 0: SGI targets with Aff0 0-15 only
INTID_BITS = 16                    # no LPIs: INTIDs fit 16 bits

# GICD_IROUTER<n> (12.9, GICD_IROUTER<n>).
IROUTER_AFF0_MASK = 0xFF
IROUTER_AFF1_SHIFT = 8
IROUTER_AFF2_SHIFT = 16
IROUTER_IRM = 1 << 31              # Interrupt_Routing_Mode: any participating PE
IROUTER_AFF3_SHIFT = 32
IROUTER_AFFINITY_MASK = 0xFF_00FF_FFFF
IROUTER_WRITABLE = IROUTER_AFFINITY_MASK | IROUTER_IRM

# ICFGR: Int_config<x> is bit [2x+1] (1 = edge-triggered); bit [2x] is RES0.
ICFGR_EDGE = 0b10

# IIDR (12.9 GICD_IIDR, 12.11 GICR_IIDR): Implementer 0x43B (Arm), ProductID 0,
# r0p0, as QEMU reports for its emulated GICv3.
GIC_IIDR = 0x0000_043B

# ID registers (12.9/12.11 GICD_PIDR2/GICR_PIDR2; the rest are IMPLEMENTATION
# DEFINED and follow the CoreSight layout). Values are QEMU's: part 0x492
# (Distributor) / 0x493 (Redistributor), JEP106 Arm, ArchRev 3 in PIDR2[7:4].
ID_REGS_BASE = 0xFFD0              # PIDR4..7, PIDR0..3, CIDR0..3, one byte per word
GICD_PIDR2 = 0xFFE8
GICR_PIDR2 = 0xFFE8
PIDR2_ARCHREV_SHIFT = 4
ARCHREV_GICV3 = 3
DIST_ID_BYTES = (0x44, 0x00, 0x00, 0x00, 0x92, 0xB4, 0x3B, 0x00, 0x0D, 0xF0, 0x05, 0xB1)
REDIST_ID_BYTES = (0x44, 0x00, 0x00, 0x00, 0x93, 0xB4, 0x3B, 0x00, 0x0D, 0xF0, 0x05, 0xB1)

# ---------------------------------------------------- Redistributor (12.10)
GICR_FRAME_SIZE = 0x20000          # RD_base (64 KiB) + SGI_base (64 KiB) per PE
GICR_SGI_BASE = 0x10000

# RD_base frame.
GICR_CTLR = 0x0000
GICR_IIDR = 0x0004
GICR_TYPER = 0x0008                # 64-bit
GICR_STATUSR = 0x0010
GICR_WAKER = 0x0014
GICR_MPAMIDR = 0x0018
GICR_PARTIDR = 0x001C
GICR_SETLPIR = 0x0040
GICR_CLRLPIR = 0x0048
GICR_PROPBASER = 0x0070
GICR_PENDBASER = 0x0078
GICR_INVLPIR = 0x00A0
GICR_INVALLR = 0x00B0
GICR_SYNCR = 0x00C0

# GICR_TYPER (12.11, GICR_TYPER).
GICR_TYPER_PLPIS = 1 << 0
GICR_TYPER_LAST = 1 << 4           # the highest-addressed Redistributor of the region
GICR_TYPER_PROCESSOR_NUMBER_SHIFT = 8    # [23:8]
GICR_TYPER_AFFINITY_SHIFT = 32     # [63:32] = Aff3.Aff2.Aff1.Aff0

# GICR_CTLR (12.11, GICR_CTLR): only EnableLPIs is implemented; RWP and UWP read 0.
GICR_CTLR_ENABLE_LPIS = 1 << 0

# GICR_PROPBASER / GICR_PENDBASER (12.11): the LPI configuration table (one
# byte per LPI, from INTID 8192) and the PE's pending table (one bit per INTID).
PROPBASER_IDBITS_MASK = 0x1F               # [4:0] = INTID bits - 1
PROPBASER_ADDRESS_MASK = 0x000F_FFFF_FFFF_F000    # [51:12]
PENDBASER_ADDRESS_MASK = 0x000F_FFFF_FFFF_0000    # [51:16]
PENDBASER_PTZ = 1 << 62                    # write-only: the table is all zero
LPI_CONFIG_ENABLE = 1 << 0                 # LPI configuration byte (IHI0069 5.1.1)
LPI_CONFIG_PRIORITY_MASK = 0xFC            # priority [7:2]; bit 1 RES1
MIN_LPI_INTID_BITS = 14                    # fewer: the largest INTID is below 8192, no LPIs

# GICR_WAKER (12.11, GICR_WAKER).
GICR_WAKER_PROCESSOR_SLEEP = 1 << 1
GICR_WAKER_CHILDREN_ASLEEP = 1 << 2

# SGI_base frame (offsets within it).
GICR_IGROUPR0 = 0x0080
GICR_ISENABLER0 = 0x0100
GICR_ICENABLER0 = 0x0180
GICR_ISPENDR0 = 0x0200
GICR_ICPENDR0 = 0x0280
GICR_ISACTIVER0 = 0x0300
GICR_ICACTIVER0 = 0x0380
GICR_IPRIORITYR = 0x0400           # ..0x041F, 1 byte per INTID 0-31
GICR_ICFGR0 = 0x0C00               # SGIs: always edge, read-only
GICR_ICFGR1 = 0x0C04               # PPIs
GICR_IGRPMODR0 = 0x0D00            # RAZ/WI when DS == 1 and to Non-secure accesses
GICR_NSACR = 0x0E00                # likewise
GICR_INMIR0 = 0x0F80               # RES0 without FEAT_GICv3_NMI
GICR_ICFGR0_VALUE = 0xAAAA_AAAA    # Int_config = 0b10 (edge) for all 16 SGIs

# ------------------------------------------------ CPU interface (12.2, ICC_*)
# (op0, op1, CRn, CRm, op2) of the EL1 registers a guest at EL1 reaches.
ICC_PMR_EL1 = (3, 0, 4, 6, 0)
ICC_IAR0_EL1 = (3, 0, 12, 8, 0)
ICC_EOIR0_EL1 = (3, 0, 12, 8, 1)
ICC_HPPIR0_EL1 = (3, 0, 12, 8, 2)
ICC_BPR0_EL1 = (3, 0, 12, 8, 3)
ICC_AP0R0_EL1 = (3, 0, 12, 8, 4)   # AP0R1-3 (op2 5-7) exist only with > 5 preemption bits
ICC_AP1R0_EL1 = (3, 0, 12, 9, 0)   # AP1R1-3 (op2 1-3) likewise
ICC_DIR_EL1 = (3, 0, 12, 11, 1)
ICC_RPR_EL1 = (3, 0, 12, 11, 3)
ICC_SGI1R_EL1 = (3, 0, 12, 11, 5)
ICC_ASGI1R_EL1 = (3, 0, 12, 11, 6)
ICC_SGI0R_EL1 = (3, 0, 12, 11, 7)
ICC_IAR1_EL1 = (3, 0, 12, 12, 0)
ICC_EOIR1_EL1 = (3, 0, 12, 12, 1)
ICC_HPPIR1_EL1 = (3, 0, 12, 12, 2)
ICC_BPR1_EL1 = (3, 0, 12, 12, 3)
ICC_CTLR_EL1 = (3, 0, 12, 12, 4)
ICC_SRE_EL1 = (3, 0, 12, 12, 5)
ICC_IGRPEN0_EL1 = (3, 0, 12, 12, 6)
ICC_IGRPEN1_EL1 = (3, 0, 12, 12, 7)
# EL3's (12.2.8, 12.2.11, 12.2.17): only code at EL3 reaches them (--secure).
ICC_CTLR_EL3 = (3, 6, 12, 12, 4)
ICC_SRE_EL3 = (3, 6, 12, 12, 5)
ICC_IGRPEN1_EL3 = (3, 6, 12, 12, 7)
EL3_ICC_REGISTERS = (ICC_CTLR_EL3, ICC_SRE_EL3, ICC_IGRPEN1_EL3)

# ICC_CTLR_EL1 (12.2, ICC_CTLR_EL1).
ICC_CTLR_CBPR = 1 << 0             # BPR0 controls preemption for both groups
ICC_CTLR_EOIMODE = 1 << 1          # 1: EOIR drops priority only, DIR deactivates
ICC_CTLR_PRIBITS_SHIFT = 8         # [10:8] = priority bits - 1
ICC_CTLR_IDBITS_SHIFT = 11         # [13:11] 0b000 = 16 INTID bits
ICC_CTLR_SEIS = 1 << 14            # 0: no locally generated SErrors
ICC_CTLR_A3V = 1 << 15             # Aff3 may be non-zero in SGI registers
ICC_CTLR_RSS = 1 << 18             # 0: SGI TargetList covers Aff0 0-15
ICC_CTLR_WRITABLE = ICC_CTLR_CBPR | ICC_CTLR_EOIMODE
ICC_CTLR_FIXED = (ICC_CTLR_A3V | ((PRIORITY_BITS - 1) << ICC_CTLR_PRIBITS_SHIFT)
                  | (0 << ICC_CTLR_IDBITS_SHIFT))
# ICC_CTLR_EL3 (12.2.8): the same read-only fields as ICC_CTLR_EL1, nDS = 0 (the CPU
# interface supports a GIC with DS = 1), and the EL1 controls of each Security state,
# the two ICC_CTLR_EL1 copies' bits. With DS = 1 there is one copy, the Non-secure
# one, and the Secure-state bits and EOImode_EL3 are kept but have nothing to act on.
ICC_CTLR_EL3_CBPR_EL1S = 1 << 0
ICC_CTLR_EL3_CBPR_EL1NS = 1 << 1
ICC_CTLR_EL3_EOIMODE_EL3 = 1 << 2
ICC_CTLR_EL3_EOIMODE_EL1S = 1 << 3
ICC_CTLR_EL3_EOIMODE_EL1NS = 1 << 4
ICC_CTLR_EL3_OWN = 0b10_1101       # CBPR_EL1S, EOImode_EL3, EOImode_EL1S, RM
# ICC_IGRPEN1_EL3 (12.2.17): EnableGrp1NS is ICC_IGRPEN1_EL1's Enable; EnableGrp1S.
ICC_IGRPEN1_EL3_GRP1NS = 1 << 0
ICC_IGRPEN1_EL3_GRP1S = 1 << 1

# ICC_SRE_EL1 (12.2, ICC_SRE_EL1): system register interface always on; IRQ
# and FIQ bypass disabled. The whole register is RAO/WI here, as in QEMU.
ICC_SRE_SRE = 1 << 0
ICC_SRE_DFB = 1 << 1
ICC_SRE_DIB = 1 << 2
ICC_SRE_VALUE = ICC_SRE_SRE | ICC_SRE_DFB | ICC_SRE_DIB
ICC_SRE_EL3_ENABLE = 1 << 3        # ICC_SRE_EL3.Enable: EL2 and EL1 may use their ICC_SRE

ICC_IGRPEN_ENABLE = 1 << 0
ICC_BPR_MASK = 0x7
ICC_INTID_MASK = 0xFF_FFFF         # IAR/EOIR/DIR/HPPIR INTID field [23:0]

# ICC_SGI0R_EL1 / ICC_SGI1R_EL1 / ICC_ASGI1R_EL1 (12.2).
SGIR_TARGETLIST_MASK = 0xFFFF      # [15:0]
SGIR_AFF1_SHIFT = 16               # [23:16]
SGIR_INTID_SHIFT = 24              # [27:24]
SGIR_AFF2_SHIFT = 32               # [39:32]
SGIR_IRM = 1 << 40                 # all PEs except self
SGIR_RS_SHIFT = 44                 # [47:44] RangeSelector
SGIR_AFF3_SHIFT = 48               # [55:48]

# NSACR (12.9 GICD_NSACR<n>, 12.11 GICR_NSACR): NS_access<x>, 2 bits per INTID, how
# far Non-secure software may reach a Secure (Group 0 or Secure Group 1) interrupt.
NSACR_SET_PENDING = 1              # >= 1: ISPENDR, SETSPI_NSR, and its Group 0 SGIs
NSACR_CLEAR_PENDING = 2            # >= 2: also ICPENDR, CLRSPI_NSR, reading ISACTIVER/
                                   # ICACTIVER, and its Secure Group 1 SGIs
NSACR_ROUTING = 3                  # 3: also IROUTER

# Non-secure view of a priority (IHI0069 4.8.6, "Software accesses of interrupt
# priority"): with DS == 0 Non-secure software sees and writes a Non-secure Group 1
# interrupt's priority shifted one bit left, its priorities being the lower half of
# the range (bit 7 set), which Secure interrupts can always preempt.
NS_PRIORITY_BIT = 0x80

# Interrupt groups (IHI0069 2.3.1): Group 0, Secure Group 1 and Non-secure Group 1.
# With one Security state (DS == 1) there are Group 0 and Group 1, which behaves as
# Non-secure Group 1 does (QEMU calls it GICV3_G1NS), so GROUP1 stands for both; a
# Group 1 interrupt is Secure Group 1 when its IGROUPR bit is 0 and its IGRPMODR bit
# 1, which only DS == 0 has (IHI0069 Table 3-1).
GROUP0 = 0
GROUP1 = 1                         # Non-secure Group 1 (DS == 0), Group 1 (DS == 1)
GROUP1S = 2                        # Secure Group 1 (DS == 0 only)
GROUPS = (GROUP0, GROUP1, GROUP1S)

# SCR_EL3 bits the GIC reads (Arm ARM D19.2.117): a PE's Security state below EL3 and
# where physical interrupts go. The GIC needs them with two Security states only.
SCR_EL3_NS = 1 << 0
SCR_EL3_IRQ = 1 << 1
SCR_EL3_FIQ = 1 << 2
