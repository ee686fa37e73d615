/*
 * net_echo: a small virtio-net driver of our own, for dhyve's --net device.
 *
 * It finds the device over PCI (ports 0xCF8/0xCFC), maps its BAR, walks the virtio capability
 * list, negotiates VERSION_1 + MAC, sets up RX (queue 0) and TX (queue 1) with QSIZE entries,
 * routes the device's interrupt line through the IOAPIC to an IDT handler that counts it, and
 * then serves, halting between frames until the device's interrupt wakes it (so the echo only
 * works if interrupts are delivered):
 *   - ARP requests for GUEST_IP, ICMP echo requests (ping) to GUEST_IP,
 *   - UDP datagrams to ECHO_PORT: echoed back byte for byte;
 *   - the UDP datagram "dhyve-net-exit": answered with "bye", then prints the counters and exits 0;
 *   - TCP to ECHO_PORT: a minimal responder for one connection at a time (SYN/ACK, in-order data
 *     echoed back segment by segment, FIN answered with FIN; no retransmission: the peer is a
 *     host stack one hop away). "net: tcp open", "net: tcp closed bytes=N" on stdout.
 * Output: "net: up mac=.. irq=N link=N mtu=N csum=0|1" once ready; at exit "net: done rx=N tx=N
 * irqs=N isr=N partial=N" (partial: frames that arrived with a partial checksum, GUEST_CSUM).
 *
 * Options (any order, before nothing else):
 *   csum          negotiate checksum offload (CSUM, GUEST_CSUM) when the device offers it: TCP
 *                 segments then leave with a partial checksum for the host to complete
 *   ping=A.B.C.D  ARP for the gateway GATEWAY_IP, then send one ICMP echo request to A.B.C.D
 *                 through it; prints "net: ping reply from A.B.C.D" when the answer comes
 *
 * Any other argv[1] selects a hostile mode instead; each breaks the virtio rules one way, then checks that
 * the device reports DEVICE_NEEDS_RESET (status bit 0x40), that a reset clears it, and prints
 * "net: hostile <mode> status=0x.. after-reset=0x..". Exit 0 when the device behaved, 2 if not.
 * Exit 1 on any other failure (no device, feature negotiation refused, ...).
 */
#include "rt.h"

#define GUEST_IP 0x0a000503u   /* 10.0.5.3 */
#define GATEWAY_IP 0x0a000501u /* 10.0.5.1 (passt's gateway; Hermit's default) */
#define ECHO_PORT 7
#define QSIZE 16
#define BUF_SIZE 2048
#define HDR 12
#define IRQ_VECTOR 0x30

typedef volatile uint8_t vu8;
typedef volatile uint16_t vu16;
typedef volatile uint32_t vu32;

static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }
static inline uint32_t inl(uint16_t port) {
  uint32_t v;
  __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static uint32_t pci_read(unsigned dev, unsigned off) {
  outl(0xcf8, 0x80000000u | (dev << 11) | (off & 0xfc));
  return inl(0xcfc);
}

struct desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags, next;
};
struct avail {
  uint16_t flags, idx, ring[QSIZE];
};
struct used_elem {
  uint32_t id, len;
};
struct used {
  uint16_t flags, idx;
  struct used_elem ring[QSIZE];
};
struct queue {
  struct desc desc[QSIZE] __attribute__((aligned(16)));
  struct avail avail __attribute__((aligned(16)));
  struct used used __attribute__((aligned(16)));
  uint16_t last_used;
  vu16 *notify;
};

static struct queue rxq __attribute__((aligned(4096)));
static struct queue txq __attribute__((aligned(4096)));
static uint8_t rxbuf[QSIZE][BUF_SIZE] __attribute__((aligned(4096)));
static uint8_t txbuf[BUF_SIZE] __attribute__((aligned(4096)));
static uint8_t mac[6];
static int csum_offload;       /* CSUM was negotiated: the device completes our checksums */
static uint32_t ping_target;   /* 0: no ping */
static uint8_t gw_mac[6];
static int ping_state;         /* 0 idle, 1 ARP sent, 2 echo sent, 3 answered */

static uint8_t *common, *isr, *devcfg, *notify_base;
static uint32_t notify_mult;

