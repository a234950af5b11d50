package dlp

// ssnAt returns 3 when groups g, g+1, g+2 are a formatted US SSN
// (AAA-GG-SSSS, dash or space) that passes the SSA's rules, else 0.
// Unformatted nine-digit numbers are not reported: without context they are
// mostly order and phone numbers.
func ssnAt(buf []byte, run *digitRun, g int) int {
	if g+3 > run.n || (run.sep != '-' && run.sep != ' ') {
		return 0
	}
	if run.gl[g] != 3 || run.gl[g+1] != 2 || run.gl[g+2] != 4 {
		return 0
	}
	// A fourth group glued on makes it something else (a phone number, an id).
	if g+3 < run.n {
		return 0
	}
	a := num(buf[run.gs[g] : run.gs[g]+3])
	gr := num(buf[run.gs[g+1] : run.gs[g+1]+2])
	s := num(buf[run.gs[g+2] : run.gs[g+2]+4])
	if !validSSN(a, gr, s) {
		return 0
	}
	return 3
}

// validSSN applies the rules: area not 000, 666 or 900–999; group not 00;
// serial not 0000; and not one of the numbers published in advertising.
func validSSN(area, group, serial int) bool {
	if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
		return false
	}
	if area == 78 && group == 5 && serial == 1120 || area == 219 && group == 9 && serial == 9999 {
		return false
	}
	return true
}

func num(b []byte) int {
	n := 0
	for _, c := range b {
		n = n*10 + int(c-'0')
	}
	return n
}

// maskSSN keeps the last four digits: ***-**-6789.
func maskSSN(dst, src []byte) int {
	n := 0
	for i, c := range src {
		if n == len(dst) {
			break
		}
		if isDigit(c) && i < len(src)-4 {
			c = '*'
		}
		dst[n] = c
		n++
	}
	return n
}
