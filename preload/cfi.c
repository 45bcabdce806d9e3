/*
 * cfi.c - the fast path of stack capture: walking the program's frames
 * with the call frame information of its modules (.eh_frame), one rule
 * per return address, learnt once and kept in a table all threads share.
 *
 * Why not libunwind for every stack: unw_backtrace saves every register,
 * initializes a cursor of a kilobyte, reaches its per-thread cache through
 * a shared library's TLS and only then steps; on the allocation storm that
 * is 60 ns an allocation, half of the program's time under --stacks=all
 * (docs/benchmarks.md, sixth round). The frames of compiled code follow
 * the simplest rules almost everywhere, and libunwind's own fast path
 * (tdep_trace) handles only those: the frame's CFA is RSP or RBP plus a
 * constant, the return address is stored just below the CFA, and RBP is
 * either untouched or saved at a constant offset from the CFA; or, in a
 * frame GCC realigned through its DRAP register, the CFA is the word at
 * RBP minus a constant and the caller's RBP the word at RBP. This file
 * keeps that rule for each return address and walks with two or three
 * loads a frame.
 *
 * A rule is learnt from the module's .eh_frame_hdr, found with glibc's
 * _dl_find_object (lock-free and allocation-free: made for unwinders), by
 * running the FDE's CFA program up to the call. Anything else (no FDE,
 * another DWARF expression, a signal frame, an encoding or augmentation we
 * do not know, a frame that does not move up the stack) makes the walk
 * give up, and the caller takes libunwind's walk for that stack instead:
 * the same frames, slower. Rules that give up are cached too.
 * MLMEM_UNWIND=check does both walks for every stack and logs any
 * difference (test_e2e_capture_cfi_walk_agrees_with_libunwind: C, C++, the
 * trainer and CPython); MLMEM_UNWIND=libunwind turns this file off.
 *
 * The table: 2^16 direct-mapped 64-bit slots indexed by the return
 * address's low 16 bits, each holding the address's high bits and the
 * packed rule, so one relaxed load or store reads or writes a whole entry
 * and threads need no lock. A module unloaded by dlclose empties it.
 *
 * A deep stack's outer frames also come from the thread's last walk (its
 * ring's memo, shim.h): the same return address at the same stack pointer
 * has the same rule, read from a small array in stack order rather than
 * from the table at random. Shallow stacks (under SHIM_CFI_MEMO_FROM
 * frames) never touch it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <string.h>

#include "shim.h"

#define CFI_INDEX_BITS 16
#define CFI_SLOTS (1u << CFI_INDEX_BITS)
#define CFI_TAG_BITS 31 /* return addresses below 2^47: user space without LA57 */
#define CFI_MAX_FRAME (1u << 19) /* a frame larger than this: give up (no rule packs it) */

/* Rule bits, below the tag. */
#define RULE_KNOWN 1u           /* set in every stored rule                 */
#define RULE_GIVE_UP 2u         /* not a simple frame: use libunwind        */
#define RULE_LAST 4u            /* the return address is undefined: outermost */
#define RULE_CFA_RBP 8u         /* CFA = RBP + offset (else RSP + offset)   */
#define RULE_CFA_OFF_SHIFT 4    /* 19 bits: the CFA's offset, 0..2^19-1      */
#define RULE_CFA_AT_RBP (1u << 23) /* a realigned frame (GCC's DRAP): CFA is
                                   the word at RBP - offset, the caller's
                                   RBP the word at RBP                      */
#define RULE_RBP_SHIFT 24       /* 9 bits: RBP saved at CFA + 8 x this (signed);
                                   0: RBP keeps its value                    */
_Static_assert(RULE_RBP_SHIFT + 9 <= 64 - CFI_TAG_BITS, "rule overlaps the tag");

/* x86-64 DWARF register numbers. */
#define DW_RBP 6
#define DW_RSP 7
#define DW_RA 16

#if defined(__x86_64__)

/* ---- reading .eh_frame ------------------------------------------------ */

typedef struct {
    const uint8_t *p, *end;
    int bad; /* a read ran past 'end' or met something unsupported */
} cursor_t;

