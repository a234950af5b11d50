package agent

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Test frames for prog.Run, built with gopacket as a client on the LAN would
// send them to the gateway's MAC.

var (
	clientMAC  = net.HardwareAddr{0x02, 0x7c, 0, 0, 0, 0x01}
	gatewayMAC = net.HardwareAddr{0x02, 0x7c, 0, 0, 0, 0x02}
)

// tcpSeg describes the TCP part of a test frame.
type tcpSeg struct {
	syn, ack, rst, fin bool
	seq, ackNum        uint32
	payload            []byte
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ipLayers returns the Ethernet and IP layers for a packet from src to dst.
func ipLayers(src, dst netip.Addr, proto layers.IPProtocol) (*layers.Ethernet, gopacket.SerializableLayer, gopacket.NetworkLayer) {
	eth := &layers.Ethernet{SrcMAC: clientMAC, DstMAC: gatewayMAC}
	if src.Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, Flags: layers.IPv4DontFragment,
			SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		return eth, ip, ip
	}
	eth.EthernetType = layers.EthernetTypeIPv6
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	return eth, ip, ip
}

func tcpFrame(t testing.TB, src, dst netip.AddrPort, seg tcpSeg) []byte {
	t.Helper()
	eth, ip, nl := ipLayers(src.Addr(), dst.Addr(), layers.IPProtocolTCP)
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()),
		SYN: seg.syn, ACK: seg.ack, RST: seg.rst, FIN: seg.fin, Seq: seg.seq, Ack: seg.ackNum, Window: 64240}
	if seg.syn {
		// Options as a real SYN carries them, so the reset must shrink the frame.
		tcp.Options = []layers.TCPOption{
			{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
			{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
			{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
		}
	}
	if err := tcp.SetNetworkLayerForChecksum(nl); err != nil {
		t.Fatal(err)
	}
	return serialize(t, eth, ip, tcp, gopacket.Payload(seg.payload))
}

func udpFrame(t testing.TB, src, dst netip.AddrPort, payload []byte) []byte {
	t.Helper()
	eth, ip, nl := ipLayers(src.Addr(), dst.Addr(), layers.IPProtocolUDP)
	udp := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	if err := udp.SetNetworkLayerForChecksum(nl); err != nil {
		t.Fatal(err)
	}
	return serialize(t, eth, ip, udp, gopacket.Payload(payload))
}

// ipv4Fragment returns a TCP SYN's IPv4 packet split as the fragment at
// offset (in 8-byte units) with the more-fragments flag as given.
func ipv4Fragment(t testing.TB, src, dst netip.AddrPort, offset uint16, more bool) []byte {
	t.Helper()
	frame := tcpFrame(t, src, dst, tcpSeg{syn: true, seq: 1})
	ip := frame[14:]
	flags := offset
	if more {
		flags |= 0x2000
	}
	binary.BigEndian.PutUint16(ip[6:], flags)
	binary.BigEndian.PutUint16(ip[10:], 0)
	binary.BigEndian.PutUint16(ip[10:], checksum(ip[:20], 0))
	return frame
}

// ipv6WithDestOpts returns a TCP SYN behind an IPv6 destination-options
// header (padding only): steerable, but not answerable with a plain reset.
func ipv6WithDestOpts(t testing.TB, src, dst netip.AddrPort) []byte {
	t.Helper()
	frame := tcpFrame(t, src, dst, tcpSeg{syn: true, seq: 1})
	ip, tcp := frame[14:54], frame[54:]
	ext := []byte{byte(layers.IPProtocolTCP), 0, 1, 4, 0, 0, 0, 0} // PadN of 4 bytes
	out := append(append(append(append([]byte{}, frame[:14]...), ip...), ext...), tcp...)
	out[14+6] = byte(layers.IPProtocolIPv6Destination)
	binary.BigEndian.PutUint16(out[14+4:], uint16(len(ext)+len(tcp)))
	return out
}

// checksum is the Internet checksum of b folded into the running sum.
func checksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// validTCPChecksum checks the TCP checksum of a decoded packet against its
// pseudo-header.
func validTCPChecksum(src, dst netip.Addr, tcp []byte) bool {
	var pseudo []byte
	pseudo = append(pseudo, src.AsSlice()...)
	pseudo = append(pseudo, dst.AsSlice()...)
	pseudo = append(pseudo, 0, byte(layers.IPProtocolTCP), byte(len(tcp)>>8), byte(len(tcp)))
	var sum uint32
	for i := 0; i+1 < len(pseudo); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(pseudo[i:]))
	}
	return checksum(tcp, sum) == 0
}
