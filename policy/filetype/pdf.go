package filetype

import (
	"bytes"
	"compress/zlib"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
)

// ExtractPDF writes the text of a PDF's content streams to w and returns
// the sensitivity labels of its metadata. Best effort, by design: it reads
// uncompressed and FlateDecode streams, shows the strings of the Tj, TJ, '
// and " operators as they are encoded (simple fonts; CID fonts come out as
// their codes), and finds MSIP_Label_* keys in the Info dictionary, XMP
// metadata and object streams. It does not build the object graph, so a
// damaged file still yields whatever text it holds.
func ExtractPDF(r io.ReaderAt, size int64, w io.Writer, lim Limits) (Info, error) {
	lim = lim.withDefaults()
	info := Info{Type: PDF}
	if size > lim.MaxInput {
		return info, fmt.Errorf("%w: %d bytes", ErrTooLarge, size)
	}
	data := make([]byte, size)
	if _, err := r.ReadAt(data, 0); err != nil && err != io.EOF {
		return info, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if !bytes.HasPrefix(data, []byte("%PDF-")) {
		return info, fmt.Errorf("%w: no %%PDF- header", ErrFormat)
	}
	pdfLabels(data, &info)
	left := lim.MaxUncompressed
	for off := 0; ; {
		k := bytes.Index(data[off:], []byte("stream"))
		if k < 0 {
			break
		}
		s := off + k
		off = s + 6
		if s >= 3 && string(data[s-3:s]) == "end" {
			continue
		}
		// The stream data starts after an EOL following the keyword.
		p := off
		if p < len(data) && data[p] == '\r' {
			p++
		}
		if p < len(data) && data[p] == '\n' {
			p++
		} else if p == off {
			continue
		}
		e := bytes.Index(data[p:], []byte("endstream"))
		if e < 0 {
			break
		}
		raw := data[p : p+e]
		off = p + e + 9
		dict := streamDict(data[:s])
		if bytes.Contains(dict, []byte("/Image")) || bytes.Contains(dict, []byte("/XRef")) || bytes.Contains(dict, []byte("/FontFile")) {
			continue
		}
		body := raw
		if bytes.Contains(dict, []byte("/Filter")) {
			if !bytes.Contains(dict, []byte("/FlateDecode")) || hasOtherFilter(dict) {
				continue
			}
			zr, err := zlib.NewReader(bytes.NewReader(raw))
			if err != nil {
				continue // a broken stream is skipped, the rest still counts
			}
			var out bytes.Buffer
			n, err := io.Copy(&out, io.LimitReader(zr, left+1))
			left -= n
			if left < 0 {
				return info, fmt.Errorf("%w: decompressed streams exceed %d bytes", ErrTooLarge, lim.MaxUncompressed)
			}
			if int64(len(raw)) > 0 && n/int64(len(raw)+1) > lim.MaxRatio*10 {
				return info, fmt.Errorf("%w: a stream expands %d times", ErrBomb, n/int64(len(raw)+1))
			}
			_ = err // truncated streams still give their text
			body = out.Bytes()
		}
		if bytes.Contains(dict, []byte("/ObjStm")) || bytes.Contains(dict, []byte("/Metadata")) {
			pdfLabels(body, &info)
			continue
		}
		if err := contentText(body, w); err != nil {
			return info, err
		}
	}
	return info, nil
}

// hasOtherFilter reports filters besides FlateDecode (DCT, JBIG2, LZW...):
// those streams are images or need decoders we do not carry.
func hasOtherFilter(dict []byte) bool {
	for _, f := range []string{"/DCTDecode", "/JBIG2Decode", "/JPXDecode", "/CCITTFaxDecode", "/LZWDecode", "/RunLengthDecode", "/ASCII85Decode", "/ASCIIHexDecode", "/Crypt"} {
		if bytes.Contains(dict, []byte(f)) {
			return true
		}
	}
	return false
}

// streamDict returns the dictionary text before a stream keyword: from the
// last "obj" (bounded to 4 KiB back).
func streamDict(before []byte) []byte {
	from := max(0, len(before)-4096)
	b := before[from:]
	if i := bytes.LastIndex(b, []byte("obj")); i >= 0 {
		return b[i:]
	}
	return b
}

// contentText interprets the text operators of a content stream.
func contentText(b []byte, w io.Writer) error {
	var last []byte // the most recent string operand
	var arr []byte  // strings of the current TJ array
	inArray := false
	var out bytes.Buffer
	flush := func() error {
		if out.Len() > 0 {
			_, err := w.Write(out.Bytes())
			out.Reset()
			return err
		}
		return nil
	}
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '(':
			s, n := literalString(b[i:])
			i += n
			if inArray {
				arr = append(arr, s...)
			} else {
				last = s
			}
		case c == '<' && i+1 < len(b) && b[i+1] != '<':
			j := bytes.IndexByte(b[i:], '>')
			if j < 0 {
				return flush()
			}
			s := hexString(b[i+1 : i+j])
			i += j + 1
			if inArray {
				arr = append(arr, s...)
			} else {
				last = s
			}
		case c == '[':
			inArray, arr = true, arr[:0]
			i++
		case c == ']':
			inArray = false
			i++
		case c == '%':
			for i < len(b) && b[i] != '\n' && b[i] != '\r' {
				i++
			}
		case c == '-' && inArray:
			// Large negative kerning in TJ is how PDFs write a space.
			j := i + 1
			for j < len(b) && (b[j] >= '0' && b[j] <= '9' || b[j] == '.') {
				j++
			}
			if j-i > 3 {
				arr = append(arr, ' ')
			}
			i = j
		case c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '\'' || c == '"' || c == '*':
			j := i
			for j < len(b) && (b[j] >= 'A' && b[j] <= 'Z' || b[j] >= 'a' && b[j] <= 'z' || b[j] == '*' || b[j] == '\'' || b[j] == '"') {
				j++
			}
			switch string(b[i:j]) {
			case "Tj":
				out.Write(last)
			case "'", "\"":
				out.WriteByte('\n')
				out.Write(last)
			case "TJ":
				out.Write(arr)
			case "Td", "TD", "T*", "Tm":
				out.WriteByte(' ')
			case "ET":
				out.WriteByte('\n')
			}
			i = j
			if out.Len() > 32<<10 {
				if err := flush(); err != nil {
					return err
				}
			}
		default:
			i++
		}
	}
	return flush()
}