/* ---- interrupts: IDT vector IRQ_VECTOR counts, x2APIC EOI ---- */
struct idt_entry {
  uint16_t off0, sel;
  uint8_t ist, type;
  uint16_t off1;
  uint32_t off2, zero;
};
static struct idt_entry idt[256] __attribute__((aligned(16)));
volatile uint64_t irq_count;
void irq_entry(void);
__asm__(".text\n.globl irq_entry\nirq_entry:\n"
        "  push %rax\n  push %rcx\n  push %rdx\n"
        "  lock incq irq_count(%rip)\n"
        "  mov $0x80b, %ecx\n  xor %eax, %eax\n  xor %edx, %edx\n  wrmsr\n" /* x2APIC EOI */
        "  pop %rdx\n  pop %rcx\n  pop %rax\n  iretq\n");

static uint64_t rdmsr(uint32_t msr) {
  uint32_t lo, hi;
  __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
  return ((uint64_t)hi << 32) | lo;
}
static void wrmsr(uint32_t msr, uint64_t v) {
  __asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

/* Maps the 2 MiB pages at 0xFE000000 (virtio BAR) and 0xFEC00000 (IOAPIC) 1:1, uncached. */
static int map_io(void) {
  return rt_map_device(0xfe000000u) == 0 && rt_map_device(0xfec00000u) == 0 ? 0 : -1;
}

static void setup_irq(unsigned line) {
  uint64_t h = (uint64_t)irq_entry;
  struct idt_entry *e = &idt[IRQ_VECTOR];
  e->off0 = h & 0xffff;
  e->sel = 0x08;
  e->type = 0x8e;
  e->off1 = (h >> 16) & 0xffff;
  e->off2 = h >> 32;
  struct {
    uint16_t limit;
    uint64_t base;
  } __attribute__((packed)) idtr = {sizeof(idt) - 1, (uint64_t)idt};
  __asm__ volatile("lidt %0" ::"m"(idtr));
  wrmsr(0x1b, rdmsr(0x1b) | (1u << 11) | (1u << 10)); /* xAPIC + x2APIC on */
  wrmsr(0x80f, 0x1ff);                                 /* software enable, spurious 0xff */
  vu32 *ioapic = (vu32 *)0xfec00000u;
  ioapic[0] = 0x10 + 2 * line + 1; /* destination: APIC 0 */
  ioapic[4] = 0;
  ioapic[0] = 0x10 + 2 * line; /* vector, fixed, physical, active high, edge, unmasked */
  ioapic[4] = IRQ_VECTOR;
}

/* ---- virtio common configuration ---- */
#define C8(o) (*(vu8 *)(common + (o)))
#define C16(o) (*(vu16 *)(common + (o)))
#define C32(o) (*(vu32 *)(common + (o)))
enum {
  DFSEL = 0, DF = 4, GFSEL = 8, GF = 12, STATUS = 20, QSEL = 22, QSZ = 24, QEN = 28,
  QNOFF = 30, QDESC = 32, QDRV = 40, QDEV = 48
};
enum { ACK = 1, DRV = 2, DRV_OK = 4, FEAT_OK = 8, NEEDS_RESET = 64 };

/* Publishes ring writes, then notifies queue q. */
static void kick(struct queue *vq, uint16_t q) {
  __asm__ volatile("" ::: "memory");
  *vq->notify = q;
}

static void set_addr(unsigned off, const void *p) {
  C32(off) = (uint32_t)(uint64_t)p;
  C32(off + 4) = (uint32_t)((uint64_t)p >> 32);
}

static int setup_queue(unsigned q, struct queue *vq) {
  C16(QSEL) = q;
  if (C16(QSZ) < QSIZE) return -1;
  C16(QSZ) = QSIZE;
  set_addr(QDESC, vq->desc);
  set_addr(QDRV, &vq->avail);
  set_addr(QDEV, &vq->used);
  vq->notify = (vu16 *)(notify_base + C16(QNOFF) * notify_mult);
  C16(QEN) = 1;
  return 0;
}

static int find_device(unsigned *line) {
  for (unsigned dev = 0; dev < 32; dev++) {
    uint32_t id = pci_read(dev, 0);
    if (id != 0x10411af4u) continue;
    uint64_t bar = (pci_read(dev, 0x10) & ~0xfull) | ((uint64_t)pci_read(dev, 0x14) << 32);
    *line = pci_read(dev, 0x3c) & 0xff;
    for (unsigned cap = pci_read(dev, 0x34) & 0xff; cap != 0; cap = (pci_read(dev, cap) >> 8) & 0xff) {
      uint32_t w0 = pci_read(dev, cap);
      if ((w0 & 0xff) != 0x09) continue;
      uint8_t *at = (uint8_t *)(bar + pci_read(dev, cap + 8));
      switch ((w0 >> 24) & 0xff) {
      case 1: common = at; break;
      case 2: notify_base = at; notify_mult = pci_read(dev, cap + 16); break;
      case 3: isr = at; break;
      case 4: devcfg = at; break;
      }
    }
    return common && isr && devcfg && notify_base ? 0 : -1;
  }
  return -1;
}

/* Acknowledge, negotiate VERSION_1 + MAC (+ STATUS, + CSUM/GUEST_CSUM if want_csum), stop before the queues. */
static int negotiate_with(int want_csum) {
  C8(STATUS) = 0;
  C8(STATUS) = ACK;
  C8(STATUS) = ACK | DRV;
  C32(DFSEL) = 0;
  uint32_t lo = C32(DF);
  C32(DFSEL) = 1;
  uint32_t hi = C32(DF);
  if (!(hi & 1) || !(lo & (1u << 5))) return -1;
  C32(GFSEL) = 0;
  uint32_t wanted = (1u << 5) | (1u << 16) | (want_csum ? 3u : 0u);
  C32(GF) = lo & wanted;
  csum_offload = want_csum && (lo & 1u);
  C32(GFSEL) = 1;
  C32(GF) = 1;
  C8(STATUS) = ACK | DRV | FEAT_OK;
  return (C8(STATUS) & FEAT_OK) ? 0 : -1;
}
static int negotiate(void) { return negotiate_with(0); }

/* ---- packets ---- */
static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }
static uint16_t csum(const uint8_t *p, unsigned n) {
  uint32_t s = 0;
  for (unsigned i = 0; i + 1 < n; i += 2) s += be16(p + i);
  if (n & 1) s += p[n - 1] << 8;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)~s;
}

