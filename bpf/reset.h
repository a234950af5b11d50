/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Refusing a flow with a TCP reset built in place.
 *
 * Why not mark the segment and let the local stack answer it: there is no
 * socket for the flow, and a reset the stack sends on behalf of no socket has
 * the flow's foreign destination as its source address. IPv4 output routing
 * refuses a non-local source unless the sending socket is transparent, so an
 * IPv4 client would time out (measured: IPv6 is refused at once, IPv4 waits)
 * -- and a local service listening on the original port would get the SYN.
 * A silent drop leaves the client retransmitting its SYN for a minute or
 * more. Rewriting the segment into the RFC 9293 reset and bouncing it out of
 * the interface it came in on gives every client an immediate "connection
 * refused" and touches no local socket.
 */
#pragma once

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "parse.h"

#define IP_DF 0x4000
#define RESET_TTL 64

/*
 * csum_add sums len bytes (even, a compile-time constant) as 16-bit words.
 * Words are loaded in host order: the one's-complement sum is byte-order
 * independent (RFC 1071), so storing the folded result back in host order
 * yields the checksum in network order.
 */
static __always_inline __u32 csum_add(__u32 sum, const void *data, __u32 len)
{
	const __u16 *w = data;

#pragma unroll
	for (__u32 i = 0; i < len / 2; i++)
		sum += w[i];
	return sum;
}

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* The pseudo-header words after the addresses: protocol and TCP length. */
static __always_inline __u32 csum_tcp_pseudo_tail(void)
{
	return bpf_htons(IPPROTO_TCP) + bpf_htons(sizeof(struct tcphdr));
}

/* reset_tcp fills th with the reset answering the segment in, per RFC 9293
 * section 3.10.7.1: acknowledge what it occupied if it had no ACK, else take
 * its acknowledgement number as our sequence number. */
static __always_inline void reset_tcp(struct tcphdr *th, const struct flow *f)
{
	const struct tcphdr *in = &f->l4.tcp;

	__builtin_memset(th, 0, sizeof(*th));
	th->source = in->dest;
	th->dest = in->source;
	th->doff = sizeof(*th) / 4;
	th->rst = 1;
	if (in->ack) {
		th->seq = in->ack_seq;
		return;
	}
	__u32 seg_len = f->l4_len - in->doff * 4 + in->syn + in->fin;
	th->ack = 1;
	th->ack_seq = bpf_htonl(bpf_ntohl(in->seq) + seg_len);
}

struct reset_v4 {
	struct iphdr ip;
	struct tcphdr tcp;
};

struct reset_v6 {
	struct ipv6hdr ip;
	struct tcphdr tcp;
};

static __always_inline void build_reset_v4(struct reset_v4 *r, const struct flow *f)
{
	__builtin_memset(r, 0, sizeof(*r));
	r->ip.version = 4;
	r->ip.ihl = sizeof(r->ip) / 4;
	r->ip.tot_len = bpf_htons(sizeof(*r));
	r->ip.frag_off = bpf_htons(IP_DF);
	r->ip.ttl = RESET_TTL;
	r->ip.protocol = IPPROTO_TCP;
	r->ip.saddr = f->ip.v4.daddr;
	r->ip.daddr = f->ip.v4.saddr;
	r->ip.check = csum_fold(csum_add(0, &r->ip, sizeof(r->ip)));

	reset_tcp(&r->tcp, f);
	__u32 sum = csum_add(0, &r->ip.saddr, 2 * sizeof(r->ip.saddr));
	sum += csum_tcp_pseudo_tail();
	r->tcp.check = csum_fold(csum_add(sum, &r->tcp, sizeof(r->tcp)));
}

static __always_inline void build_reset_v6(struct reset_v6 *r, const struct flow *f)
{
	__builtin_memset(r, 0, sizeof(*r));
	r->ip.version = 6;
	r->ip.payload_len = bpf_htons(sizeof(r->tcp));
	r->ip.nexthdr = IPPROTO_TCP;
	r->ip.hop_limit = RESET_TTL;
	r->ip.saddr = f->ip.v6.daddr;
	r->ip.daddr = f->ip.v6.saddr;

	reset_tcp(&r->tcp, f);
	__u32 sum = csum_add(0, &r->ip.saddr, 2 * sizeof(r->ip.saddr));
	sum += csum_tcp_pseudo_tail();
	r->tcp.check = csum_fold(csum_add(sum, &r->tcp, sizeof(r->tcp)));
}

/*
 * send_reset turns the TCP segment in skb into the reset that refuses it and
 * redirects it out of the interface it arrived on. It returns the TC verdict:
 * TC_ACT_REDIRECT, or TC_ACT_SHOT when no reset may or can be sent (the
 * segment is itself a reset, carries IP options or extension headers, or a
 * helper failed).
 *
 * The IP and TCP bytes are stored with BPF_F_RECOMPUTE_CSUM so an skb that
 * arrived with CHECKSUM_COMPLETE keeps a correct skb->csum (a veth peer
 * trusts it); the MAC addresses are stored without it, as that checksum does
 * not cover them.
 */
static __always_inline int send_reset(struct __sk_buff *skb, const struct flow *f)
{
	struct ethhdr eth;
	__u8 mac[ETH_ALEN];

	if (f->l4.tcp.rst || !f->plain)
		return TC_ACT_SHOT;
	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0)
		return TC_ACT_SHOT;
	__builtin_memcpy(mac, eth.h_dest, ETH_ALEN);
	__builtin_memcpy(eth.h_dest, eth.h_source, ETH_ALEN);
	__builtin_memcpy(eth.h_source, mac, ETH_ALEN);

	if (f->ipv6) {
		struct reset_v6 r;

		build_reset_v6(&r, f);
		if (bpf_skb_change_tail(skb, ETH_HLEN + sizeof(r), 0) < 0)
			return TC_ACT_SHOT;
		if (bpf_skb_store_bytes(skb, ETH_HLEN, &r, sizeof(r),
					BPF_F_RECOMPUTE_CSUM | BPF_F_INVALIDATE_HASH) < 0)
			return TC_ACT_SHOT;
	} else {
		struct reset_v4 r;

		build_reset_v4(&r, f);
		if (bpf_skb_change_tail(skb, ETH_HLEN + sizeof(r), 0) < 0)
			return TC_ACT_SHOT;
		if (bpf_skb_store_bytes(skb, ETH_HLEN, &r, sizeof(r),
					BPF_F_RECOMPUTE_CSUM | BPF_F_INVALIDATE_HASH) < 0)
			return TC_ACT_SHOT;
	}
	if (bpf_skb_store_bytes(skb, 0, &eth, sizeof(eth), 0) < 0)
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}