static uint64_t get_u(cursor_t *c, unsigned n)
{
    if (c->bad || (size_t)(c->end - c->p) < n) {
        c->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    memcpy(&v, c->p, n); /* little-endian host, little-endian data */
    c->p += n;
    return v;
}

static uint64_t get_uleb(cursor_t *c)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        uint8_t b = (uint8_t)get_u(c, 1);
        if (c->bad)
            return 0;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    c->bad = 1;
    return 0;
}

static int64_t get_sleb(cursor_t *c)
{
    int64_t v = 0;
    unsigned shift = 0;
    uint8_t b;
    do {
        if (shift >= 64) {
            c->bad = 1;
            return 0;
        }
        b = (uint8_t)get_u(c, 1);
        if (c->bad)
            return 0;
        v |= (int64_t)(b & 0x7f) << shift;
        shift += 7;
    } while (b & 0x80);
    if (shift < 64 && (b & 0x40))
        v |= -((int64_t)1 << shift);
    return v;
}

/* Skips a DW_FORM_block: a length, then that many bytes. */
static void skip_block(cursor_t *c)
{
    uint64_t n = get_uleb(c);
    if (c->bad || n > (uint64_t)(c->end - c->p))
        c->bad = 1;
    else
        c->p += n;
}

/* A pointer in DWARF exception-header encoding 'enc': absolute or relative
 * to its own address (pcrel); datarel is relative to 'data' (the
 * .eh_frame_hdr). Indirect, text- and function-relative and aligned
 * encodings are not used for what we read: they make the read bad. */
static uintptr_t get_encoded(cursor_t *c, uint8_t enc, uintptr_t data)
{
    if (enc == 0xff) /* DW_EH_PE_omit */
        return 0;
    uintptr_t here = (uintptr_t)c->p, v;
    switch (enc & 0x0f) {
    case 0x00: v = (uintptr_t)get_u(c, 8); break;                 /* absptr */
    case 0x01: v = (uintptr_t)get_uleb(c); break;                 /* uleb128 */
    case 0x02: v = (uintptr_t)get_u(c, 2); break;                 /* udata2 */
    case 0x03: v = (uintptr_t)get_u(c, 4); break;                 /* udata4 */
    case 0x04: v = (uintptr_t)get_u(c, 8); break;                 /* udata8 */
    case 0x09: v = (uintptr_t)get_sleb(c); break;                 /* sleb128 */
    case 0x0a: v = (uintptr_t)(intptr_t)(int16_t)get_u(c, 2); break; /* sdata2 */
    case 0x0b: v = (uintptr_t)(intptr_t)(int32_t)get_u(c, 4); break; /* sdata4 */
    case 0x0c: v = (uintptr_t)get_u(c, 8); break;                 /* sdata8 */
    default: c->bad = 1; return 0;
    }
    switch (enc & 0x70) {
    case 0x00: break;
    case 0x10: v += here; break; /* pcrel */
    case 0x30: v += data; break; /* datarel */
    default: c->bad = 1; return 0;
    }
    if (enc & 0x80) /* indirect */
        c->bad = 1;
    return v;
}

/* The FDE covering 'pc' in the module whose .eh_frame_hdr is 'hdr', found
 * by binary search of the header's sorted table: its start, or NULL. */
static const uint8_t *find_fde(const uint8_t *hdr, uintptr_t pc)
{
    /* version 1, eh_frame_ptr encoding, count encoding, table encoding */
    if (hdr[0] != 1 || hdr[2] != 0x03 || hdr[3] != 0x3b)
        return NULL; /* the table is not udata4 count, datarel sdata4 pairs */
    cursor_t c = {hdr + 4, hdr + 4 + 16, 0};
    get_encoded(&c, hdr[1], (uintptr_t)hdr);
    uint32_t count = (uint32_t)get_u(&c, 4);
    if (c.bad || count == 0)
        return NULL;
    const int32_t *table = (const int32_t *)c.p; /* initial location, FDE */
    uint32_t lo = 0, hi = count; /* the answer is in [lo, hi) */
    if ((uintptr_t)hdr + (intptr_t)table[0] > pc)
        return NULL;
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if ((uintptr_t)hdr + (intptr_t)table[2 * mid] <= pc)
            lo = mid;
        else
            hi = mid;
    }
    return hdr + (intptr_t)table[2 * lo + 1];
}

