// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * steer: TCX ingress program on the gateway's LAN interface.
 *
 * TCP from client prefixes to intercepted ports is handed to the proxy's
 * transparent listener with bpf_sk_assign and marked, so that policy routing
 * (fwmark -> table with "local 0.0.0.0/0 dev lo" and "local ::/0 dev lo")
 * delivers it locally: the accepted socket's local address is the original
 * destination, and the later segments of the flow, marked too, reach that
 * socket by the stack's own lookup. Nothing is rewritten, nothing goes
 * through conntrack or NAT.
 *
 * Cost: a fast path reads plain TCP and UDP headers in place (steer), and
 * most packets are decided by the port bitmap alone. The segments of
 * established flows -- steered, bypassed or not from a client -- are
 * answered by a per-CPU flow cache (see flow_cached) instead of a socket
 * lookup and the LPM lookups each; the first segments of a flow, and every
 * SYN, take the full decision, which skips the LPM lookups that settings
 * flags say cannot change the answer (see SETTING_ALL_CLIENTS_V4 and below).
 * Destinations in the bypass maps are forwarded by the kernel untouched.
 * QUIC can be dropped so browsers fall back to TCP, which is steered.
 *
 * steer_lookup, at the end, is the other mechanism ("route" steering,
 * agent/route.go): policy rules select what is delivered locally and this
 * sk_lookup program runs only on listener lookups (SYNs), so the packets of
 * established flows run no BPF at all. One object holds both programs and
 * the maps they share; the agent loads the one its mechanism uses.
 *
 * The map names and layouts are a contract with the Go agent (agent/).
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "parse.h"
#include "reset.h"

/* Map sizes; the agent validates its configuration against the same numbers. */
#define CLIENT_PREFIXES_MAX 1024
#define BYPASS_PREFIXES_MAX 65536

/* intercept_ports is a bitmap of all 65536 ports in 32-bit words. */
#define PORT_WORDS (65536 / 32)

/* The IPv6 family of struct bpf_sk_lookup (linux/socket.h, not vendored). */
#define AF_INET6 10

/* Keys of the listeners map. */
#define LISTENER_IPV4 0
#define LISTENER_IPV6 1

/*
 * Bits of settings.flags. The last four let the program skip an LPM lookup
 * whose answer the agent already knows: every source of the family is a
 * client (a /0 client prefix, the default), or the family has no bypass
 * prefix at all. The agent writes them after the prefix maps, so while a
 * change is applied a packet sees either the old or the new decision.
 */
#define SETTING_FAIL_OPEN (1 << 0)
#define SETTING_DROP_QUIC (1 << 1)
#define SETTING_ALL_CLIENTS_V4 (1 << 2)
#define SETTING_ALL_CLIENTS_V6 (1 << 3)
#define SETTING_BYPASS_V4 (1 << 4) /* bypass_v4 is not empty */
#define SETTING_BYPASS_V6 (1 << 5) /* bypass_v6 is not empty */

struct lpm_v4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct lpm_v6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct runtime_settings {
	/*
	 * Changes with every write of the settings (the agent writes it after
	 * the maps it summarizes), never 0: a flow cache entry is only good for
	 * the generation that made it, so every configuration change is seen by
	 * the next packet of every flow. The flow cache goes by its copy in the
	 * port words (struct port_word), which the agent writes right after the
	 * settings.
	 */
	__u32 gen;
	__u32 mark; /* skb->mark for steered packets: the policy routing's fwmark */
	__u32 flags;
	__u32 ifindex; /* the LAN interface: steer_lookup steers only what arrived on it */
};

/*
 * A word of the intercept_ports bitmap, with a copy of the settings'
 * generation: a segment the flow cache answers needs it, and here it is on
 * the line the port test has just read rather than on the settings' line
 * (one cold line less per segment; the mark it needs is in its flow cache
 * slot). Eight aligned bytes never straddle two lines, wherever the array's
 * values begin. The agent writes every word on every settings write, each
 * whole.
 */
struct port_word {
	__u32 ports; /* port p (host order) is intercepted when bit p % 32 of word p / 32 is set */
	__u32 gen;   /* runtime_settings.gen */
};

/*
 * One result per packet (bar COUNTER_ASSIGN_ERRORS), summed per CPU. The
 * agent exports them as portcullis_datapath_packets_total{result}. The
 * segments the flow cache answers are counted in its slots first (see
 * struct flow_v4): the agent's sum adds them.
 */