// literalString decodes a PDF literal string starting at b[0] == '(' and
// returns it with the bytes consumed.
func literalString(b []byte) ([]byte, int) {
	var s []byte
	depth := 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch c {
		case '(':
			depth++
			if depth == 1 {
				continue
			}
		case ')':
			depth--
			if depth == 0 {
				return decodeText(s), i + 1
			}
		case '\\':
			if i+1 >= len(b) {
				return decodeText(s), len(b)
			}
			i++
			switch e := b[i]; e {
			case 'n':
				s = append(s, '\n')
			case 'r':
				s = append(s, '\r')
			case 't':
				s = append(s, '\t')
			case 'b':
				s = append(s, '\b')
			case 'f':
				s = append(s, '\f')
			case '\r', '\n':
				if e == '\r' && i+1 < len(b) && b[i+1] == '\n' {
					i++
				}
			default:
				if e >= '0' && e <= '7' {
					v, k := 0, 0
					for k < 3 && i+k < len(b) && b[i+k] >= '0' && b[i+k] <= '7' {
						v = v*8 + int(b[i+k]-'0')
						k++
					}
					i += k - 1
					s = append(s, byte(v))
				} else {
					s = append(s, e)
				}
			}
			continue
		}
		s = append(s, c)
	}
	return decodeText(s), len(b)
}

func hexString(h []byte) []byte {
	clean := make([]byte, 0, len(h))
	for _, c := range h {
		if c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' {
			clean = append(clean, c)
		}
	}
	if len(clean)%2 == 1 {
		clean = append(clean, '0')
	}
	out := make([]byte, len(clean)/2)
	hex.Decode(out, clean)
	return decodeText(out)
}

// decodeText turns UTF-16BE strings (with a BOM, as metadata uses) into
// UTF-8; anything else is returned as is.
func decodeText(s []byte) []byte {
	if len(s) >= 2 && s[0] == 0xfe && s[1] == 0xff {
		u := make([]uint16, 0, len(s)/2)
		for i := 2; i+1 < len(s); i += 2 {
			u = append(u, uint16(s[i])<<8|uint16(s[i+1]))
		}
		return []byte(string(utf16.Decode(u)))
	}
	return s
}

// pdfLabels finds MSIP_Label_<guid>_<Key> entries: as Info dictionary keys
// (/MSIP_Label_..._Name (Confidential)) or XMP elements
// (<pdfx:MSIP_Label_..._Name>Confidential</pdfx:...>).
func pdfLabels(b []byte, info *Info) {
	const key = "MSIP_Label_"
	for off := 0; ; {
		k := bytes.Index(b[off:], []byte(key))
		if k < 0 {
			return
		}
		s := off + k
		e := s + len(key)
		for e < len(b) && e-s < 128 && (isWord(b[e]) || b[e] == '-' || b[e] == '{' || b[e] == '}') {
			e++
		}
		name := string(b[s:e])
		off = e
		// The value: skip blanks, then a literal, hex or XML text value.
		v := e
		for v < len(b) && (b[v] == ' ' || b[v] == '\r' || b[v] == '\n' || b[v] == '\t') {
			v++
		}
		if v >= len(b) {
			return
		}
		var value []byte
		switch b[v] {
		case '(':
			value, _ = literalString(b[v:min(len(b), v+1024)])
		case '<':
			j := bytes.IndexByte(b[v:min(len(b), v+2048)], '>')
			if j > 0 {
				value = hexString(b[v+1 : v+j])
			}
		case '>':
			j := bytes.IndexByte(b[v:min(len(b), v+1024)], '<')
			if j > 0 {
				value = b[v+1 : v+j]
			}
		case '=':
			// XMP attribute form: pdfx:MSIP_Label_..._Name="Confidential"
			if v+1 < len(b) && (b[v+1] == '"' || b[v+1] == '\'') {
				q := b[v+1]
				j := bytes.IndexByte(b[v+2:min(len(b), v+1024)], q)
				if j >= 0 {
					value = b[v+2 : v+2+j]
				}
			}
		}
		setLabelProp(info, name, strings.TrimSpace(string(value)))
	}
}

func isWord(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}