/* A register's rule, of the three registers a walk needs. */
enum { REG_SAME, REG_UNDEFINED, REG_OFFSET, REG_AT_RBP, REG_OTHER };

typedef struct {
    uint8_t how;
    int64_t off; /* REG_OFFSET: saved at CFA + off */
} reg_rule_t;

typedef struct {
    uint64_t cfa_reg;
    int64_t cfa_off;
    int cfa_expr;   /* CFA_* */
    reg_rule_t rbp, rsp, ra;
} row_t;

typedef struct {
    uint64_t code_align;
    int64_t data_align;
    uint64_t ra_column;
    uint8_t fde_enc;
    int has_aug_data; /* 'z': FDEs carry augmentation data, skipped */
    int signal_frame;
    const uint8_t *insns, *insns_end;
} cie_t;

/* How the CFA is given. */
enum {
    CFA_REG_OFFSET, /* cfa_reg + cfa_off                                   */
    CFA_EXPR,       /* another DWARF expression                            */
    CFA_AT_RBP,     /* the word at RBP + cfa_off: GCC's realigned frames   */
};

/* DW_CFA_def_cfa_expression's block: GCC's realigned frames (a main that
 * aligns its stack for AVX, through the DRAP register) give the CFA as
 * "DW_OP_breg6 OFF; DW_OP_deref", the word at RBP + OFF; libunwind's fast
 * path takes exactly that one (dwarf_stack_aligned), and so do we. */
static int cfa_expression(cursor_t *c, row_t *row)
{
    uint64_t n = get_uleb(c);
    if (c->bad || n > (uint64_t)(c->end - c->p)) {
        c->bad = 1;
        return -1;
    }
    cursor_t e = {c->p, c->p + n, 0};
    c->p += n;
    int64_t off = 0;
    if (get_u(&e, 1) == 0x76 /* DW_OP_breg6 */ && (off = get_sleb(&e), get_u(&e, 1) == 0x06) &&
        !e.bad && e.p == e.end) {
        row->cfa_expr = CFA_AT_RBP;
        row->cfa_off = off;
    } else {
        row->cfa_expr = CFA_EXPR;
    }
    return 0;
}

/* DW_CFA_expression's block for RBP: "DW_OP_breg6 0" is the word at RBP
 * (a realigned frame's saved RBP); anything else is not followed. */
static int rbp_expression(cursor_t *c)
{
    uint64_t n = get_uleb(c);
    if (c->bad || n > (uint64_t)(c->end - c->p)) {
        c->bad = 1;
        return REG_OTHER;
    }
    int at_rbp = n == 2 && c->p[0] == 0x76 && c->p[1] == 0;
    c->p += n;
    return at_rbp ? REG_AT_RBP : REG_OTHER;
}

static reg_rule_t *row_reg(row_t *row, uint64_t reg)
{
    switch (reg) {
    case DW_RBP: return &row->rbp;
    case DW_RSP: return &row->rsp;
    case DW_RA: return &row->ra;
    default: return NULL; /* a register the walk does not need */
    }
}