enum counter {
	COUNTER_STEERED,             /* SYN assigned to the listener: a new steered flow */
	COUNTER_ESTABLISHED,         /* a local socket owns the flow: marked for local delivery (or a valid SYN cookie ACK, assigned to the listener) */
	COUNTER_BYPASSED,            /* destination in a bypass map: forwarded untouched */
	COUNTER_NO_LISTENER_REFUSED, /* SYN with no listener, fail-closed: reset (or dropped) */
	COUNTER_NO_LISTENER_PASSED,  /* SYN with no listener, fail-open: forwarded untouched */
	COUNTER_ORPHAN_REFUSED,      /* non-SYN no socket owns, fail-closed: reset (or dropped) */
	COUNTER_ORPHAN_PASSED,       /* non-SYN no socket owns, fail-open: forwarded untouched */
	COUNTER_QUIC_DROPPED,        /* UDP to an intercepted port with drop_quic */
	COUNTER_FRAGMENT_DROPPED,    /* first fragment to an intercepted port: cannot be steered */
	COUNTER_NOT_INTERCEPTED,     /* not from a client, not to an intercepted port, not TCP/UDP */
	COUNTER_MALFORMED,           /* truncated or inconsistent headers: left to the kernel */
	COUNTER_ASSIGN_ERRORS,       /* diagnostic: bpf_sk_assign failed (the packet is counted elsewhere too) */
	COUNTER_MAX,
};

/*
 * Never called and never loaded: it only puts enum counter into the object's
 * BTF (inlined uses leave no trace there), so bpf2go generates its values as
 * Go constants and the agent never restates them.
 */
__attribute__((used)) enum counter counter_btf_anchor(enum counter c)
{
	return c;
}

/*
 * The counters and the flow cache are plain arrays with one region per
 * possible CPU, indexed by the CPU the program runs on (the agent multiplies
 * their max_entries by the number of possible CPUs at load). A per-CPU
 * array would do the same with one more load: the address of every
 * element's per-CPU copy comes from a pointer array, whose line for a flow
 * cache slot is one more cold cache line per packet. Only its own CPU
 * writes a region, so nothing is shared or seen half-written (a TC program
 * is not interrupted by another on its CPU).
 */
enum per_cpu_layout {
	/* u64 counters per CPU: 256 bytes, with the counters in the middle, so
	 * that whatever the array's alignment no cache line holds counters of
	 * two CPUs. */
	COUNTER_STRIDE = 32,
	COUNTER_OFFSET = 8,
	/* Flow cache slots per CPU (powers of two). */
	FLOW_CACHE_SLOTS_V4 = 8192,
	FLOW_CACHE_SLOTS_V6 = 4096,
};

__attribute__((used)) enum per_cpu_layout per_cpu_layout_btf_anchor(enum per_cpu_layout l)
{
	return l;
}

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, CLIENT_PREFIXES_MAX);
	__type(key, struct lpm_v4_key);
	__type(value, __u8);
} client_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, CLIENT_PREFIXES_MAX);
	__type(key, struct lpm_v6_key);
	__type(value, __u8);
} client_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, BYPASS_PREFIXES_MAX);
	__type(key, struct lpm_v4_key);
	__type(value, __u8);
} bypass_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, BYPASS_PREFIXES_MAX);
	__type(key, struct lpm_v6_key);
	__type(value, __u8);
} bypass_v6 SEC(".maps");

/*
 * Port p (host order) is intercepted when bit p % 32 of word p / 32 is set.
 * An array lookup is inlined by the verifier into a bounds check and a load
 * of one cache line: the test most packets end at costs no helper call and
 * no hashing. A word is written whole, so a port in both the old and the new
 * set stays set while the agent changes the set.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PORT_WORDS);
	__type(key, __u32);
	__type(value, struct port_word);
} intercept_ports SEC(".maps");

/*
 * The proxy's transparent listening sockets. A socket leaves a sockmap by
 * itself when it is closed, so a stopped proxy reads as "no listener" here
 * and the fail mode applies.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} listeners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct runtime_settings);
} settings SEC(".maps");

_Static_assert(COUNTER_OFFSET + COUNTER_MAX + 8 <= COUNTER_STRIDE, "counters overlap the next CPU's line");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, COUNTER_STRIDE); /* times the possible CPUs */
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/*
 * The flow cache: intercepted TCP flows a local socket was recently found to
 * own, so that the segments of an established steered flow are marked
 * without a socket lookup each (bpf_skc_lookup_tcp takes and drops a
 * reference on a socket the proxy is using on another CPU: most of the
 * program's cost on that path).
 *
 * Direct-mapped and per CPU (see enum per_cpu_layout): a slot is read and
 * written by one CPU only, so it is never seen half-written, and costs an
 * inlined array lookup, a hash of the tuple and a compare. A colliding flow takes the slot over; a miss
 * only means the lookup is done, as it would be without the cache.
 *
 * An entry holds for FLOW_CACHE_TTL jiffies after the socket was found and
 * for the settings generation it was found under. So a configuration change
 * (bypass, clients, ports) applies to the next packet as before, and a
 * socket that is gone (its proxy killed, its flow over) is looked up again,
 * and the fail mode applies, within that time. A SYN never uses the cache
 * and clears its tuple's slot on its CPU: a new flow on an old tuple is
 * decided afresh.
 */
#define FLOW_CACHE_BITS_V4 13 /* log2 FLOW_CACHE_SLOTS_V4 */
#define FLOW_CACHE_BITS_V6 12
_Static_assert(1 << FLOW_CACHE_BITS_V4 == FLOW_CACHE_SLOTS_V4, "flow cache bits");
_Static_assert(1 << FLOW_CACHE_BITS_V6 == FLOW_CACHE_SLOTS_V6, "flow cache bits");
/* 256 jiffies: 1.0 s at CONFIG_HZ=250 (Debian), 0.26 s at 1000, 2.6 s at 100. */
#define FLOW_CACHE_TTL 256

