package dlp

var localChar = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = alnum[c] || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
	}
	return t
}()

// scanEmail handles an '@': a local part of up to 64 characters before it
// and a domain of at least two labels with an alphabetic TLD after it.
func scanEmail(buf []byte, at int, base int64, r *Result) int {
	s := at
	for s > 0 && localChar[buf[s-1]] && at-s < 64 {
		s--
	}
	for s < at && buf[s] == '.' {
		s++
	}
	if s == at {
		return at + 1
	}
	// Domain: labels of letters, digits and inner dashes.
	j := at + 1
	labels, lastLabel, lastAlpha := 0, 0, true
	for j < len(buf) && j-at <= 253 {
		ls := j
		alpha := true
		for j < len(buf) && (alnum[buf[j]] || buf[j] == '-') && j-ls < 63 {
			if !(buf[j]|0x20 >= 'a' && buf[j]|0x20 <= 'z') {
				alpha = false
			}
			j++
		}
		if j == ls || buf[ls] == '-' || buf[j-1] == '-' {
			j = ls
			break
		}
		labels++
		lastLabel, lastAlpha = j-ls, alpha
		if j+1 < len(buf) && buf[j] == '.' && alnum[buf[j+1]] {
			j++
			continue
		}
		break
	}
	// A trailing dot ends the sentence, not the domain: j stops before it.
	if labels < 2 || lastLabel < 2 || !lastAlpha {
		return at + 1
	}
	r.add(IdxEmail, base+int64(s), func(dst []byte) int { return maskEmail(dst, buf[s:j], at-s) })
	return j
}

// maskEmail keeps the first character of the local part and the domain.
func maskEmail(dst, src []byte, at int) int {
	n := 0
	for k, c := range src {
		if n == len(dst) {
			break
		}
		if k > 0 && k < at {
			c = '*'
		}
		dst[n] = c
		n++
	}
	return n
}