static int parse_cie(const uint8_t *at, cie_t *cie)
{
    cursor_t c = {at, at + 8, 0};
    uint64_t len = get_u(&c, 4);
    if (c.bad || len == 0 || len == 0xffffffffu)
        return -1;
    c.end = at + 4 + len;
    if (get_u(&c, 4) != 0) /* a CIE's id is 0 in .eh_frame */
        return -1;
    uint8_t version = (uint8_t)get_u(&c, 1);
    if (version != 1 && version != 3)
        return -1;
    const char *aug = (const char *)c.p;
    size_t aug_len = strnlen(aug, (size_t)(c.end - c.p));
    if (aug_len == (size_t)(c.end - c.p))
        return -1;
    c.p += aug_len + 1;
    cie->code_align = get_uleb(&c);
    cie->data_align = get_sleb(&c);
    cie->ra_column = version == 1 ? get_u(&c, 1) : get_uleb(&c);
    cie->fde_enc = 0; /* absptr */
    cie->signal_frame = 0;
    cie->has_aug_data = aug[0] == 'z';
    if (cie->has_aug_data) {
        uint64_t n = get_uleb(&c);
        if (c.bad || n > (uint64_t)(c.end - c.p))
            return -1;
        cursor_t a = {c.p, c.p + n, 0};
        for (const char *s = aug + 1; *s; s++) {
            switch (*s) {
            case 'R': cie->fde_enc = (uint8_t)get_u(&a, 1); break;
            case 'L': get_u(&a, 1); break;
            case 'P': {
                uint8_t enc = (uint8_t)get_u(&a, 1);
                get_encoded(&a, enc & 0x7f, 0); /* skipped; indirect is fine here */
                break;
            }
            case 'S': cie->signal_frame = 1; break;
            default: return -1;
            }
        }
        if (a.bad)
            return -1;
        c.p += n;
    } else if (aug[0] != '\0') {
        return -1;
    }
    if (c.bad || cie->code_align == 0)
        return -1;
    cie->insns = c.p;
    cie->insns_end = c.end;
    return 0;
}

#define CFI_STATE_DEPTH 8

/* Runs the CFA program [c->p, c->end) on 'row' up to the instruction at
 * 'pc' ('loc' is where the program starts). 'initial' is the CIE's row,
 * for DW_CFA_restore; NULL while running the CIE itself. */
static int run_cfa(cursor_t *c, const cie_t *cie, row_t *row, row_t *initial,
                   uintptr_t loc, uintptr_t pc)
{
    row_t saved[CFI_STATE_DEPTH];
    int depth = 0;
    while (c->p < c->end && !c->bad) {
        uint8_t op = (uint8_t)get_u(c, 1);
        uint64_t reg = op & 0x3f, delta;
        int64_t off;
        reg_rule_t *r;
        switch (op >> 6) {
        case 1: /* DW_CFA_advance_loc */
            delta = reg;
            goto advance;
        case 2: /* DW_CFA_offset */
            off = (int64_t)get_uleb(c) * cie->data_align;
            goto set_offset;
        case 3: /* DW_CFA_restore */
            goto restore;
        }
        switch (op) {
        case 0x00: /* nop */
            break;
        case 0x01: /* set_loc */
            loc = get_encoded(c, cie->fde_enc, 0);
            if (loc > pc)
                return 0;
            break;
        case 0x02: delta = get_u(c, 1); goto advance;
        case 0x03: delta = get_u(c, 2); goto advance;
        case 0x04: delta = get_u(c, 4); goto advance;
        case 0x05: /* offset_extended */
            reg = get_uleb(c);
            off = (int64_t)get_uleb(c) * cie->data_align;
            goto set_offset;
        case 0x06: /* restore_extended */
            reg = get_uleb(c);
            goto restore;
        case 0x07: /* undefined */
        case 0x08: /* same_value */
            if ((r = row_reg(row, get_uleb(c))))
                r->how = op == 0x07 ? REG_UNDEFINED : REG_SAME;
            break;
        case 0x09: /* register */
            reg = get_uleb(c);
            get_uleb(c);
            goto set_other;
        case 0x0a: /* remember_state */
            if (depth == CFI_STATE_DEPTH)
                return -1;
            saved[depth++] = *row;
            break;
        case 0x0b: /* restore_state */
            if (depth == 0)
                return -1;
            *row = saved[--depth];
            break;
        case 0x0c: /* def_cfa */
            row->cfa_reg = get_uleb(c);
            row->cfa_off = (int64_t)get_uleb(c);
            row->cfa_expr = CFA_REG_OFFSET;
            break;
        case 0x0d: /* def_cfa_register */
            row->cfa_reg = get_uleb(c);
            row->cfa_expr = CFA_REG_OFFSET;
            break;
        case 0x0e: /* def_cfa_offset */
            row->cfa_off = (int64_t)get_uleb(c);
            break;
        case 0x0f: /* def_cfa_expression */
            cfa_expression(c, row);
            break;
        case 0x10: /* expression */
            reg = get_uleb(c);
            if (reg == DW_RBP) {
                row->rbp.how = (uint8_t)rbp_expression(c);
                break;
            }
            skip_block(c);
            goto set_other;
        case 0x16: /* val_expression */
            reg = get_uleb(c);
            skip_block(c);
            goto set_other;
        case 0x11: /* offset_extended_sf */
            reg = get_uleb(c);
            off = get_sleb(c) * cie->data_align;
            goto set_offset;
        case 0x12: /* def_cfa_sf */
            row->cfa_reg = get_uleb(c);
            row->cfa_off = get_sleb(c) * cie->data_align;
            row->cfa_expr = CFA_REG_OFFSET;
            break;
        case 0x13: /* def_cfa_offset_sf */
            row->cfa_off = get_sleb(c) * cie->data_align;
            break;
        case 0x14: /* val_offset */
        case 0x15: /* val_offset_sf */
            reg = get_uleb(c);
            if (op == 0x14)
                get_uleb(c);
            else
                get_sleb(c);
            goto set_other;
        case 0x2e: /* GNU_args_size: matters to landing pads, not to walks */
            get_uleb(c);
            break;
        case 0x2f: /* GNU_negative_offset_extended */
            reg = get_uleb(c);
            off = -(int64_t)get_uleb(c) * cie->data_align;
            goto set_offset;
        default:
            return -1;
        }
        continue;
    advance:
        loc += delta * cie->code_align;
        if (loc > pc)
            return 0;
        continue;
    set_offset:
        if ((r = row_reg(row, reg))) {
            r->how = REG_OFFSET;
            r->off = off;
        }
        continue;
    set_other: /* a rule the walk does not follow */
        if ((r = row_reg(row, reg)))
            r->how = REG_OTHER;
        continue;
    restore:
        if (!initial)
            return -1;
        if ((r = row_reg(row, reg)))
            *r = *row_reg(initial, reg);
        continue;
    }
    return c->bad ? -1 : 0;
}

