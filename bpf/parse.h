/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Packet parsing for steer.c: Ethernet, then IPv4 or IPv6 (with a bounded
 * walk over IPv6 extension headers), then the TCP or UDP header.
 *
 * Headers are copied out of the packet into a struct flow by load(): a
 * bounds-checked direct read when the bytes are in the skb's linear area (the
 * usual case, and the cheap one), else bpf_skb_load_bytes, which reads from
 * the whole skb. So a truncated frame is an error return rather than an
 * out-of-bounds read, and a non-linear skb (headers split across fragments,
 * as some drivers and GRO produce) parses exactly like a linear one instead
 * of looking truncated and slipping past the steering unseen.
 */
#pragma once

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/* Not in the UAPI headers: IPv4 fragment bits of frag_off (host order). */
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

/* IPv6 fragment header: offset in 8-byte units in the upper 13 bits, M flag
 * in the lowest bit (host order). */
#define IP6_OFFSET 0xfff8
#define IP6_MF 0x0001

/*
 * The most IPv6 extension headers walked before the packet is declared
 * unparseable. Real traffic carries one or two; the bound keeps the unrolled
 * loop small for the verifier.
 */
#define IPV6_EXT_MAX 8

/* Offsets beyond this are read with the helper; the bound lets the verifier
 * accept the variable offset into the packet. */
#define LOAD_DIRECT_MAX_OFF 0x3fff

/*
 * load copies len bytes (a compile-time constant) at off into to, which is
 * aligned to 4 bytes (2 when len is 2).
 *
 * The direct copy goes in 32-bit words: a plain memcpy from a packet pointer
 * has no known alignment, so clang splits it into single-byte loads and
 * shifts (some 150 instructions for an IPv6 header, most of the program's
 * per-packet cost). The packet side may be unaligned: the verifier allows it
 * where the CPU handles it (x86-64, arm64); the stack side must be aligned,
 * which the callers' types ensure.
 */
static __always_inline int load(struct __sk_buff *skb, __u32 off, void *to, const __u32 len)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	if (off <= LOAD_DIRECT_MAX_OFF && data + off + len <= data_end) {
		const void *from = data + off;

		if (len % 4 == 0) {
#pragma unroll
			for (__u32 i = 0; i < len / 4; i++)
				((__u32 *)to)[i] = ((const __u32 *)from)[i];
		} else if (len == 2) {
			*(__u16 *)to = *(const __u16 *)from;
		} else {
			__builtin_memcpy(to, from, len);
		}
		return 0;
	}
	return bpf_skb_load_bytes(skb, off, to, len);
}

enum parse_result {
	PARSE_OK,        /* TCP or UDP with ports (see flow.first_fragment) */
	PARSE_OTHER,     /* not IP, not TCP/UDP, or a non-first fragment */
	PARSE_MALFORMED, /* truncated or inconsistent headers */
};

struct flow {
	union {
		struct iphdr v4;
		struct ipv6hdr v6;
	} ip;
	union {
		struct tcphdr tcp;
		struct udphdr udp;
	} l4;
	__u32 l4_off; /* offset of the transport header from the frame start */
	__u32 l4_len; /* bytes from the transport header to the end of the IP packet */
	__u8 ipv6;
	__u8 proto;
	/*
	 * The packet is the first fragment of a fragmented datagram: it carries
	 * the ports (and only they were loaded) but can never be steered, since
	 * the rest of the datagram would take a different path.
	 */
	__u8 first_fragment;
	/* No IPv4 options or IPv6 extension headers: a reset can be built. */
	__u8 plain;
};

/* In an IPv4 and an IPv6 fragment alike, the first four bytes of the
 * transport header are the ports. */
#define L4_PORTS_LEN 4

static __always_inline int parse_l4(struct __sk_buff *skb, struct flow *f)
{
	if (f->proto != IPPROTO_TCP && f->proto != IPPROTO_UDP)
		return PARSE_OTHER;
	if (f->first_fragment) {
		if (f->l4_len < L4_PORTS_LEN)
			return PARSE_MALFORMED;
		if (load(skb, f->l4_off, &f->l4, L4_PORTS_LEN) < 0)
			return PARSE_MALFORMED;
		return PARSE_OK;
	}
	if (f->proto == IPPROTO_UDP) {
		if (f->l4_len < sizeof(struct udphdr))
			return PARSE_MALFORMED;
		if (load(skb, f->l4_off, &f->l4.udp, sizeof(struct udphdr)) < 0)
			return PARSE_MALFORMED;
		return PARSE_OK;
	}
	if (f->l4_len < sizeof(struct tcphdr))
		return PARSE_MALFORMED;
	if (load(skb, f->l4_off, &f->l4.tcp, sizeof(struct tcphdr)) < 0)
		return PARSE_MALFORMED;
	__u32 doff = f->l4.tcp.doff * 4;
	if (doff < sizeof(struct tcphdr) || doff > f->l4_len)
		return PARSE_MALFORMED;
	return PARSE_OK;
}