/*
 * A slot is a power of two bytes and the maps are BPF_F_MMAPABLE, whose
 * values start on a page boundary (a plain array's start 8 bytes before a
 * cache line on 6.18): so no slot straddles two cache lines, and a cached
 * segment reads one line of the cache, not two (a quarter of the IPv4 slots
 * and more than half of the IPv6 ones did at 24 and 48 bytes). Nothing maps
 * them; the flag is only for the alignment.
 */
/*
 * A segment the cache answers is counted in its slot's hits, on the line the
 * answer was read from, not in the counters map: that is one cold line less
 * per segment. The hits belong to the slot's result; they move to the
 * counters map when the slot is taken over (remember_flow), and the agent
 * adds the slots' hits to the counters map's (readCounters). A slot cleared
 * by a SYN keeps its hits and its result.
 */
struct flow_v4 {
	__be32 saddr;
	__be32 daddr;
	__u32 ports;   /* the TCP header's first word: source and destination port */
	__u32 checked; /* jiffies (low 32 bits) when the decision was made */
	__u32 gen;     /* the port word's gen then; 0: empty */
	__u32 result;  /* the decision: COUNTER_ESTABLISHED, _BYPASSED or _NOT_INTERCEPTED */
	__u32 mark;    /* runtime_settings.mark then: set on COUNTER_ESTABLISHED */
	__u32 hits;    /* segments answered with result since the slot was taken (moved on overflow) */
};

struct flow_v6 {
	__be32 saddr[4];
	__be32 daddr[4];
	__u32 ports;
	__u32 checked;
	__u32 gen;
	__u32 result;
	__u32 mark;
	__u32 hits;
	__u32 unused[2];
};

_Static_assert(sizeof(struct flow_v4) == 32, "flow_v4 slots share no line");
_Static_assert(sizeof(struct flow_v6) == 64, "flow_v6 slots share no line");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, FLOW_CACHE_SLOTS_V4); /* times the possible CPUs */
	__type(key, __u32);
	__type(value, struct flow_v4);
} flow_cache_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, FLOW_CACHE_SLOTS_V6); /* times the possible CPUs */
	__type(key, __u32);
	__type(value, struct flow_v6);
} flow_cache_v6 SEC(".maps");

static __always_inline void count_n(__u32 c, __u64 packets)
{
	__u32 key = bpf_get_smp_processor_id() * COUNTER_STRIDE + COUNTER_OFFSET + c;
	__u64 *n = bpf_map_lookup_elem(&counters, &key);

	if (n)
		*n += packets;
}

static __always_inline int count(enum counter c, int verdict)
{
	count_n(c, 1);
	return verdict;
}

/* take_slot hands a slot's hits to the counters map before a new flow takes
 * it (or before they overflow). */
static __always_inline void take_slot(__u32 result, __u32 *hits)
{
	if (*hits && result < COUNTER_MAX) {
		count_n(result, *hits);
		*hits = 0;
	}
}

static __always_inline int from_client(const struct flow *f, __u32 flags)
{
	if (f->ipv6) {
		if (flags & SETTING_ALL_CLIENTS_V6)
			return 1;
		struct lpm_v6_key k = {.prefixlen = 128};
		__builtin_memcpy(k.addr, &f->ip.v6.saddr, sizeof(k.addr));
		return bpf_map_lookup_elem(&client_v6, &k) != NULL;
	}
	if (flags & SETTING_ALL_CLIENTS_V4)
		return 1;
	struct lpm_v4_key k = {.prefixlen = 32};
	__builtin_memcpy(k.addr, &f->ip.v4.saddr, sizeof(k.addr));
	return bpf_map_lookup_elem(&client_v4, &k) != NULL;
}

static __always_inline int to_bypassed(const struct flow *f, __u32 flags)
{
	if (f->ipv6) {
		if (!(flags & SETTING_BYPASS_V6))
			return 0;
		struct lpm_v6_key k = {.prefixlen = 128};
		__builtin_memcpy(k.addr, &f->ip.v6.daddr, sizeof(k.addr));
		return bpf_map_lookup_elem(&bypass_v6, &k) != NULL;
	}
	if (!(flags & SETTING_BYPASS_V4))
		return 0;
	struct lpm_v4_key k = {.prefixlen = 32};
	__builtin_memcpy(k.addr, &f->ip.v4.daddr, sizeof(k.addr));
	return bpf_map_lookup_elem(&bypass_v4, &k) != NULL;
}

/* intercepting returns the port word of port (network order) if the port
 * is intercepted, else NULL. */
static __always_inline const struct port_word *intercepting(__be16 port)
{
	__u32 p = bpf_ntohs(port);
	__u32 key = p / 32;
	const struct port_word *w = bpf_map_lookup_elem(&intercept_ports, &key);

	if (w && (w->ports >> (p % 32)) & 1)
		return w;
	return NULL;
}

/* socket_of looks the flow up the way the stack would on delivery:
 * established, request (SYN_RECV) and TIME_WAIT sockets, then listeners. */