/* The rule for the frame whose return address (or, for the innermost,
 * whose call) is at 'pc': RULE_* bits, RULE_GIVE_UP when it is not simple. */
static uint64_t learn_rule(uintptr_t pc)
{
    struct dl_find_object fo;
    if (_dl_find_object((void *)pc, &fo) != 0 || !fo.dlfo_eh_frame)
        return RULE_KNOWN | RULE_GIVE_UP;
    const uint8_t *fde = find_fde(fo.dlfo_eh_frame, pc);
    if (!fde)
        return RULE_KNOWN | RULE_GIVE_UP;

    cursor_t c = {fde, fde + 8, 0};
    uint64_t len = get_u(&c, 4);
    if (c.bad || len == 0 || len == 0xffffffffu)
        return RULE_KNOWN | RULE_GIVE_UP;
    c.end = fde + 4 + len;
    const uint8_t *id_at = c.p;
    uint32_t cie_off = (uint32_t)get_u(&c, 4);
    cie_t cie;
    if (c.bad || cie_off == 0 || parse_cie(id_at - cie_off, &cie) != 0 || cie.signal_frame ||
        cie.ra_column != DW_RA)
        return RULE_KNOWN | RULE_GIVE_UP;
    uintptr_t begin = get_encoded(&c, cie.fde_enc, 0);
    uintptr_t range = get_encoded(&c, cie.fde_enc & 0x0f, 0);
    if (c.bad || pc < begin || pc - begin >= range)
        return RULE_KNOWN | RULE_GIVE_UP;
    if (cie.has_aug_data) {
        uint64_t n = get_uleb(&c);
        if (c.bad || n > (uint64_t)(c.end - c.p))
            return RULE_KNOWN | RULE_GIVE_UP;
        c.p += n;
    }

    row_t row = {DW_RSP, 8, 0, {REG_SAME, 0}, {REG_SAME, 0}, {REG_SAME, 0}};
    cursor_t ci = {cie.insns, cie.insns_end, 0};
    if (run_cfa(&ci, &cie, &row, NULL, begin, (uintptr_t)-1) != 0)
        return RULE_KNOWN | RULE_GIVE_UP;
    row_t initial = row;
    if (run_cfa(&c, &cie, &row, &initial, begin, pc) != 0)
        return RULE_KNOWN | RULE_GIVE_UP;

    if (row.ra.how == REG_UNDEFINED)
        return RULE_KNOWN | RULE_LAST;
    /* What libunwind's fast path takes as an aligned frame. */
    if (row.cfa_expr == CFA_AT_RBP) {
        if (row.rbp.how != REG_AT_RBP || row.ra.how != REG_OFFSET || row.ra.off != -8 ||
            row.rsp.how == REG_OTHER || row.cfa_off >= 0 || -row.cfa_off >= (int64_t)CFI_MAX_FRAME)
            return RULE_KNOWN | RULE_GIVE_UP;
        return RULE_KNOWN | RULE_CFA_AT_RBP | (uint64_t)-row.cfa_off << RULE_CFA_OFF_SHIFT;
    }
    /* What it takes as a standard frame. */
    if (row.cfa_expr != CFA_REG_OFFSET || (row.cfa_reg != DW_RSP && row.cfa_reg != DW_RBP) ||
        row.cfa_off < 0 ||
        row.cfa_off >= (int64_t)CFI_MAX_FRAME || row.ra.how != REG_OFFSET || row.ra.off != -8 ||
        row.rbp.how == REG_OTHER || row.rbp.how == REG_AT_RBP || row.rsp.how == REG_OTHER)
        return RULE_KNOWN | RULE_GIVE_UP;
    uint64_t rule = RULE_KNOWN | (uint64_t)row.cfa_off << RULE_CFA_OFF_SHIFT;
    if (row.cfa_reg == DW_RBP)
        rule |= RULE_CFA_RBP;
    if (row.rbp.how == REG_OFFSET) {
        if (row.rbp.off % 8 != 0 || row.rbp.off == 0 || row.rbp.off < -256 * 8 ||
            row.rbp.off >= 256 * 8)
            return RULE_KNOWN | RULE_GIVE_UP;
        rule |= (uint64_t)((row.rbp.off / 8) & 0x1ff) << RULE_RBP_SHIFT;
    }
    return rule;
}

