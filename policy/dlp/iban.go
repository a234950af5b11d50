package dlp

// ibanLengths is the IBAN length per country (SWIFT IBAN registry).
var ibanLengths = map[[2]byte]uint8{}

func init() {
	const table = "AD24AE23AL28AT20AZ28BA20BE16BG22BH22BI27BR29BY28CH21CR22CY28CZ24DE22DJ27DK18DO28EE20EG29ES24" +
		"FI18FK18FO18FR27GB22GE22GI23GL18GR27GT28HN28HR21HU28IE22IL23IQ23IS26IT27JO30KW30KZ20LB28LC32LI21" +
		"LT20LU20LV21LY25MC27MD24ME22MK19MN20MR27MT31MU30NI28NL18NO15OM23PK24PL28PS29PT25QA29RO24RS22RU33" +
		"SA24SC31SD18SE24SI19SK24SM27SO23ST25SV28TL23TN24TR26UA29VA22VG24XK20YE30"
	for i := 0; i+4 <= len(table); i += 4 {
		ibanLengths[[2]byte{table[i], table[i+1]}] = (table[i+2]-'0')*10 + table[i+3] - '0'
	}
}

// scanUpper handles an upper-case letter at a word start: an IBAN
// (CCkk + BBAN, optionally printed in groups of four) or a SWIFT/BIC code.
func scanUpper(buf []byte, i int, base int64, r *Result) int {
	// Both start with two capitals: a capitalised word ("The") is neither,
	// and is skipped without being measured.
	if i+1 < len(buf) && !isUpper(buf[i+1]) {
		return skipAlnum(buf, i+1)
	}
	if i+3 < len(buf) && isUpper(buf[i+1]) && isDigit(buf[i+2]) && isDigit(buf[i+3]) {
		if end, ok := matchIBAN(buf, i); ok {
			r.add(IdxIBAN, base+int64(i), func(dst []byte) int { return maskIBAN(dst, buf[i:end]) })
			return end
		}
	}
	if end, ok := matchSWIFT(buf, i); ok {
		r.add(IdxSWIFTBIC, base+int64(i), func(dst []byte) int { return maskSWIFT(dst, buf[i:end]) })
		return end
	}
	return skipAlnum(buf, i)
}

// matchIBAN reads the country's number of characters (upper-case letters and
// digits), allowing one space after every group of four, then checks mod 97.
func matchIBAN(buf []byte, i int) (int, bool) {
	want, ok := ibanLengths[[2]byte{buf[i], buf[i+1]}]
	if !ok {
		return 0, false
	}
	var chars [34]byte
	n, j := 0, i
	for n < int(want) && j < len(buf) {
		c := buf[j]
		switch {
		case isDigit(c) || isUpper(c):
			chars[n] = c
			n++
			j++
		case c == ' ' && n%4 == 0 && n > 0 && j+1 < len(buf) && alnum[buf[j+1]]:
			j++
		default:
			return 0, false
		}
	}
	if n != int(want) || (j < len(buf) && alnum[buf[j]]) {
		return 0, false
	}
	// Rearranged: BBAN then country and check digits; letters are 10..35.
	rem := 0
	for k := 0; k < n; k++ {
		c := chars[(k+4)%n]
		if isDigit(c) {
			rem = (rem*10 + int(c-'0')) % 97
		} else {
			rem = (rem*100 + int(c-'A'+10)) % 97
		}
	}
	return j, rem == 1
}

// maskIBAN keeps the country code and the last four characters.
func maskIBAN(dst, src []byte) int {
	alnums := 0
	for _, c := range src {
		if alnum[c] {
			alnums++
		}
	}
	n, seen := 0, 0
	for _, c := range src {
		if n == len(dst) {
			break
		}
		if alnum[c] {
			seen++
			if seen > 2 && seen <= alnums-4 {
				c = '*'
			}
		}
		dst[n] = c
		n++
	}
	return n
}