static __always_inline struct bpf_sock *socket_of(struct __sk_buff *skb, const struct flow *f)
{
	struct bpf_sock_tuple t;

	__builtin_memset(&t, 0, sizeof(t));
	if (f->ipv6) {
		__builtin_memcpy(t.ipv6.saddr, &f->ip.v6.saddr, sizeof(t.ipv6.saddr));
		__builtin_memcpy(t.ipv6.daddr, &f->ip.v6.daddr, sizeof(t.ipv6.daddr));
		t.ipv6.sport = f->l4.tcp.source;
		t.ipv6.dport = f->l4.tcp.dest;
		return bpf_skc_lookup_tcp(skb, &t, sizeof(t.ipv6), BPF_F_CURRENT_NETNS, 0);
	}
	t.ipv4.saddr = f->ip.v4.saddr;
	t.ipv4.daddr = f->ip.v4.daddr;
	t.ipv4.sport = f->l4.tcp.source;
	t.ipv4.dport = f->l4.tcp.dest;
	return bpf_skc_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
}

static __always_inline __u32 tcp_ports(const struct flow *f)
{
	return *(const __u32 *)&f->l4.tcp; /* source and destination port */
}

/* The slot of a flow. Fibonacci hashing: the multiply carries every bit of
 * the folded tuple into the top bits, which index the slot. */
static __always_inline __u32 slot_of(__u32 folded, int bits)
{
	return (bpf_get_smp_processor_id() << bits) + ((folded * 0x9e3779b1u) >> (32 - bits));
}

static __always_inline __u32 slot_v4(const struct flow *f)
{
	return slot_of(f->ip.v4.saddr ^ f->ip.v4.daddr ^ tcp_ports(f), FLOW_CACHE_BITS_V4);
}

static __always_inline __u32 slot_v6(const struct flow *f)
{
	const __u32 *a = (const __u32 *)&f->ip.v6.saddr; /* saddr, then daddr */
	__u32 h = tcp_ports(f);

#pragma unroll
	for (int i = 0; i < 8; i++)
		h ^= a[i];
	return slot_of(h, FLOW_CACHE_BITS_V6);
}

/*
 * cached_v4 and cached_v6 return the flow cache's decision for a TCP flow,
 * good for generation gen at jiffies now, or 0 (COUNTER_STEERED, never
 * cached) when there is none. A decision returned is counted (in the slot's
 * hits): the caller only applies it. A SYN gets none: it clears the slot if
 * the slot holds its tuple. The addresses and ports may point into the
 * packet.
 */
static __always_inline __u32 cache_answer(__u32 *checked, __u32 *egen, const __u32 *result,
					  const __u32 *emark, __u32 *hits, int syn, __u32 now,
					  __u32 *mark)
{
	if (syn) {
		*egen = 0;
		return 0;
	}
	if (now - *checked >= FLOW_CACHE_TTL)
		return 0;
	if (*hits == 0xffffffff)
		take_slot(*result, hits);
	*hits += 1;
	*mark = *emark;
	return *result;
}

static __always_inline __u32 cached_v4(__be32 saddr, __be32 daddr, __u32 ports, int syn, __u32 gen,
				       __u32 now, __u32 *mark)
{
	__u32 key = slot_of(saddr ^ daddr ^ ports, FLOW_CACHE_BITS_V4);
	struct flow_v4 *e = bpf_map_lookup_elem(&flow_cache_v4, &key);

	if (!e || e->gen != gen || e->saddr != saddr || e->daddr != daddr || e->ports != ports)
		return 0;
	return cache_answer(&e->checked, &e->gen, &e->result, &e->mark, &e->hits, syn, now, mark);
}

/* addrs: the source then the destination address, 8 words. */
static __always_inline __u32 cached_v6(const __u32 *addrs, __u32 ports, int syn, __u32 gen, __u32 now,
				       __u32 *mark)
{
	__u32 a[8];
	__u32 h = ports;

#pragma unroll
	for (int i = 0; i < 8; i++) {
		a[i] = addrs[i];
		h ^= a[i];
	}
	__u32 key = slot_of(h, FLOW_CACHE_BITS_V6);
	struct flow_v6 *e = bpf_map_lookup_elem(&flow_cache_v6, &key);

	if (!e || e->gen != gen)
		return 0;
	__u32 diff = e->ports ^ ports;
#pragma unroll
	for (int i = 0; i < 4; i++)
		diff |= (e->saddr[i] ^ a[i]) | (e->daddr[i] ^ a[4 + i]);
	if (diff)
		return 0;
	return cache_answer(&e->checked, &e->gen, &e->result, &e->mark, &e->hits, syn, now, mark);
}

static __always_inline __u32 flow_cached(const struct flow *f, int syn, __u32 gen, __u32 now,
					 __u32 *mark)
{
	if (f->ipv6)
		return cached_v6((const __u32 *)&f->ip.v6.saddr, tcp_ports(f), syn, gen, now, mark);
	return cached_v4(f->ip.v4.saddr, f->ip.v4.daddr, tcp_ports(f), syn, gen, now, mark);
}