/* ---- the table and the walk -------------------------------------------- */

static _Atomic uint64_t *rule_table;
/* Bumped each time the table is emptied: a thread's last walk (its memo)
 * written before then may hold rules of unloaded code. */
static _Atomic uint32_t rule_generation;
/* Counted off the common path only: an atomic add a walk cost a third of
 * the walk on the storm. */
static _Atomic uint64_t walks_given_up, walks_checked, walks_differ;

void shim_cfi_init(void)
{
    if (g_shim.config.unwind_mode == SHIM_UNWIND_LIBUNWIND)
        return;
    /* Without the table every walk gives up: libunwind does them all. */
    rule_table = shim_os_mmap(CFI_SLOTS * sizeof(uint64_t));
    if (rule_table)
        SHIM_BENIGN_RACE_SIZED(rule_table, CFI_SLOTS * sizeof(uint64_t), "atomic slots");
}

void shim_cfi_forget(void)
{
    if (!rule_table)
        return;
    for (uint32_t i = 0; i < CFI_SLOTS; i++)
        atomic_store_explicit(&rule_table[i], 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&rule_generation, 1, memory_order_relaxed);
}

static inline uint64_t rule_for(uintptr_t ra)
{
    uint64_t tag = ra >> CFI_INDEX_BITS;
    if (SHIM_UNLIKELY(tag >> CFI_TAG_BITS))
        return RULE_KNOWN | RULE_GIVE_UP;
    _Atomic uint64_t *slot = &rule_table[ra & (CFI_SLOTS - 1)];
    uint64_t v = atomic_load_explicit(slot, memory_order_relaxed);
    if (SHIM_LIKELY(v >> (64 - CFI_TAG_BITS) == tag))
        return v & ((1ull << (64 - CFI_TAG_BITS)) - 1);
    /* A return address: the call is the instruction before it. */
    uint64_t rule = learn_rule(ra - 1);
    atomic_store_explicit(slot, tag << (64 - CFI_TAG_BITS) | rule, memory_order_relaxed);
    return rule;
}

