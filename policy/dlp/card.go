package dlp

// Digit runs: groups of digits joined by one consistent separator (space,
// dot or dash). Payment cards and SSNs are both read from such runs, so the
// run is parsed once and its groups offered to both validators.

const maxGroups = 8

type digitRun struct {
	start, end int // buf offsets of the whole run
	sep        byte
	n          int
	gs, gl     [maxGroups]int // group start, group length
}

// scanDigits parses the run starting at i (a digit at a word start), checks
// card and SSN patterns over its groups, and returns the offset after it.
func scanDigits(buf []byte, i int, base int64, r *Result) int {
	var run digitRun
	run.start = i
	j := i
	for {
		s := j
		for j < len(buf) && isDigit(buf[j]) && j-s < 20 {
			j++
		}
		run.gs[run.n], run.gl[run.n] = s, j-s
		run.n++
		if j-s >= 20 {
			// 20+ digits in a row is no card or SSN; skip the whole number.
			for j < len(buf) && isDigit(buf[j]) {
				j++
			}
			return skipAlnum(buf, j)
		}
		if run.n == maxGroups || j+1 >= len(buf) {
			break
		}
		c := buf[j]
		if (c != ' ' && c != '-' && c != '.') || !isDigit(buf[j+1]) || (run.sep != 0 && c != run.sep) {
			break
		}
		run.sep = c
		j++
	}
	run.end = j
	// A letter glued to the end ("4111...1111abc") makes it a token, not a number.
	if j < len(buf) && alnum[buf[j]] {
		return skipAlnum(buf, j)
	}
	matchRun(buf, &run, base, r)
	return j
}

func matchRun(buf []byte, run *digitRun, base int64, r *Result) {
	for g := 0; g < run.n; {
		if k := cardAt(buf, run, g); k > 0 {
			off := run.gs[g]
			end := run.gs[g+k-1] + run.gl[g+k-1]
			r.add(IdxCreditCard, base+int64(off), func(dst []byte) int { return maskCard(dst, buf[off:end]) })
			g += k
			continue
		}
		if k := ssnAt(buf, run, g); k > 0 {
			off := run.gs[g]
			end := run.gs[g+2] + run.gl[g+2]
			r.add(IdxUSSSN, base+int64(off), func(dst []byte) int { return maskSSN(dst, buf[off:end]) })
			g += k
			continue
		}
		g++
	}
}

// cardAt returns how many groups from g form a valid card number, or 0.
// Accepted layouts: one group of 13–19 digits; 4-4-4-… groups with a last
// group of 1–4 (13–19 digits); 4-6-5 (Amex) and 4-6-4 (Diners).
func cardAt(buf []byte, run *digitRun, g int) int {
	gl := run.gl[g:run.n]
	if gl[0] >= 13 && gl[0] <= 19 {
		if validCard(buf, run, g, 1) {
			return 1
		}
		return 0
	}
	if gl[0] != 4 || len(gl) < 3 {
		return 0
	}
	// The longest layout wins, so "4111 1111 1111 1111 123" is not cut to
	// 16 digits when the 19-digit reading is valid, and the shorter reading
	// is still tried when it is not.
	var cand [maxGroups]int
	nc := 0
	total := 4
	for k := 1; k < len(gl) && gl[k] <= 4; k++ {
		total += gl[k]
		if total > 19 {
			break
		}
		if total >= 13 {
			cand[nc] = k + 1
			nc++
		}
		if gl[k] != 4 {
			break
		}
	}
	for c := nc - 1; c >= 0; c-- {
		if validCard(buf, run, g, cand[c]) {
			return cand[c]
		}
	}
	if gl[1] == 6 && (gl[2] == 5 || gl[2] == 4) && validCard(buf, run, g, 3) {
		return 3
	}
	return 0
}

// validCard gathers the digits of groups [g, g+k) and checks brand and Luhn.
func validCard(buf []byte, run *digitRun, g, k int) bool {
	var d [19]byte
	n := 0
	for x := g; x < g+k; x++ {
		for _, c := range buf[run.gs[x] : run.gs[x]+run.gl[x]] {
			if n == len(d) {
				return false
			}
			d[n] = c - '0'
			n++
		}
	}
	return cardBrand(d[:n]) != "" && luhn(d[:n])
}

// cardBrand names the brand whose prefix and length fit, or "".
func cardBrand(d []byte) string {
	n := len(d)
	p2 := int(d[0])*10 + int(d[1])
	p3 := p2*10 + int(d[2])
	p4 := p3*10 + int(d[3])
	p6 := p4*100 + int(d[4])*10 + int(d[5])
	switch {
	case d[0] == 4 && (n == 13 || n == 16 || n == 19):
		return "visa"
	case (p2 >= 51 && p2 <= 55 || p4 >= 2221 && p4 <= 2720) && n == 16:
		return "mastercard"
	case (p2 == 34 || p2 == 37) && n == 15:
		return "amex"
	case (p4 == 6011 || p3 >= 644 && p3 <= 649 || p2 == 65 || p6 >= 622126 && p6 <= 622925) && n >= 16 && n <= 19:
		return "discover"
	case p4 >= 3528 && p4 <= 3589 && n >= 16 && n <= 19:
		return "jcb"
	case (p3 >= 300 && p3 <= 305 || p2 == 36 || p2 == 38 || p2 == 39) && n >= 14 && n <= 19:
		return "diners"
	case p2 == 62 && n >= 16 && n <= 19:
		return "unionpay"
	case (p4 == 5018 || p4 == 5020 || p4 == 5038 || p4 == 5893 || p4 == 6304 || p4 == 6759 || p4 == 6761 || p4 == 6762 || p4 == 6763) && n >= 12 && n <= 19:
		return "maestro"
	}
	return ""
}

func luhn(d []byte) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i])
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

// maskCard keeps the separators and the last four digits.
func maskCard(dst, src []byte) int {
	digits := 0
	for _, c := range src {
		if isDigit(c) {
			digits++
		}
	}
	n, seen := 0, 0
	for _, c := range src {
		if n == len(dst) {
			break
		}
		if isDigit(c) {
			seen++
			if seen <= digits-4 {
				c = '*'
			}
		}
		dst[n] = c
		n++
	}
	return n
}