/*
 * remember_flow puts the decision for the segment's flow in the flow cache:
 * COUNTER_ESTABLISHED (a local socket that is not a listener owns it),
 * COUNTER_BYPASSED or COUNTER_NOT_INTERCEPTED (not from a client). Only a
 * TCP segment with its whole header (not a first fragment) may be
 * remembered.
 */
static __always_inline void remember_flow(const struct flow *f, __u32 gen, __u32 mark, __u32 now,
					  enum counter result)
{
	if (f->ipv6) {
		__u32 key = slot_v6(f);
		struct flow_v6 *e = bpf_map_lookup_elem(&flow_cache_v6, &key);

		if (e) {
			take_slot(e->result, &e->hits);
			__builtin_memcpy(e->saddr, &f->ip.v6.saddr, sizeof(e->saddr));
			__builtin_memcpy(e->daddr, &f->ip.v6.daddr, sizeof(e->daddr));
			e->ports = tcp_ports(f);
			e->checked = now;
			e->gen = gen;
			e->result = result;
			e->mark = mark;
		}
		return;
	}
	__u32 key = slot_v4(f);
	struct flow_v4 *e = bpf_map_lookup_elem(&flow_cache_v4, &key);

	if (e) {
		take_slot(e->result, &e->hits);
		e->saddr = f->ip.v4.saddr;
		e->daddr = f->ip.v4.daddr;
		e->ports = tcp_ports(f);
		e->checked = now;
		e->gen = gen;
		e->result = result;
		e->mark = mark;
	}
}

/* valid_syncookie reports whether the segment is the ACK completing a
 * handshake the listener answered with a SYN cookie (its SYN queue was full,
 * so no request socket exists to find). */
static __always_inline int valid_syncookie(struct bpf_sock *listener, struct flow *f)
{
	if (f->ipv6)
		return bpf_tcp_check_syncookie(listener, &f->ip.v6, sizeof(f->ip.v6),
					       &f->l4.tcp, sizeof(f->l4.tcp)) == 0;
	return bpf_tcp_check_syncookie(listener, &f->ip.v4, sizeof(f->ip.v4),
				       &f->l4.tcp, sizeof(f->l4.tcp)) == 0;
}

/*
 * steer_tcp decides an intercepted TCP segment from a client.
 *
 * 1. A socket already owns the flow (an established steered connection, a
 *    handshake in progress, a TIME_WAIT): mark the segment and let the stack
 *    deliver it to that socket.
 * 2. A SYN, or the ACK of a SYN cookie: assign it to the listener and mark it.
 * 3. Otherwise nobody can take the segment: a SYN while the proxy is down, or
 *    a non-SYN that no socket owns (a flow from before the datapath was
 *    attached, or whose proxy socket died with a restart). Fail-open forwards
 *    it untouched: a flow begun while the proxy was down keeps running, and a
 *    dead steered flow is reset by the origin, which has never heard of it.
 *    Fail-closed answers with a reset so the client fails at once instead of
 *    retransmitting into a black hole, and nothing unsteered reaches the
 *    origin on an intercepted port.
 */
static __always_inline int steer_tcp(struct __sk_buff *skb, struct flow *f,
				     const struct runtime_settings *s, __u32 gen, int syn, __u32 now)
{
	struct bpf_sock *sk;

	/*
	 * Every segment of an intercepted flow is looked up, not only SYNs. The
	 * mark alone would deliver the segments of a steered flow (the stack
	 * finds the socket by its 4-tuple), but a segment no socket owns would
	 * then be delivered locally too, to no one: IPv6 would answer with a
	 * reset from the original destination while IPv4 cannot (see reset.h)
	 * and drops it silently, and neither honours the fail mode. Such
	 * segments are not rare: flows begun before the datapath was attached,
	 * or while the proxy was down in fail-open mode (which must go on
	 * reaching the origin), or whose proxy socket died with a restart, or
	 * that a configuration change brought into the intercepted set. No
	 * window after a restart covers them all, so the lookup stays.
	 *
	 * What a found socket does not need is bpf_sk_assign: the mark routes
	 * the segment locally and the stack's early demux finds the very socket
	 * this lookup found (and reuses its cached input route, where an
	 * assigned skb takes the policy-routing lookup on every segment). That
	 * saves the assignment's reference on a socket line the proxy is busy
	 * with on another CPU. A socket closing between here and there meets
	 * the stack's own handling, as it would a moment after an assignment.
	 *
	 * The lookup's answer is kept in the flow cache (see flow_cached), so
	 * an established flow pays it once per FLOW_CACHE_TTL, not per segment.
	 */
	sk = socket_of(skb, f);
	if (sk) {
		int listening = sk->state == BPF_TCP_LISTEN;

		bpf_sk_release(sk);
		if (!listening) {
			remember_flow(f, gen, s->mark, now, COUNTER_ESTABLISHED);
			skb->mark = s->mark;
			return count(COUNTER_ESTABLISHED, TC_ACT_OK);
		}
		/* Some other local service listens on the original port: not ours
		 * to deliver to. */
	}

	__u32 key = f->ipv6 ? LISTENER_IPV6 : LISTENER_IPV4;
	struct bpf_sock *listener = bpf_map_lookup_elem(&listeners, &key);
	if (listener) {
		enum counter result = COUNTER_STEERED;
		long err = -1;

		if (!syn && valid_syncookie(listener, f))
			result = COUNTER_ESTABLISHED;
		if (syn || result == COUNTER_ESTABLISHED) {
			err = bpf_sk_assign(skb, listener, 0);
			if (err)
				count(COUNTER_ASSIGN_ERRORS, 0);
		}
		bpf_sk_release(listener);
		if (err == 0) {
			skb->mark = s->mark;
			return count(result, TC_ACT_OK);
		}
	}

	if (s->flags & SETTING_FAIL_OPEN)
		return count(syn ? COUNTER_NO_LISTENER_PASSED : COUNTER_ORPHAN_PASSED, TC_ACT_OK);
	return count(syn ? COUNTER_NO_LISTENER_REFUSED : COUNTER_ORPHAN_REFUSED, send_reset(skb, f));
}