static __always_inline int parse_ipv4(struct __sk_buff *skb, struct flow *f)
{
	struct iphdr *ip = &f->ip.v4;

	if (load(skb, ETH_HLEN, ip, sizeof(*ip)) < 0)
		return PARSE_MALFORMED;
	if (ip->version != 4 || ip->ihl < 5)
		return PARSE_MALFORMED;

	__u32 hlen = ip->ihl * 4;
	__u32 avail = skb->len - ETH_HLEN; /* the load above proves len > ETH_HLEN */
	__u32 total = bpf_ntohs(ip->tot_len);
	/* A GRO packet over 64 KiB (BIG TCP) has tot_len 0: its length is the skb's. */
	if (total == 0)
		total = avail;
	/* total < avail is fine: Ethernet pads short frames. */
	if (total < hlen || total > avail)
		return PARSE_MALFORMED;

	__u16 frag = bpf_ntohs(ip->frag_off);
	if (frag & IP_OFFSET)
		return PARSE_OTHER;
	f->first_fragment = (frag & IP_MF) != 0;
	f->plain = hlen == sizeof(*ip);
	f->proto = ip->protocol;
	f->l4_off = ETH_HLEN + hlen;
	f->l4_len = total - hlen;
	return parse_l4(skb, f);
}

static __always_inline int ipv6_is_ext(__u8 nexthdr)
{
	return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
	       nexthdr == IPPROTO_FRAGMENT || nexthdr == IPPROTO_DSTOPTS;
}

/* The part of every extension header walked here: all are at least 8 bytes. */
struct ipv6_ext {
	__u8 nexthdr;
	__u8 hdrlen;     /* options and routing: length in 8-byte units, minus one */
	__be16 frag_off; /* fragment header only */
	__be32 reserved;
};

static __always_inline int parse_ipv6(struct __sk_buff *skb, struct flow *f)
{
	struct ipv6hdr *ip = &f->ip.v6;

	if (load(skb, ETH_HLEN, ip, sizeof(*ip)) < 0)
		return PARSE_MALFORMED;
	if (ip->version != 6)
		return PARSE_MALFORMED;

	__u32 avail = skb->len - ETH_HLEN - sizeof(*ip);
	__u32 payload = bpf_ntohs(ip->payload_len);
	/* Jumbograms and BIG TCP GRO packets carry 0: the length is the skb's. */
	if (payload == 0)
		payload = avail;
	if (payload > avail)
		return PARSE_MALFORMED;

	__u32 off = ETH_HLEN + sizeof(*ip);
	__u32 end = off + payload;
	__u8 nexthdr = ip->nexthdr;
	f->ipv6 = 1;
	f->plain = 1;

#pragma unroll
	for (int i = 0; i < IPV6_EXT_MAX; i++) {
		struct ipv6_ext ext;

		if (!ipv6_is_ext(nexthdr))
			break;
		if (off + sizeof(ext) > end)
			return PARSE_MALFORMED;
		if (load(skb, off, &ext, sizeof(ext)) < 0)
			return PARSE_MALFORMED;
		f->plain = 0;
		if (nexthdr == IPPROTO_FRAGMENT) {
			__u16 frag = bpf_ntohs(ext.frag_off);
			if (frag & IP6_OFFSET)
				return PARSE_OTHER;
			/* Offset 0 without M is an atomic fragment: a whole packet. */
			if (frag & IP6_MF)
				f->first_fragment = 1;
			off += sizeof(ext);
		} else {
			off += (ext.hdrlen + 1) * 8;
		}
		nexthdr = ext.nexthdr;
	}
	/* More headers than walked: the transport header was not reached. */
	if (ipv6_is_ext(nexthdr) || off > end)
		return PARSE_MALFORMED;

	f->proto = nexthdr;
	f->l4_off = off;
	f->l4_len = end - off;
	return parse_l4(skb, f);
}

/* parse fills f from the frame in skb. */
static __always_inline int parse(struct __sk_buff *skb, struct flow *f)
{
	__be16 proto;

	if (load(skb, __builtin_offsetof(struct ethhdr, h_proto), &proto, sizeof(proto)) < 0)
		return PARSE_MALFORMED;
	if (proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(skb, f);
	if (proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(skb, f);
	return PARSE_OTHER;
}