static uint64_t rx_count, tx_count, partial_count;

/*
 * Sleeps until the device moves the used index past `seen`: the interrupt wakes the CPU from hlt.
 * "sti; hlt" takes no interrupt between the two instructions, so a wake-up is never missed.
 */
static void wait_used(struct queue *vq) {
  for (;;) {
    __asm__ volatile("cli" ::: "memory");
    if (*(vu16 *)&vq->used.idx != vq->last_used) break;
    __asm__ volatile("sti; hlt" ::: "memory");
  }
  __asm__ volatile("sti" ::: "memory");
}

/* Sends txbuf[HDR .. HDR+len) and waits until the device has taken it. */
static void send(unsigned len);

/* Sets txbuf's virtio-net header: a partial checksum at csum_start + csum_off, or none (0). */
static void set_tx_hdr(unsigned csum_start, unsigned csum_off) {
  memset(txbuf, 0, HDR);
  if (csum_start == 0) return;
  txbuf[0] = 1; /* NEEDS_CSUM */
  txbuf[6] = csum_start & 0xff;
  txbuf[7] = csum_start >> 8;
  txbuf[8] = csum_off & 0xff;
  txbuf[9] = csum_off >> 8;
}

static void send(unsigned len) {
  uint16_t slot = txq.avail.idx % QSIZE;
  txq.desc[slot].addr = (uint64_t)txbuf;
  txq.desc[slot].len = HDR + len;
  txq.desc[slot].flags = 0;
  txq.avail.ring[slot] = slot;
  __asm__ volatile("" ::: "memory");
  txq.avail.idx++;
  kick(&txq, 1);
  wait_used(&txq);
  txq.last_used++;
  tx_count++;
  set_tx_hdr(0, 0);
}

static void put32(uint8_t *p, uint32_t v) { put16(p, v >> 16); put16(p + 2, v & 0xffff); }
static uint32_t be32(const uint8_t *p) { return (uint32_t)be16(p) << 16 | be16(p + 2); }

/* The one's-complement sum of the IPv4 pseudo header (folded, not inverted). */
static uint16_t pseudo_sum(const uint8_t *ip, uint8_t proto, unsigned l4len) {
  uint32_t s = be16(ip + 12) + be16(ip + 14) + be16(ip + 16) + be16(ip + 18) + proto + l4len;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)s;
}