/* is_syn: the segment opens a connection. */
static __always_inline int is_syn(const struct tcphdr *th)
{
	return th->syn && !th->ack && !th->rst;
}

/* established applies the flow cache's decision (counted already). */
static __always_inline int established(struct __sk_buff *skb, __u32 result, __u32 mark)
{
	if (result == COUNTER_ESTABLISHED)
		skb->mark = mark;
	return TC_ACT_OK;
}

/*
 * decide judges a packet to an intercepted port once it is parsed, with the
 * settings s: the flow cache first (the established segments of steered
 * flows and of bypassed ones), then the prefix maps and, for TCP, the
 * sockets. w is the destination port's word (the generation the flow
 * cache goes by). Not inlined: the parsers' two callers share it, and the
 * common paths' code stays short.
 */
static __noinline int decide(struct __sk_buff *skb, struct flow *f, const struct port_word *w)
{
	__u32 zero = 0;
	const struct runtime_settings *s = bpf_map_lookup_elem(&settings, &zero);
	if (!s)
		return TC_ACT_OK;
	__u32 flags = s->flags;

	/* A cached flow was judged (client, bypass, socket) under these very
	 * settings within FLOW_CACHE_TTL. */
	int tcp = f->proto == IPPROTO_TCP && !f->first_fragment;
	int syn = 0;
	__u32 now = 0;
	if (tcp) {
		const struct tcphdr *th = &f->l4.tcp;

		syn = is_syn(th);
		now = bpf_jiffies64();
		__u32 mark;
		__u32 result = flow_cached(f, syn, w->gen, now, &mark);
		if (result)
			return established(skb, result, mark);
	}

	if (f->proto == IPPROTO_UDP && !(flags & SETTING_DROP_QUIC))
		return count(COUNTER_NOT_INTERCEPTED, TC_ACT_OK);
	if (!from_client(f, flags)) {
		if (tcp)
			remember_flow(f, w->gen, s->mark, now, COUNTER_NOT_INTERCEPTED);
		return count(COUNTER_NOT_INTERCEPTED, TC_ACT_OK);
	}
	if (to_bypassed(f, flags)) {
		if (tcp)
			remember_flow(f, w->gen, s->mark, now, COUNTER_BYPASSED);
		return count(COUNTER_BYPASSED, TC_ACT_OK);
	}

	/* QUIC runs on the port of the TLS service it shadows. Dropping it makes
	 * browsers fall back to TCP, which is steered. */
	if (f->proto == IPPROTO_UDP)
		return count(COUNTER_QUIC_DROPPED, TC_ACT_SHOT);
	/* The rest of the datagram would be forwarded while this part went to
	 * the proxy: neither side could reassemble it. TCP does not fragment
	 * (DF and MSS), so only crafted traffic lands here. */
	if (f->first_fragment)
		return count(COUNTER_FRAGMENT_DROPPED, TC_ACT_SHOT);
	return steer_tcp(skb, f, s, w->gen, syn, now);
}

/*
 * steer_general parses any frame (IP options, IPv6 extension headers,
 * fragments, headers outside the linear area, malformed ones) and judges it.
 * The fast path in steer hands it everything that is not a plain TCP or UDP
 * packet.
 */
static __noinline int steer_general(struct __sk_buff *skb)
{
	struct flow f;

	__builtin_memset(&f, 0, sizeof(f));
	switch (parse(skb, &f)) {
	case PARSE_OK:
		break;
	case PARSE_OTHER:
		return count(COUNTER_NOT_INTERCEPTED, TC_ACT_OK);
	default:
		return count(COUNTER_MALFORMED, TC_ACT_OK);
	}
	/* Most traffic is to ports nobody intercepts, and deciding that touches
	 * one word of the port bitmap and nothing else. */
	const struct port_word *w = intercepting(f.l4.tcp.dest); /* same offset in UDP */
	if (!w)
		return count(COUNTER_NOT_INTERCEPTED, TC_ACT_OK);
	return decide(skb, &f, w);
}

