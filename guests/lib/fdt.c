/* Read-only flattened device tree walker (Devicetree Specification v0.4,
 * chapter 5): just enough to find the CPUs, the PSCI conduit and RAM. */
#include "guest.h"

#define FDT_MAGIC 0xd00dfeedU
#define FDT_BEGIN_NODE 1U
#define FDT_END_NODE 2U
#define FDT_PROP 3U
#define FDT_NOP 4U
#define FDT_END 9U
#define MAX_DEPTH 16

/* The blob is big-endian and may sit in Device memory: read bytes. */
static u32 be32(const void *p)
{
    const volatile u8 *b = p;
    return ((u32)b[0] << 24) | ((u32)b[1] << 16) | ((u32)b[2] << 8) | b[3];
}

static u64 read_cells(const u8 *p, u32 cells)
{
    u64 v = 0;
    for (u32 i = 0; i < cells; i++)
        v = (v << 32) | be32(p + 4 * i);
    return v;
}

int fdt_valid(const void *fdt)
{
    return fdt && be32(fdt) == FDT_MAGIC;
}

static int name_is(const char *name, const char *base)
{
    /* "cpu@1" matches base "cpu"; "cpus" does not. */
    size_t n = strlen(base);
    for (size_t i = 0; i < n; i++)
        if (name[i] != base[i])
            return 0;
    return name[n] == '\0' || name[n] == '@';
}

int fdt_parse(const void *fdt, struct platform *out)
{
    if (!fdt_valid(fdt))
        return -1;
    const u8 *base = fdt;
    const u8 *p = base + be32(base + 8);          /* off_dt_struct */
    const char *strings = (const char *)base + be32(base + 12);
    const char *path[MAX_DEPTH];
    u32 addr_cells[MAX_DEPTH], size_cells[MAX_DEPTH];
    int depth = -1;
    /* Per-node scratch for the current /cpus/cpu@ node. */
    int is_cpu = 0;
    u64 cpu_reg = 0;
    int have_reg = 0;

    out->fdt = fdt;
    out->ncpus = 0;
    out->conduit = CONDUIT_NONE;
    out->mem_base = out->mem_size = 0;

    for (;;) {
        u32 tok = be32(p);
        p += 4;
        if (tok == FDT_BEGIN_NODE) {
            const char *name = (const char *)p;
            p += (strlen(name) + 1 + 3) & ~3UL;
            if (++depth >= MAX_DEPTH)
                return -1;
            path[depth] = name;
            /* Defaults from the spec (2.3.5) until the node says otherwise. */
            addr_cells[depth] = 2;
            size_cells[depth] = 1;
            is_cpu = depth == 2 && name_is(path[1], "cpus") && name_is(name, "cpu");
            have_reg = 0;
        } else if (tok == FDT_END_NODE) {
            if (is_cpu && have_reg && depth == 2 && out->ncpus < MAX_CPUS)
                out->mpidr[out->ncpus++] = cpu_reg;
            is_cpu = 0;
            if (--depth < 0)
                break;
        } else if (tok == FDT_PROP) {
            u32 len = be32(p);
            const char *pname = strings + be32(p + 4);
            const u8 *val = p + 8;
            p += 8 + ((len + 3) & ~3U);
            if (depth < 0)
                return -1;
            if (!strcmp(pname, "#address-cells"))
                addr_cells[depth] = be32(val);
            else if (!strcmp(pname, "#size-cells"))
                size_cells[depth] = be32(val);
            if (is_cpu && !strcmp(pname, "reg")) {
                cpu_reg = read_cells(val, addr_cells[1]);
                have_reg = 1;
            }
            if (depth == 1 && name_is(path[1], "psci") && !strcmp(pname, "method")) {
                if (!strcmp((const char *)val, "smc"))
                    out->conduit = CONDUIT_SMC;
                else if (!strcmp((const char *)val, "hvc"))
                    out->conduit = CONDUIT_HVC;
            }
            if (depth == 1 && name_is(path[1], "memory") && !strcmp(pname, "reg") &&
                !out->mem_size) {
                out->mem_base = read_cells(val, addr_cells[0]);
                out->mem_size = read_cells(val + 4 * addr_cells[0], size_cells[0]);
            }
        } else if (tok == FDT_NOP) {
            continue;
        } else if (tok == FDT_END) {
            break;
        } else {
            return -1;
        }
    }
    return 0;
}