/* Writes a 20-byte IPv4 header at ip for `total` bytes of protocol `proto` from GUEST_IP to dst. */
static void ip_header(uint8_t *ip, unsigned total, uint8_t proto, uint32_t dst) {
  memset(ip, 0, 20);
  ip[0] = 0x45;
  put16(ip + 2, total);
  put16(ip + 6, 0x4000); /* DF */
  ip[8] = 64;
  ip[9] = proto;
  put32(ip + 12, GUEST_IP);
  put32(ip + 16, dst);
  put16(ip + 10, csum(ip, 20));
}

/* ---- TCP: one connection at a time on ECHO_PORT ---- */
enum { T_LISTEN, T_SYN_RCVD, T_ESTAB, T_LAST_ACK };
enum { F_FIN = 1, F_SYN = 2, F_RST = 4, F_PSH = 8, F_ACK = 16 };
static struct {
  int state;
  uint8_t mac[6];
  uint32_t ip, snd_nxt, rcv_nxt, iss;
  uint16_t port;
  unsigned long bytes;
} tcp;

/* Sends one segment to the peer: flags, our snd_nxt, its rcv_nxt, `len` payload bytes at data. */
static void tcp_send(unsigned flags, const uint8_t *data, unsigned len) {
  uint8_t *o = txbuf + HDR;
  unsigned opt = (flags & F_SYN) ? 4 : 0, tl = 20 + opt + len;
  memcpy(o, tcp.mac, 6);
  memcpy(o + 6, mac, 6);
  put16(o + 12, 0x0800);
  uint8_t *ip = o + 14, *t = ip + 20;
  ip_header(ip, 20 + tl, 6, tcp.ip);
  put16(t, ECHO_PORT);
  put16(t + 2, tcp.port);
  put32(t + 4, tcp.snd_nxt);
  put32(t + 8, tcp.rcv_nxt);
  t[12] = (uint8_t)((20 + opt) / 4) << 4;
  t[13] = (uint8_t)flags;
  put16(t + 14, 8 * 1460); /* window: a few segments in flight */
  put16(t + 16, 0);
  put16(t + 18, 0);
  if (opt) { t[20] = 2; t[21] = 4; put16(t + 22, 1460); } /* MSS */
  if (len) memmove(t + 20 + opt, data, len);
  if (csum_offload) {
    put16(t + 16, pseudo_sum(ip, 6, tl)); /* the device adds the segment's sum */
    set_tx_hdr(34, 16);
  } else {
    uint32_t s = pseudo_sum(ip, 6, tl);
    uint16_t c = csum(t, tl); /* ~sum(segment) */
    s += (uint16_t)~c;
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    put16(t + 16, (uint16_t)~s);
  }
  send(14 + 20 + tl);
}

/* One TCP segment for ECHO_PORT; `f` is the frame, `ip` its IPv4 header, `t` the TCP header. */
static void tcp_input(const uint8_t *f, const uint8_t *ip, const uint8_t *t, unsigned tl) {
  if (tl < 20) return;
  unsigned doff = (t[12] >> 4) * 4, flags = t[13];
  if (doff < 20 || doff > tl) return;
  uint32_t src = be32(ip + 12), seq = be32(t + 4), ack = be32(t + 8);
  uint16_t sport = be16(t);
  const uint8_t *data = t + doff;
  unsigned len = tl - doff;
  int ours = tcp.state != T_LISTEN && src == tcp.ip && sport == tcp.port;
  if (flags & F_RST) {
    if (ours) tcp.state = T_LISTEN;
    return;
  }
  if ((flags & F_SYN) && !(flags & F_ACK)) {
    if (tcp.state != T_LISTEN && !ours) return; /* busy with another peer: let it retry */
    memcpy(tcp.mac, f + 6, 6);
    tcp.ip = src;
    tcp.port = sport;
    tcp.rcv_nxt = seq + 1;
    tcp.iss += 0x10000;
    tcp.snd_nxt = tcp.iss;
    tcp.bytes = 0;
    tcp.state = T_SYN_RCVD;
    tcp_send(F_SYN | F_ACK, 0, 0);
    tcp.snd_nxt = tcp.iss + 1;
    return;
  }
  if (!ours) return;
  if (tcp.state == T_SYN_RCVD) {
    if (!(flags & F_ACK) || ack != tcp.snd_nxt) return;
    tcp.state = T_ESTAB;
    rt_printf("net: tcp open\n");
  }
  if (tcp.state == T_LAST_ACK) {
    if ((flags & F_ACK) && ack == tcp.snd_nxt) {
      tcp.state = T_LISTEN;
      rt_printf("net: tcp closed bytes=%lu\n", tcp.bytes);
    }
    return;
  }
  if (seq != tcp.rcv_nxt) {
    if (len || (flags & F_FIN)) tcp_send(F_ACK, 0, 0); /* out of order: ask again */
    return;
  }
  if (len) {
    tcp.rcv_nxt += len;
    tcp.bytes += len;
    if (!(flags & F_FIN)) {
      tcp_send(F_ACK | F_PSH, data, len);
      tcp.snd_nxt += len;
      return;
    }
    tcp_send(F_ACK | F_PSH, data, len);
    tcp.snd_nxt += len;
  }
  if (flags & F_FIN) {
    tcp.rcv_nxt += 1;
    tcp_send(F_FIN | F_ACK, 0, 0);
    tcp.snd_nxt += 1;
    tcp.state = T_LAST_ACK;
  }
}