/*
 * The fast path: a plain IPv4 or IPv6 packet (no options, no extension
 * headers, not a fragment) carrying TCP or UDP whose headers are in the
 * linear area -- nearly every packet -- read in place and judged with as
 * little code and as few cache lines as possible: the common answer, a port
 * nobody intercepts, costs the header loads, the sanity checks parse()
 * would make and one word of the port bitmap. Anything else, or anything
 * that fails a check, goes to steer_general, which parses it in full (and
 * counts the malformed), so both paths decide a packet alike.
 */
SEC("tc")
int steer(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	const struct port_word *w;
	struct flow f;

	if (data + ETH_HLEN + sizeof(struct iphdr) + sizeof(struct udphdr) > data_end)
		return steer_general(skb);

	/* struct ethhdr is packed: read as such, h_proto takes two byte loads. */
	__be16 proto = *(__be16 *)(data + __builtin_offsetof(struct ethhdr, h_proto));

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + ETH_HLEN;
		void *l4 = ip + 1;
		__u32 total = bpf_ntohs(ip->tot_len);

		/* Version 4, no options, not a fragment, within the frame. */
		if (*(__u8 *)ip != 0x45 || (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)) ||
		    total > skb->len - ETH_HLEN)
			return steer_general(skb);
		if (ip->protocol == IPPROTO_TCP) {
			struct tcphdr *th = l4;

			if ((void *)(th + 1) > data_end || total < sizeof(*ip) + sizeof(*th) ||
			    th->doff < 5 || th->doff * 4 > total - sizeof(*ip))
				return steer_general(skb);
			if (!(w = intercepting(th->dest)))
				return count(COUNTER_NOT_INTERCEPTED, TC_ACT_OK);
			if (!is_syn(th)) {
				__u32 mark;
				__u32 result = cached_v4(ip->saddr, ip->daddr, *(__u32 *)th, 0, w->gen,
							 bpf_jiffies64(), &mark);
				if (result)
					return established(skb, result, mark);
			}
			__builtin_memset(&f, 0, sizeof(f));
			load(skb, ETH_HLEN + sizeof(*ip), &f.l4.tcp, sizeof(f.l4.tcp));
		} else if (ip->protocol == IPPROTO_UDP) {
			struct udphdr *uh = l4;

			if (total < sizeof(*ip) + sizeof(*uh))
				return steer_general(skb);
			if (!(w = intercepting(uh->dest)))
				return count(COUNTER_NOT_INTERCEPTED, TC_ACT_OK);
			__builtin_memset(&f, 0, sizeof(f));
			load(skb, ETH_HLEN + sizeof(*ip), &f.l4.udp, sizeof(f.l4.udp));
		} else {
			return steer_general(skb);
		}
		load(skb, ETH_HLEN, &f.ip.v4, sizeof(f.ip.v4));
		f.proto = ip->protocol;
		f.plain = 1;
		f.l4_off = ETH_HLEN + sizeof(*ip);
		f.l4_len = total - sizeof(*ip);
		return decide(skb, &f, w);
	}

	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + ETH_HLEN;
		void *l4 = ip6 + 1;

		if (l4 + sizeof(struct udphdr) > data_end)
			return steer_general(skb);
		__u32 payload = bpf_ntohs(ip6->payload_len);

		/* Version 6, within the frame (0: a jumbogram, for the general path). */
		if ((*(__u8 *)ip6 & 0xf0) != 0x60 || payload == 0 ||
		    payload > skb->len - ETH_HLEN - sizeof(*ip6))
			return steer_general(skb);
		if (ip6->nexthdr == IPPROTO_TCP) {
			struct tcphdr *th = l4;

			if ((void *)(th + 1) > data_end || payload < sizeof(*th) || th->doff < 5 ||
			    th->doff * 4 > payload)
				return steer_general(skb);
			if (!(w = intercepting(th->dest)))
				return count(COUNTER_NOT_INTERCEPTED, TC_ACT_OK);
			if (!is_syn(th)) {
				__u32 mark;
				__u32 result = cached_v6((const __u32 *)&ip6->saddr, *(__u32 *)th, 0, w->gen,
							 bpf_jiffies64(), &mark);
				if (result)
					return established(skb, result, mark);
			}
			__builtin_memset(&f, 0, sizeof(f));
			load(skb, ETH_HLEN + sizeof(*ip6), &f.l4.tcp, sizeof(f.l4.tcp));
		} else if (ip6->nexthdr == IPPROTO_UDP) {
			struct udphdr *uh = l4;

			if (payload < sizeof(*uh))
				return steer_general(skb);
			if (!(w = intercepting(uh->dest)))
				return count(COUNTER_NOT_INTERCEPTED, TC_ACT_OK);
			__builtin_memset(&f, 0, sizeof(f));
			load(skb, ETH_HLEN + sizeof(*ip6), &f.l4.udp, sizeof(f.l4.udp));
		} else {
			return steer_general(skb);
		}
		load(skb, ETH_HLEN, &f.ip.v6, sizeof(f.ip.v6));
		f.ipv6 = 1;
		f.proto = ip6->nexthdr;
		f.plain = 1;
		f.l4_off = ETH_HLEN + sizeof(*ip6);
		f.l4_len = payload;
		return decide(skb, &f, w);
	}
	return steer_general(skb);
}