/* A frame must lie above the one it called, and not far (the stack's size):
 * else RBP did not hold what the rule says, and the walk gives up. */
#define FRAME_SPAN (64u << 20)

/* One step up the stack by the frame's rule: 0 on to the caller (now in
 * 'ip', 'sp', 'bp'), 1 at the outermost frame, -1 when the rule gives up
 * or the frame is not where the rule says. */
static inline int step_up(uint64_t rule, uintptr_t *ip, uintptr_t *sp, uintptr_t *bp)
{
    if (SHIM_UNLIKELY(rule & (RULE_GIVE_UP | RULE_LAST)))
        return rule & RULE_GIVE_UP ? -1 : 1;
    uintptr_t off = (rule >> RULE_CFA_OFF_SHIFT) & (CFI_MAX_FRAME - 1), cfa;
    if (SHIM_UNLIKELY(rule & RULE_CFA_AT_RBP)) {
        /* A realigned frame: RBP points into it, at its saved RBP. */
        if (*bp <= *sp || *bp - *sp > FRAME_SPAN)
            return -1;
        cfa = ((const uintptr_t *)(*bp - off))[0];
        if (SHIM_UNLIKELY(cfa <= *sp || cfa - *sp > FRAME_SPAN))
            return -1;
        *bp = ((const uintptr_t *)*bp)[0];
    } else {
        cfa = ((rule & RULE_CFA_RBP) ? *bp : *sp) + off;
        if (SHIM_UNLIKELY(cfa <= *sp || cfa - *sp > FRAME_SPAN))
            return -1;
        int64_t rbp_slot = (int64_t)(rule << (64 - RULE_RBP_SHIFT - 9)) >> (64 - 9);
        if (rbp_slot)
            *bp = ((const uintptr_t *)cfa)[rbp_slot];
    }
    *ip = ((const uintptr_t *)cfa)[-1];
    *sp = cfa;
    return *ip < 0x4000; /* where libunwind's walk stops too */
}

static int give_up(int frame, uintptr_t ip)
{
    if (atomic_fetch_add_explicit(&walks_given_up, 1, memory_order_relaxed) < 10 &&
        g_shim.config.unwind_mode == SHIM_UNWIND_CHECK)
        shim_log("unwind check: the CFI walk gives up at frame %d, return address %p", frame,
                 (void *)ip);
    return -1;
}

/* The shim's own frames below the program's (main_wrapper, under main) are
 * walked through but not kept: they are not the program's code. */
static inline int is_program(uintptr_t ip)
{
    return ip - g_shim.self_start >= g_shim.self_end - g_shim.self_start;
}

/* The walk from the SHIM_CFI_MEMO_FROM-th frame on, with the thread's last
 * walk: a frame's rule comes from there when it holds the same return
 * address at the same stack pointer. Both walks are in stack order, so
 * one cursor moves up the last as this one moves up the stack. Writes
 * this walk's frames as the memo's next last walk. */