/* ---- ping through the gateway ---- */
static void send_arp_request(void) {
  uint8_t *o = txbuf + HDR;
  memset(o, 0xff, 6);
  memcpy(o + 6, mac, 6);
  put16(o + 12, 0x0806);
  put16(o + 14, 1);      /* Ethernet */
  put16(o + 16, 0x0800); /* IPv4 */
  o[18] = 6;
  o[19] = 4;
  put16(o + 20, 1); /* request */
  memcpy(o + 22, mac, 6);
  put32(o + 28, GUEST_IP);
  memset(o + 32, 0, 6);
  put32(o + 38, GATEWAY_IP);
  send(42);
}

static void send_ping(void) {
  uint8_t *o = txbuf + HDR;
  memcpy(o, gw_mac, 6);
  memcpy(o + 6, mac, 6);
  put16(o + 12, 0x0800);
  uint8_t *ip = o + 14, *icmp = ip + 20;
  ip_header(ip, 20 + 16, 1, ping_target);
  memset(icmp, 0, 16);
  icmp[0] = 8;
  put16(icmp + 4, 0x4448); /* id "DH" */
  put16(icmp + 6, 1);
  memcpy(icmp + 8, "dhyve-pi", 8);
  put16(icmp + 2, csum(icmp, 16));
  send(14 + 36);
}

/* Builds the reply in txbuf from a frame; returns its length, 0 for none, -1 to exit. */
static int answer(const uint8_t *f, unsigned n) {
  uint8_t *o = txbuf + HDR;
  if (n < 14) return 0;
  uint16_t type = be16(f + 12);
  memcpy(o, f + 6, 6);
  memcpy(o + 6, mac, 6);
  if (type == 0x0806 && n >= 42 && be16(f + 20) == 1 && be16(f + 38) == (GUEST_IP >> 16) &&
      be16(f + 40) == (GUEST_IP & 0xffff)) {
    memcpy(o + 12, f + 12, 8);
    put16(o + 20, 2);          /* ARP reply */
    memcpy(o + 22, mac, 6);    /* sender: us */
    memcpy(o + 28, f + 38, 4);
    memcpy(o + 32, f + 22, 10); /* target: the asker */
    return 42;
  }
  if (type == 0x0806 && n >= 42 && be16(f + 20) == 2 && be32(f + 28) == GATEWAY_IP && ping_state == 1) {
    memcpy(gw_mac, f + 22, 6);
    ping_state = 2;
    send_ping();
    return 0;
  }
  if (type != 0x0800 || n < 34) return 0;
  const uint8_t *ip = f + 14;
  unsigned ihl = (ip[0] & 0xf) * 4, total = be16(ip + 2);
  if ((ip[0] >> 4) != 4 || ihl < 20 || total < ihl || 14 + total > n) return 0;
  if (be16(ip + 16) != (GUEST_IP >> 16) || be16(ip + 18) != (GUEST_IP & 0xffff)) return 0;
  uint8_t *oip = o + 14;
  memcpy(o + 12, f + 12, 2);
  memcpy(oip, ip, total);
  memcpy(oip + 12, ip + 16, 4);
  memcpy(oip + 16, ip + 12, 4);
  oip[8] = 64;
  uint8_t *l4 = oip + ihl;
  unsigned l4len = total - ihl;
  if (ip[9] == 6 && l4len >= 20 && be16(l4 + 2) == ECHO_PORT) {
    tcp_input(f, ip, ip + ihl, l4len);
    return 0;
  }
  if (ip[9] == 1 && l4len >= 8 && l4[0] == 0 && ping_state == 2 && be32(ip + 12) == ping_target) {
    ping_state = 3;
    rt_printf("net: ping reply from %u.%u.%u.%u\n", ip[12], ip[13], ip[14], ip[15]);
    return 0;
  }
  if (ip[9] == 1 && l4len >= 8 && l4[0] == 8) { /* ICMP echo request */
    l4[0] = 0;
    put16(l4 + 2, 0);
    put16(l4 + 2, csum(l4, l4len));
  } else if (ip[9] == 17 && l4len >= 8 && be16(l4 + 2) == ECHO_PORT) {
    uint16_t sport = be16(l4), dport = be16(l4 + 2);
    unsigned plen = be16(l4 + 4) < 8 ? 0 : be16(l4 + 4) - 8;
    if (plen > l4len - 8) plen = l4len - 8;
    int quit = plen == 14 && memcmp(l4 + 8, "dhyve-net-exit", 14) == 0;
    if (quit) {
      memcpy(l4 + 8, "bye", 3);
      plen = 3;
      total = ihl + 8 + 3;
      put16(oip + 2, total);
    }
    put16(l4, dport);
    put16(l4 + 2, sport);
    put16(l4 + 4, 8 + plen);
    put16(l4 + 6, 0); /* no UDP checksum (allowed over IPv4) */
    put16(oip + 10, 0);
    put16(oip + 10, csum(oip, ihl));
    send(14 + total);
    return quit ? -1 : 0;
  } else {
    return 0;
  }
  put16(oip + 10, 0);
  put16(oip + 10, csum(oip, ihl));
  return 14 + total;
}

