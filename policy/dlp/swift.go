package dlp

// countryCodes holds the ISO 3166-1 alpha-2 codes a BIC's country part must be.
var countryCodes = func() (t [26 * 26]bool) {
	const codes = "ADAEAFAGAIALAMAOAQARASATAUAWAXAZBABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZCACCCDCFCGCHCICKCLCMCNCOCRCUCVCWCXCYCZ" +
		"DEDJDKDMDODZECEEEGEHERESETFIFJFKFMFOFRGAGBGDGEGFGGGHGIGLGMGNGPGQGRGSGTGUGWGYHKHMHNHRHTHUIDIEILIMINIOIQIRISITJEJMJOJP" +
		"KEKGKHKIKMKNKPKRKWKYKZLALBLCLILKLRLSLTLULVLYMAMCMDMEMFMGMHMKMLMMMNMOMPMQMRMSMTMUMVMWMXMYMZNANCNENFNGNINLNONPNRNUNZ" +
		"OMPAPEPFPGPHPKPLPMPNPRPSPTPWPYQARERORSRURWSASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZTCTDTFTGTHTJTKTLTMTNTOTRTTTVTWTZ" +
		"UAUGUMUSUYUZVAVCVEVGVIVNVUWFWSXKYEYTZAZMZW"
	for i := 0; i+2 <= len(codes); i += 2 {
		t[int(codes[i]-'A')*26+int(codes[i+1]-'A')] = true
	}
	return t
}()

// matchSWIFT recognises a BIC: 4 letters (bank), 2 letters (ISO country),
// 2 letters or digits (location), optionally 3 more (branch), as a whole
// word. All-caps English words have the same shape ("BUSINESS" is BUSI-NE-SS,
// NE being Niger), so a bare 8-letter word also needs "swift" or "bic"
// within the lookBehind window; 11-character codes and codes whose location
// has a digit are distinctive enough alone.
func matchSWIFT(buf []byte, i int) (int, bool) {
	j := i
	for j < len(buf) && alnum[buf[j]] && j-i <= 11 {
		j++
	}
	n := j - i
	if n != 8 && n != 11 {
		return 0, false
	}
	w := buf[i:j]
	for k := 0; k < 6; k++ {
		if !isUpper(w[k]) {
			return 0, false
		}
	}
	digits := false
	for k := 6; k < n; k++ {
		if isDigit(w[k]) {
			digits = true
		} else if !isUpper(w[k]) {
			return 0, false
		}
	}
	if !countryCodes[int(w[4]-'A')*26+int(w[5]-'A')] {
		return 0, false
	}
	if n == 8 && !digits && !keywordBefore(buf, i) {
		return 0, false
	}
	return j, true
}

// keywordBefore looks for "swift" or "bic" (any case) in the lookBehind
// bytes before i.
func keywordBefore(buf []byte, i int) bool {
	from := max(0, i-lookBehind)
	for k := from; k < i; k++ {
		c := buf[k] | 0x20
		if c == 's' && k+5 <= i && eqFold(buf[k:k+5], "swift") {
			return true
		}
		if c == 'b' && k+3 <= i && eqFold(buf[k:k+3], "bic") {
			return true
		}
	}
	return false
}

func eqFold(b []byte, lower string) bool {
	for k := range b {
		c := b[k]
		if c-'A' < 26 {
			c |= 0x20
		}
		if c != lower[k] {
			return false
		}
	}
	return true
}

// maskSWIFT keeps bank and country, masks location and branch.
func maskSWIFT(dst, src []byte) int {
	n := copy(dst, src)
	for k := 6; k < n; k++ {
		dst[k] = '*'
	}
	return n
}
