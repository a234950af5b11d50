package dokuwiki

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-gw/portcullis/internal/lab"
)

// wikiLab is a client namespace and an origin namespace running a wiki.
type wikiLab struct {
	client, origin *lab.NS
	ca             *lab.TestCA
	wiki           *Wiki
}

func newWikiLab(t *testing.T) *wikiLab {
	t.Helper()
	lab.RequireRoot(t)
	l := &wikiLab{client: lab.NewNS(t, "wc"), origin: lab.NewNS(t, "wo")}
	lab.Veth(t, l.client, "eth0", l.origin, "eth0")
	l.client.IP("addr", "add", "198.18.6.1/24", "dev", "eth0", "nodad")
	l.origin.IP("addr", "add", "198.18.6.2/24", "dev", "eth0", "nodad")
	originAddr := netip.MustParseAddr("198.18.6.2")
	l.client.SetHosts(map[string]netip.Addr{"wiki.lab": originAddr})

	var err error
	if l.ca, err = lab.NewTestCA("dokuwiki test CA"); err != nil {
		t.Fatal(err)
	}
	leaf, err := l.ca.Leaf(lab.LeafOptions{Names: []string{"wiki.lab"}})
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := encodeLeaf(leaf)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	l.wiki = Start(t, Config{NS: l.origin, Addr: originAddr, Name: "wiki.lab", Cert: certPEM, Key: keyPEM})
	t.Logf("dokuwiki ready in %v", time.Since(start).Round(time.Millisecond))
	return l
}

// TestWikiHTTPClient logs in and edits a page with a plain HTTP client,
// using DokuWiki's own forms and tokens.
func TestWikiHTTPClient(t *testing.T) {
	l := newWikiLab(t)
	w := l.wiki
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	anon := w.Client()
	if err := SavePage(ctx, anon, w.URL, "lab:anon", "vandalism"); err == nil {
		t.Error("an anonymous client saved a page; the ACL allows only reading")
	}
	if err := Login(ctx, w.Client(), w.URL, w.AdminUser, "wrong-"+w.AdminPassword); !errors.Is(err, ErrLoginRejected) {
		t.Errorf("login with a wrong password: err = %v, want ErrLoginRejected", err)
	}

	c := w.Client()
	if err := Login(ctx, c, w.URL, w.AdminUser, w.AdminPassword); err != nil {
		t.Fatal(err)
	}
	text := "====== Edited over HTTP ======\n\nmarker " + randHex(6) + " with **bold** text\n"
	if err := SavePage(ctx, c, w.URL, "lab:gotest", text); err != nil {
		t.Fatal(err)
	}
	got, err := RawPage(ctx, anon, w.URL, "lab:gotest")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(got) != strings.TrimSpace(text) {
		t.Errorf("raw page after save = %q, want %q", got, text)
	}
	stored, err := os.ReadFile(filepath.Join(w.DataDir, "pages", "lab", "gotest.txt"))
	if err != nil || strings.TrimSpace(string(stored)) != strings.TrimSpace(text) {
		t.Errorf("page file in the private savedir: %q, %v", stored, err)
	}
	if _, err := os.Stat("/var/lib/dokuwiki/data/pages/lab/gotest.txt"); err == nil {
		t.Error("the page landed in the host's /var/lib/dokuwiki: the instance is not private")
	}
	// A second save of the same page (new editor form, new lock) works too.
	if err := SavePage(ctx, c, w.URL, "lab:gotest", text+"\nsecond revision\n"); err != nil {
		t.Errorf("second save: %v", err)
	}

	img := testPNG(t)
	if _, err := UploadMedia(ctx, anon, w.URL, "lab", "anon.png", img); err == nil {
		t.Error("an anonymous client uploaded a file; the ACL allows only reading")
	}
	id, err := UploadMedia(ctx, c, w.URL, "lab", "gotest.png", img)
	if err != nil {
		t.Fatal(err)
	}
	got2, err := DownloadMedia(ctx, anon, w.URL, id)
	if err != nil || !bytes.Equal(got2, img) {
		t.Errorf("download of %s: %d bytes, %v; want the %d uploaded bytes", id, len(got2), err, len(img))
	}
	if _, err := DownloadMedia(ctx, anon, w.URL, "lab:missing.png"); err == nil {
		t.Error("download of a missing media file succeeded")
	}
}