static void give_rx(uint16_t d) {
  rxq.avail.ring[rxq.avail.idx % QSIZE] = d;
  __asm__ volatile("" ::: "memory");
  rxq.avail.idx++;
}

static int serve(void) {
  for (;;) {
    wait_used(&rxq);
    struct used_elem e = rxq.used.ring[rxq.last_used % QSIZE];
    rxq.last_used++;
    rx_count++;
    if (e.id < QSIZE && (rxbuf[e.id][0] & 1)) partial_count++; /* NEEDS_CSUM: the host left it to us */
    int r = e.id < QSIZE && e.len > HDR ? answer(rxbuf[e.id] + HDR, e.len - HDR) : 0;
    if (r > 0) send(r);
    give_rx(e.id < QSIZE ? e.id : 0);
    kick(&rxq, 0);
    if (r < 0) return 0;
  }
}

/* ---- hostile modes ---- */
static int expect_reset(const char *mode) {
  uint8_t st = 0;
  for (int i = 0; i < 200000 && !((st = C8(STATUS)) & NEEDS_RESET); i++) rt_pause();
  uint8_t isr_bits = *(vu8 *)isr;
  C8(STATUS) = 0;
  uint8_t after = C8(STATUS);
  rt_printf("net: hostile %s status=0x%x isr=0x%x after-reset=0x%x irqs=%lu\n", mode, st,
            isr_bits, after, (unsigned long)irq_count);
  return (st & NEEDS_RESET) && after == 0 ? 0 : 2;
}

