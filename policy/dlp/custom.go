package dlp

import "bytes"

// scanCustom counts matches of custom detector i that start before limit.
// Unlike the built-ins it searches from a remembered stream position, not an
// anchor, so a match counted in one window is not counted again after the
// slide; regexes see the bytes from that position on, so ^ and \b treat it
// as a text start (documented for admins).
func (in *Inspector) scanCustom(i, limit int) {
	c := &in.set.customs[i]
	idx := numBuiltin + i
	from := int(max(in.customNext[i]-in.base, 0))
	if from < in.start {
		from = in.start
	}
	if c.re == nil {
		// Next whole-word occurrence of each keyword, searched once per window
		// and only refreshed when passed: O(window × keywords), whatever the
		// number of matches.
		in.kwPos = in.kwPos[:0]
		for _, k := range c.keywords {
			in.kwPos = append(in.kwPos, nextKeyword(in.buf, k, from, c.caseSens))
		}
	}
	for from < limit {
		var s, e int
		if c.re != nil {
			loc := c.re.FindIndex(in.buf[from:])
			if loc == nil {
				break
			}
			s, e = from+loc[0], from+loc[1]
		} else {
			best := -1
			for k, p := range in.kwPos {
				if p >= 0 && p < from {
					p = nextKeyword(in.buf, c.keywords[k], from, c.caseSens)
					in.kwPos[k] = p
				}
				if p >= 0 && (best < 0 || p < in.kwPos[best]) {
					best = k
				}
			}
			if best < 0 {
				break
			}
			s = in.kwPos[best]
			e = s + len(c.keywords[best])
		}
		if s >= limit {
			break
		}
		buf := in.buf
		in.res.add(idx, in.base+int64(s), func(dst []byte) int { return maskCustom(dst, buf[s:e]) })
		from = max(e, s+1)
	}
	if from < limit {
		from = limit
	}
	in.customNext[i] = in.base + int64(from)
}

// nextKeyword finds the first whole-word occurrence of k at or after from,
// or -1. A keyword edge that is not a letter or digit needs no boundary.
func nextKeyword(buf, k []byte, from int, caseSens bool) int {
	for at := from; at < len(buf); {
		x := indexWord(buf[at:], k, caseSens)
		if x < 0 {
			return -1
		}
		s := at + x
		e := s + len(k)
		if (s == 0 || !alnum[buf[s-1]] || !alnum[k[0]]) && (e == len(buf) || !alnum[buf[e]] || !alnum[k[len(k)-1]]) {
			return s
		}
		at = s + 1
	}
	return -1
}

// indexWord finds k in b, ASCII case-insensitively unless caseSens (k is
// already lower-case then). It jumps between occurrences of k's first byte
// in either case with IndexByte, which is vectorised; the next position of
// each case is remembered so neither is searched twice.
func indexWord(b, k []byte, caseSens bool) int {
	if caseSens {
		return bytes.Index(b, k)
	}
	lo := k[0]
	up := lo
	if lo-'a' < 26 {
		up = lo - 32
	}
	nextLo, nextUp := -2, -2 // -2: not searched yet, -1: none left
	off := 0
	for off+len(k) <= len(b) {
		if nextLo != -1 && nextLo < off {
			if nextLo = bytes.IndexByte(b[off:], lo); nextLo >= 0 {
				nextLo += off
			}
		}
		x := nextLo
		if up != lo {
			if nextUp != -1 && nextUp < off {
				if nextUp = bytes.IndexByte(b[off:], up); nextUp >= 0 {
					nextUp += off
				}
			}
			if nextUp >= 0 && (x < 0 || nextUp < x) {
				x = nextUp
			}
		}
		if x < 0 || x+len(k) > len(b) {
			return -1
		}
		if eqFoldBytes(b[x:x+len(k)], k) {
			return x
		}
		off = x + 1
	}
	return -1
}

func eqFoldBytes(b, lower []byte) bool {
	for i, c := range b {
		if c-'A' < 26 {
			c |= 0x20
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// maskCustom shows the first two characters and masks the rest: admins
// recognise which term hit without the explanation leaking it.
func maskCustom(dst, src []byte) int {
	n := 0
	for k, c := range src {
		if n == len(dst) {
			break
		}
		if k >= 2 && c != ' ' {
			c = '*'
		}
		dst[n] = c
		n++
	}
	return n
}