// testPNG is a deterministic 48x48 noise image: real PNG (DokuWiki checks
// images), incompressible enough to make the byte comparison mean something.
func testPNG(t testing.TB) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 48, 48))
	r := rand.New(rand.NewPCG(1, 2))
	for y := range 48 {
		for x := range 48 {
			img.Set(x, y, color.NRGBA{uint8(r.UintN(256)), uint8(r.UintN(256)), uint8(r.UintN(256)), 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestWikiCleanupStopsDaemons checks that the end of a test leaves no nginx
// or php-fpm process (master or worker) behind in the namespace.
func TestWikiCleanupStopsDaemons(t *testing.T) {
	lab.RequireRoot(t)
	origin := lab.NewNS(t, "wk")
	origin.IP("addr", "add", "198.18.7.2/32", "dev", "lo")
	ca, err := lab.NewTestCA("cleanup CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Leaf(lab.LeafOptions{Names: []string{"wiki.lab"}})
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := encodeLeaf(leaf)
	if err != nil {
		t.Fatal(err)
	}
	var dir string
	t.Run("run", func(t *testing.T) {
		w := Start(t, Config{NS: origin, Addr: netip.MustParseAddr("198.18.7.2"), Name: "wiki.lab", Cert: certPEM, Key: keyPEM})
		dir = w.Dir
		if pids := nsPIDs(t, origin); len(pids) < 3 {
			t.Errorf("expected nginx and php-fpm masters and workers in %s, found pids %v", origin.Name, pids)
		}
	})
	if pids := nsPIDs(t, origin); len(pids) != 0 {
		t.Errorf("processes left in %s after the test: %v", origin.Name, pids)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("instance directory %s not removed: %v", dir, err)
	}
}

// encodeLeaf writes a lab leaf as nginx reads it: the certificate chain
// (leaf first, then the CA) and the PKCS#8 private key, both PEM.
func encodeLeaf(c tls.Certificate) (certPEM, keyPEM []byte, err error) {
	for _, der := range c.Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return nil, nil, fmt.Errorf("encode leaf key: %w", err)
	}
	return certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func nsPIDs(t *testing.T, ns *lab.NS) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "pids", ns.Name).Output()
	if err != nil {
		t.Fatalf("ip netns pids %s: %v", ns.Name, err)
	}
	return strings.Fields(string(out))
}

// TestWikiStartFailsClearly occupies the wiki's port first: nginx cannot
// bind, and Start must fail the test at once, naming nginx, instead of
// waiting for its whole ready timeout.
func TestWikiStartFailsClearly(t *testing.T) {
	lab.RequireRoot(t)
	origin := lab.NewNS(t, "wf")
	origin.IP("addr", "add", "198.18.7.3/32", "dev", "lo")
	squatter, err := origin.Listen("tcp", "198.18.7.3:443")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { squatter.Close() })
	ca, err := lab.NewTestCA("failure CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Leaf(lab.LeafOptions{Names: []string{"wiki.lab"}})
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := encodeLeaf(leaf)
	if err != nil {
		t.Fatal(err)
	}

	rec := &fatalRecorder{TB: t}
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(rec, Config{NS: origin, Addr: netip.MustParseAddr("198.18.7.3"), Name: "wiki.lab",
			Cert: certPEM, Key: keyPEM, ReadyTimeout: 15 * time.Second})
	}()
	<-done
	took := time.Since(start)
	t.Logf("Start failed after %v", took.Round(time.Millisecond))
	switch {
	case rec.fatal == "":
		t.Fatal("Start succeeded on a port another socket holds")
	case !strings.Contains(rec.fatal, "nginx exited during start") || !strings.Contains(rec.fatal, "Address already in use"):
		t.Errorf("Start failed with %q; want it to say nginx exited, and why (from nginx's log)", rec.fatal)
	case took > 10*time.Second:
		t.Errorf("Start took %v to notice nginx had exited", took)
	}
}

// fatalRecorder is a testing.TB whose Fatal ends only the calling goroutine
// and keeps the message; cleanups still belong to the real test.
type fatalRecorder struct {
	testing.TB
	fatal string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatal(args ...any) {
	r.fatal = fmt.Sprint(args...)
	runtime.Goexit()
}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