static int hostile(const char *mode) {
  if (strcmp(mode, "bad-status") == 0) {
    C8(STATUS) = 0;
    C8(STATUS) = ACK;
    C8(STATUS) = ACK | DRV_OK; /* skips DRIVER and FEATURES_OK */
    return expect_reset(mode);
  }
  if (negotiate() != 0) return 1;
  if (strcmp(mode, "early-notify") == 0) {
    C16(QSEL) = 1;
    *(vu16 *)(notify_base + notify_mult) = 1; /* queue 1 not set up, DRIVER_OK not set */
    return expect_reset(mode);
  }
  if (strcmp(mode, "ring-outside") == 0) {
    C16(QSEL) = 1;
    C32(QDESC) = 0;
    C32(QDESC + 4) = 0x100; /* 1 TiB: no RAM there */
    set_addr(QDRV, &txq.avail);
    set_addr(QDEV, &txq.used);
    C16(QEN) = 1;
    return expect_reset(mode);
  }
  if (setup_queue(0, &rxq) || setup_queue(1, &txq)) return 1;
  C8(STATUS) = ACK | DRV | FEAT_OK | DRV_OK;
  struct desc *d = txq.desc;
  d[0].addr = (uint64_t)txbuf;
  d[0].len = 64;
  d[0].flags = 0;
  if (strcmp(mode, "loop") == 0) {
    d[0].flags = 1; d[0].next = 1;
    d[1] = d[0]; d[1].next = 0;
  } else if (strcmp(mode, "outside") == 0) {
    d[0].addr = 0xffff0000000ull;
  } else if (strcmp(mode, "huge") == 0) {
    d[0].len = 0xffffffffu;
  } else if (strcmp(mode, "zero") == 0) {
    d[0].len = 0;
  } else if (strcmp(mode, "next-index") == 0) {
    d[0].flags = 1; d[0].next = QSIZE; /* past the queue */
  } else if (strcmp(mode, "head-index") == 0) {
    txq.avail.ring[0] = 1000;
    txq.avail.idx = 1;
    kick(&txq, 1);
    return expect_reset(mode);
  } else if (strcmp(mode, "avail-jump") == 0) {
    txq.avail.idx = 1000; /* more than QSIZE ahead */
    kick(&txq, 1);
    return expect_reset(mode);
  } else {
    rt_printf("net: unknown mode %s\n", mode);
    return 1;
  }
  txq.avail.ring[0] = 0;
  txq.avail.idx = 1;
  kick(&txq, 1);
  return expect_reset(mode);
}

int main(void) {
  unsigned line = 0;
  if (find_device(&line) != 0) {
    rt_printf("net: no virtio-net device\n");
    return 1;
  }
  if (map_io() != 0) {
    rt_printf("net: cannot map the device\n");
    return 1;
  }
  setup_irq(line);
  __asm__ volatile("sti");
  int want_csum = 0, arg = 1;
  for (; arg < rt_argc(); arg++) {
    const char *a = rt_argv(arg);
    if (strcmp(a, "csum") == 0) {
      want_csum = 1;
    } else if (strncmp(a, "ping=", 5) == 0) {
      uint32_t v = 0, part = 0;
      int dots = 0;
      for (const char *p = a + 5;; p++) {
        if (*p >= '0' && *p <= '9') part = part * 10 + (uint32_t)(*p - '0');
        else if (*p == '.' || *p == 0) { v = v << 8 | (part & 0xff); part = 0; if (*p == 0) break; dots++; }
        else return 1;
      }
      if (dots != 3) return 1;
      ping_target = v;
    } else {
      break;
    }
  }
  if (arg < rt_argc()) return hostile(rt_argv(arg));
  if (negotiate_with(want_csum) != 0) {
    rt_printf("net: feature negotiation failed\n");
    return 1;
  }
  for (int i = 0; i < 6; i++) mac[i] = *(vu8 *)(devcfg + i);
  if (setup_queue(0, &rxq) || setup_queue(1, &txq)) {
    rt_printf("net: queue set-up failed\n");
    return 1;
  }
  for (uint16_t i = 0; i < QSIZE; i++) {
    rxq.desc[i].addr = (uint64_t)rxbuf[i];
    rxq.desc[i].len = BUF_SIZE;
    rxq.desc[i].flags = 2; /* device writes */
    give_rx(i);
  }
  kick(&rxq, 0); /* before DRIVER_OK, as Hermit does: an enabled queue may be notified early */
  C8(STATUS) = ACK | DRV | FEAT_OK | DRV_OK;
  if (C8(STATUS) != (ACK | DRV | FEAT_OK | DRV_OK)) {
    rt_printf("net: device refused DRIVER_OK (status 0x%x)\n", C8(STATUS));
    return 1;
  }
  rt_printf("net: up mac=%02x:%02x:%02x:%02x:%02x:%02x irq=%u link=%u mtu=%u csum=%d\n", mac[0], mac[1],
            mac[2], mac[3], mac[4], mac[5], line, *(vu16 *)(devcfg + 6), *(vu16 *)(devcfg + 10),
            csum_offload);
  if (ping_target) {
    ping_state = 1;
    send_arp_request();
  }
  serve();
  uint8_t isr_bits = *(vu8 *)isr;
  rt_printf("net: done rx=%lu tx=%lu irqs=%lu isr=%u partial=%lu\n", (unsigned long)rx_count,
            (unsigned long)tx_count, (unsigned long)irq_count, isr_bits, (unsigned long)partial_count);
  return 0;
}