/*
 * steer_lookup is the sk_lookup program of route steering. Policy rules
 * (iif LAN, from a client prefix, TCP to an intercepted port, bypass
 * destinations thrown back to the main table) route intercepted segments to
 * this host without any program; the stack then finds an established
 * flow's socket by itself, and only a segment no socket owns -- a SYN,
 * nearly always -- reaches the listener lookup this program runs in.
 *
 * The program runs for every listener lookup of the network namespace, the
 * host's own services included (ssh, the console, anything on loopback or
 * another interface): it steers only TCP that arrived on the LAN interface,
 * to an intercepted port, from a client prefix, to a destination that is
 * not bypassed -- the decision of steer, which also covers the gateway's
 * own addresses (the local table delivers those before any rule of ours).
 * Anything else passes untouched to the stack's own lookup.
 *
 * An intercepted lookup with no listener in the sockmap (the proxy is
 * down) is dropped (SK_DROP): a host service listening on the wildcard
 * address must not get clients' connections to foreign destinations. The
 * stack then answers as it does for a closed port: IPv6 with a reset from
 * the original destination; IPv4 cannot send one from an address that is
 * not the host's (see reset.h), so the SYN is dropped and the client
 * retries, reaching the proxy once it is back. Nothing reaches the origin
 * unsteered: route steering is fail-closed only (the agent refuses it with
 * fail-open, which needs a program on every packet).
 *
 * Counted (one counter per run): COUNTER_STEERED for a lookup assigned to
 * the listener (a SYN; also a SYN-cookie ACK or a segment no socket owns,
 * which the listener itself answers), COUNTER_NO_LISTENER_REFUSED for one
 * dropped for want of a listener. Lookups it passes are not counted: they
 * are not the datapath's.
 */
SEC("sk_lookup")
int steer_lookup(struct bpf_sk_lookup *ctx)
{
	__u32 zero = 0;
	const struct runtime_settings *s;

	if (ctx->protocol != IPPROTO_TCP)
		return SK_PASS;
	s = bpf_map_lookup_elem(&settings, &zero);
	if (!s || ctx->ingress_ifindex != s->ifindex)
		return SK_PASS;

	__u32 port = ctx->local_port;
	__u32 word = port / 32;
	const struct port_word *w = bpf_map_lookup_elem(&intercept_ports, &word);
	if (!w || !((w->ports >> (port % 32)) & 1))
		return SK_PASS;

	__u32 flags = s->flags;
	__u32 key = LISTENER_IPV4;
	if (ctx->family == AF_INET6) {
		if (!(flags & SETTING_ALL_CLIENTS_V6)) {
			struct lpm_v6_key k = {.prefixlen = 128};
			__u32 a[4] = {ctx->remote_ip6[0], ctx->remote_ip6[1], ctx->remote_ip6[2], ctx->remote_ip6[3]};

			__builtin_memcpy(k.addr, a, sizeof(k.addr));
			if (!bpf_map_lookup_elem(&client_v6, &k))
				return SK_PASS;
		}
		if (flags & SETTING_BYPASS_V6) {
			struct lpm_v6_key k = {.prefixlen = 128};
			__u32 a[4] = {ctx->local_ip6[0], ctx->local_ip6[1], ctx->local_ip6[2], ctx->local_ip6[3]};

			__builtin_memcpy(k.addr, a, sizeof(k.addr));
			if (bpf_map_lookup_elem(&bypass_v6, &k))
				return SK_PASS;
		}
		key = LISTENER_IPV6;
	} else {
		if (!(flags & SETTING_ALL_CLIENTS_V4)) {
			struct lpm_v4_key k = {.prefixlen = 32};
			__u32 a = ctx->remote_ip4;

			__builtin_memcpy(k.addr, &a, sizeof(k.addr));
			if (!bpf_map_lookup_elem(&client_v4, &k))
				return SK_PASS;
		}
		if (flags & SETTING_BYPASS_V4) {
			struct lpm_v4_key k = {.prefixlen = 32};
			__u32 a = ctx->local_ip4;

			__builtin_memcpy(k.addr, &a, sizeof(k.addr));
			if (bpf_map_lookup_elem(&bypass_v4, &k))
				return SK_PASS;
		}
	}

	/*
	 * REPLACE: the decision for an intercepted lookup is this program's,
	 * whatever an sk_lookup program before it chose -- the previous
	 * generation's, still attached while a restart takes over (the same
	 * listener), or another tool's.
	 */
	struct bpf_sock *listener = bpf_map_lookup_elem(&listeners, &key);
	if (listener) {
		long err = bpf_sk_assign(ctx, listener, BPF_SK_LOOKUP_F_REPLACE);

		bpf_sk_release(listener);
		if (err == 0)
			return count(COUNTER_STEERED, SK_PASS);
		count(COUNTER_ASSIGN_ERRORS, 0);
	}
	/* A socket an earlier program chose would still win over SK_DROP. */
	if (ctx->sk)
		bpf_sk_assign(ctx, NULL, BPF_SK_LOOKUP_F_REPLACE);
	return count(COUNTER_NO_LISTENER_REFUSED, SK_DROP);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