static int walk_outer(uintptr_t ip, uintptr_t sp, uintptr_t bp, uintptr_t *out, int max,
                      int frame, shim_cfi_memo_t *memo)
{
    memo->busy = 1;
    atomic_signal_fence(memory_order_seq_cst);
    uint32_t generation = atomic_load_explicit(&rule_generation, memory_order_relaxed);
    unsigned which = memo->last & 1u;
    const shim_cfi_frame_t *last = memo->frames[which];
    uint32_t last_count = memo->generation == generation ? memo->count[which] : 0;
    shim_cfi_frame_t *now = memo->frames[which ^ 1u];
    uint32_t cursor = 0, kept = 0;
    uint64_t reused = 0;
    int n = 0, up = 0;
    while (n < max) {
        out[n] = ip;
        n += is_program(ip);
        while (cursor < last_count && last[cursor].sp < sp)
            cursor++;
        uint64_t rule;
        if (cursor < last_count && last[cursor].sp == sp && last[cursor].ra == ip) {
            rule = last[cursor++].rule;
            reused++;
        } else {
            rule = rule_for(ip);
        }
        if (kept < SHIM_CFI_MEMO_FRAMES)
            now[kept++] = (shim_cfi_frame_t){sp, ip, rule};
        up = step_up(rule, &ip, &sp, &bp);
        if (up != 0)
            break;
    }
    /* Kept even when the walk gives up: the rules hold, that one's too. */
    memo->count[which ^ 1u] = kept;
    memo->last = (uint8_t)(which ^ 1u);
    memo->generation = generation;
    memo->reused += reused;
    atomic_signal_fence(memory_order_seq_cst);
    memo->busy = 0;
    return up < 0 ? give_up(frame + n - 1, ip) : n;
}

int shim_cfi_walk(uintptr_t ip, uintptr_t sp, uintptr_t bp, uintptr_t *out, int max,
                  shim_cfi_memo_t *memo)
{
    if (!rule_table)
        return -1;
    int n = 0;
    for (int step = 0; n < max; step++) {
        /* Deep stacks only: the memo's bookkeeping cost the storm's
         * shallow ones 2.6% under --stacks=all. */
        if (SHIM_UNLIKELY(step == SHIM_CFI_MEMO_FROM) && memo && !memo->busy) {
            int outer = walk_outer(ip, sp, bp, out + n, max - n, n, memo);
            return outer < 0 ? -1 : n + outer;
        }
        out[n] = ip;
        n += is_program(ip);
        int up = step_up(rule_for(ip), &ip, &sp, &bp);
        if (up > 0)
            break;
        if (up < 0)
            return give_up(n - 1, ip);
    }
    return n;
}

void shim_cfi_check(const uintptr_t *fast, int fast_n, const uintptr_t *slow, int slow_n)
{
    atomic_fetch_add_explicit(&walks_checked, 1, memory_order_relaxed);
    if (fast_n == slow_n && memcmp(fast, slow, (size_t)fast_n * sizeof *fast) == 0)
        return;
    uint64_t k = atomic_fetch_add_explicit(&walks_differ, 1, memory_order_relaxed);
    if (k >= 10)
        return;
    int i = 0;
    while (i < fast_n && i < slow_n && fast[i] == slow[i])
        i++;
    shim_log("unwind check: the CFI walk and libunwind differ at frame %d of %d/%d: %p vs %p",
             i, fast_n, slow_n, i < fast_n ? (void *)fast[i] : NULL,
             i < slow_n ? (void *)slow[i] : NULL);
}

void shim_cfi_report(void)
{
    if (g_shim.config.unwind_mode == SHIM_UNWIND_CHECK || g_shim.config.debug)
        shim_log("unwind: %llu stacks given to libunwind by the CFI walk; %llu checked, "
                 "%llu differ",
                 (unsigned long long)atomic_load(&walks_given_up),
                 (unsigned long long)atomic_load(&walks_checked),
                 (unsigned long long)atomic_load(&walks_differ));
}

#else /* !__x86_64__: libunwind walks every stack */

void shim_cfi_init(void)
{
}

void shim_cfi_forget(void)
{
}

/* A frame must lie above the one it called, and not far (the stack's size):
 * else RBP did not hold what the rule says, and the walk gives up. */
#define FRAME_SPAN (64u << 20)

int shim_cfi_walk(uintptr_t ip, uintptr_t sp, uintptr_t bp, uintptr_t *out, int max,
                  shim_cfi_memo_t *memo)
{
    (void)ip, (void)sp, (void)bp, (void)out, (void)max, (void)memo;
    return -1;
}

void shim_cfi_check(const uintptr_t *fast, int fast_n, const uintptr_t *slow, int slow_n)
{
    (void)fast, (void)fast_n, (void)slow, (void)slow_n;
}

void shim_cfi_report(void)
{
}

#endif
