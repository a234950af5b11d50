package control

import (
	"fmt"

	"github.com/portcullis-gw/portcullis/policy"
)

// Mode is what the control script does about one kind of activity.
type Mode uint8

const (
	Allow   Mode = iota // nothing: the script does not watch it
	Monitor             // let it happen, report it
	Block               // stop it, show the message, report it
)

var modeNames = [...]string{"allow", "monitor", "block"}

func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("mode(%d)", m)
}

// ModeFor maps the session decision for a print, cut_copy or paste
// activity to a Mode. Every action stronger than monitor stops the activity:
// the script cannot protect or step up a clipboard write, and the policy
// compiler refuses such policies anyway, so the safe reading is block.
func ModeFor(a policy.Action) Mode {
	switch {
	case a == policy.ActionMonitor:
		return Monitor
	case a > policy.ActionMonitor:
		return Block
	}
	return Allow
}

// Rules are the controls of one page.
type Rules struct {
	Print, CutCopy, Paste Mode
	// Message is the admin's text: the banner shown when an activity is
	// blocked, and what a blocked print renders instead of the page. Empty
	// means DefaultMessage.
	Message string
}

// DefaultMessage is shown when the policy gives no message.
const DefaultMessage = "This action is blocked by your organization's security policy."

// maxMessage bounds the message carried in pages and notice links; longer
// text is cut at a character boundary.
const maxMessage = 1024

// active reports whether the script has anything to do.
func (r Rules) active() bool { return r.Print != Allow || r.CutCopy != Allow || r.Paste != Allow }

// clamped reads a mode beyond Block as Block: an unknown mode fails closed.
func (r Rules) clamped() Rules {
	r.Print, r.CutCopy, r.Paste = min(r.Print, Block), min(r.CutCopy, Block), min(r.Paste, Block)
	return r
}

func (r Rules) anyBlock() bool { return r.Print == Block || r.CutCopy == Block || r.Paste == Block }

func (r Rules) message() string {
	if r.Message == "" {
		return DefaultMessage
	}
	return truncate(r.Message, maxMessage)
}

// mode returns the rule for a reported kind, Allow for kinds the script
// never reports.
func (r Rules) mode(k policy.ActivityKind) Mode {
	switch k {
	case policy.KindPrint:
		return r.Print
	case policy.KindCutCopy:
		return r.CutCopy
	case policy.KindPaste:
		return r.Paste
	}
	return Allow
}

// packed and unpack put the three modes in one byte, for the report token.
func (r Rules) packed() byte { return byte(r.Print) | byte(r.CutCopy)<<2 | byte(r.Paste)<<4 }

func unpack(b byte) Rules {
	return Rules{Print: Mode(b & 3), CutCopy: Mode(b >> 2 & 3), Paste: Mode(b >> 4 & 3)}
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}
