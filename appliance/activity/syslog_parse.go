package activity

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// SyslogMessage is an RFC 5424 message read back by ParseRFC5424. NILVALUE
// header fields are empty strings.
type SyslogMessage struct {
	Facility  Facility
	Severity  int
	Version   int
	Timestamp string
	Time      time.Time // parsed Timestamp; zero for NILVALUE
	Hostname  string
	AppName   string
	ProcID    string
	MsgID     string
	// SD maps each SD-ID to its parameters; a repeated parameter keeps its
	// last value.
	SD map[string]map[string]string
	// Msg is the MSG without the UTF-8 BOM, if it had one.
	Msg string
}

var errSyslog = errors.New("bad RFC 5424 message")

// ParseRFC5424 parses one RFC 5424 message (without transport framing). It
// checks the grammar strictly where a formatter bug would show (header
// characters and lengths, SD escapes, UTF-8 values) and never panics.
func ParseRFC5424(msg []byte) (*SyslogMessage, error) {
	p := &sdParser{s: string(msg)}
	m, err := p.message()
	if err != nil {
		return nil, fmt.Errorf("%w at byte %d: %v", errSyslog, p.i, err)
	}
	return m, nil
}

type sdParser struct {
	s string
	i int
}

func (p *sdParser) message() (*SyslogMessage, error) {
	m := &SyslogMessage{SD: map[string]map[string]string{}}
	if !p.eat('<') {
		return nil, errors.New("missing '<'")
	}
	pri, err := p.number(3)
	if err != nil || pri > 191 {
		return nil, fmt.Errorf("bad PRI")
	}
	m.Facility, m.Severity = Facility(pri/8), pri%8
	if !p.eat('>') {
		return nil, errors.New("missing '>'")
	}
	if m.Version, err = p.number(2); err != nil || m.Version == 0 {
		return nil, errors.New("bad VERSION")
	}
	fields := []struct {
		dst *string
		max int
	}{{&m.Timestamp, 32}, {&m.Hostname, maxHostname}, {&m.AppName, maxAppName}, {&m.ProcID, maxProcID}, {&m.MsgID, maxMsgID}}
	for _, f := range fields {
		if !p.eat(' ') {
			return nil, errors.New("missing SP")
		}
		if *f.dst, err = p.headerField(f.max); err != nil {
			return nil, err
		}
	}
	if m.Timestamp != "" {
		if m.Time, err = time.Parse(time.RFC3339Nano, m.Timestamp); err != nil {
			return nil, fmt.Errorf("bad TIMESTAMP: %v", err)
		}
	}
	if !p.eat(' ') {
		return nil, errors.New("missing SP before STRUCTURED-DATA")
	}
	if err := p.structuredData(m.SD); err != nil {
		return nil, err
	}
	if p.i == len(p.s) {
		return m, nil
	}
	if !p.eat(' ') {
		return nil, errors.New("missing SP before MSG")
	}
	m.Msg = strings.TrimPrefix(p.s[p.i:], utf8BOM)
	p.i = len(p.s)
	return m, nil
}

func (p *sdParser) eat(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// number reads 1..maxDigits decimal digits without a leading zero (except "0").
func (p *sdParser) number(maxDigits int) (int, error) {
	start := p.i
	for p.i < len(p.s) && p.i-start < maxDigits && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	d := p.s[start:p.i]
	if d == "" || (len(d) > 1 && d[0] == '0') {
		return 0, errors.New("bad number")
	}
	return strconv.Atoi(d)
}

// headerField reads 1..max PRINTUSASCII; "-" is NILVALUE and returns "".
func (p *sdParser) headerField(max int) (string, error) {
	start := p.i
	for p.i < len(p.s) && p.s[p.i] >= 33 && p.s[p.i] <= 126 {
		p.i++
	}
	f := p.s[start:p.i]
	switch {
	case f == "":
		return "", errors.New("empty header field")
	case len(f) > max:
		return "", fmt.Errorf("header field longer than %d", max)
	case f == "-":
		return "", nil
	}
	return f, nil
}

func (p *sdParser) structuredData(sd map[string]map[string]string) error {
	if p.eat('-') {
		return nil
	}
	if p.i >= len(p.s) || p.s[p.i] != '[' {
		return errors.New("missing STRUCTURED-DATA")
	}
	for p.eat('[') {
		id, err := p.sdName()
		if err != nil {
			return err
		}
		params := sd[id]
		if params == nil {
			params = map[string]string{}
			sd[id] = params
		}
		for p.eat(' ') {
			name, err := p.sdName()
			if err != nil {
				return err
			}
			if !p.eat('=') || !p.eat('"') {
				return errors.New(`missing '="'`)
			}
			v, err := p.sdValue()
			if err != nil {
				return err
			}
			params[name] = v
		}
		if !p.eat(']') {
			return errors.New("missing ']'")
		}
	}
	return nil
}

// sdName reads an SD-NAME: 1..32 PRINTUSASCII except '=', SP, ']' and '"'.
func (p *sdParser) sdName() (string, error) {
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c < 33 || c > 126 || c == '=' || c == ']' || c == '"' {
			break
		}
		p.i++
	}
	if n := p.i - start; n == 0 || n > 32 {
		return "", errors.New("bad SD-NAME")
	}
	return p.s[start:p.i], nil
}

// sdValue reads a PARAM-VALUE up to and including its closing '"'. Only
// '"', '\' and ']' are escapes; any other backslash is kept literally, as
// RFC 5424 §6.3.3 requires.
func (p *sdParser) sdValue() (string, error) {
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '"':
			v := b.String()
			if !utf8.ValidString(v) {
				return "", errors.New("PARAM-VALUE is not UTF-8")
			}
			return v, nil
		case c == '\\' && p.i < len(p.s) && (p.s[p.i] == '"' || p.s[p.i] == '\\' || p.s[p.i] == ']'):
			b.WriteByte(p.s[p.i])
			p.i++
		case c == ']':
			return "", errors.New("unescaped ']' in PARAM-VALUE")
		default:
			b.WriteByte(c)
		}
	}
	return "", errors.New("unterminated PARAM-VALUE")
}
