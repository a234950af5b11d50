package dokuwiki

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/html"
)

// Helpers for driving a wiki with a plain HTTP client. base is the wiki's
// root URL ("https://wiki.lab/", or the same wiki behind a proxy); c must
// have a cookie jar. DokuWiki protects every state change with a form token
// (sectok) bound to the session, so each helper first loads the form the
// browser would, then posts it back.

// ErrLoginRejected means DokuWiki answered the login form without a
// session: wrong user or password.
var ErrLoginRejected = errors.New("dokuwiki: login rejected")

// Login signs in with DokuWiki's login form.
func Login(ctx context.Context, c *http.Client, base, user, password string) error {
	form, err := loadForm(ctx, c, base+"doku.php?id=start&do=login", "dw__login", false)
	if err != nil {
		return err
	}
	form.Set("u", user)
	form.Set("p", password)
	// A logged-in page offers the logout action; the login form again (with
	// status 403) means the credentials were refused.
	body, err := post(ctx, c, base+"doku.php", form)
	switch {
	case strings.Contains(body, `id="dw__login"`):
		return fmt.Errorf("%w for %q: %s", ErrLoginRejected, user, msgText(body))
	case err != nil:
		return err
	case !strings.Contains(body, "do=logout"):
		return fmt.Errorf("dokuwiki: login of %q answered a page without a logout link: %s", user, msgText(body))
	}
	return nil
}

// SavePage replaces the wiki text of page id (creating it) through the
// editor form, as the Save button does.
func SavePage(ctx context.Context, c *http.Client, base, id, text string) error {
	form, err := loadForm(ctx, c, base+"doku.php?id="+url.QueryEscape(id)+"&do=edit", "dw__editform", true)
	if err != nil {
		return err
	}
	form.Set("wikitext", text)
	form.Set("summary", "lab edit")
	form.Set("do[save]", "1")
	body, err := post(ctx, c, base+"doku.php", form)
	if err != nil {
		return err
	}
	if strings.Contains(body, `id="dw__editform"`) {
		return fmt.Errorf("dokuwiki: save of %q answered the editor again (token or lock refused): %.500s", id, msgText(body))
	}
	return nil
}

// RawPage returns the stored wiki text of page id (do=export_raw).
func RawPage(ctx context.Context, c *http.Client, base, id string) (string, error) {
	return get(ctx, c, base+"doku.php?id="+url.QueryEscape(id)+"&do=export_raw")
}

// MediaURL is where the original bytes of media id (e.g. "lab:file.png")
// are served.
func MediaURL(base, id string) string {
	return base + "lib/exe/fetch.php?media=" + url.QueryEscape(id)
}

// UploadMedia uploads data as media ns:name through DokuWiki's plain upload
// form (lib/exe/mediamanager.php, the form the media popup shows without
// JavaScript), overwriting an existing file of that name. It returns the
// stored media id.
func UploadMedia(ctx context.Context, c *http.Client, base, ns, name string, data []byte) (string, error) {
	form, err := loadForm(ctx, c, base+"lib/exe/mediamanager.php?ns="+url.QueryEscape(ns), "dw__upload", true)
	if err != nil {
		return "", err
	}
	form.Set("mediaid", name)
	form.Set("ow", "1")
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, vs := range form {
		for _, v := range vs {
			if err := mw.WriteField(k, v); err != nil {
				return "", err
			}
		}
	}
	fw, err := mw.CreateFormFile("upload", name)
	if err != nil {
		return "", err
	}
	if _, err := fw.Write(data); err != nil {
		return "", err
	}
	if err := mw.Close(); err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"lib/exe/mediamanager.php", &body)
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	page, err := do(c, req)
	if err != nil {
		return "", err
	}
	id := strings.Trim(ns, ":") + ":" + name
	if strings.Contains(page, `class="error"`) || !strings.Contains(page, `class="success"`) {
		return "", fmt.Errorf("dokuwiki: upload of %q refused: %s", id, msgText(page))
	}
	return id, nil
}

// DownloadMedia returns the stored bytes of media id.
func DownloadMedia(ctx context.Context, c *http.Client, base, id string) ([]byte, error) {
	s, err := get(ctx, c, MediaURL(base, id))
	return []byte(s), err
}

func get(ctx context.Context, c *http.Client, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	return do(c, req)
}

func post(ctx context.Context, c *http.Client, u string, form url.Values) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(c, req)
}

func do(c *http.Client, req *http.Request) (string, error) {
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("dokuwiki: %s %s: %w", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return "", fmt.Errorf("dokuwiki: read %s %s: %w", req.Method, req.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("dokuwiki: %s %s: status %d: %.300s", req.Method, req.URL, resp.StatusCode, msgText(string(body)))
	}
	return string(body), nil
}

// loadForm fetches page u and returns the fields of the form with the given
// id as the browser would submit them (inputs with their values, textareas,
// no buttons).
//
// DokuWiki leaves sectok empty for anonymous users (its CSRF check is for
// sessions of logged-in users), so only forms that need a login must carry
// one (needToken).
func loadForm(ctx context.Context, c *http.Client, u, formID string, needToken bool) (url.Values, error) {
	body, err := get(ctx, c, u)
	if err != nil {
		return nil, err
	}
	vals, ok := formFields(body, formID)
	if !ok {
		return nil, fmt.Errorf("dokuwiki: %s has no form %q (not allowed?): %.300s", u, formID, msgText(body))
	}
	if _, ok := vals["sectok"]; !ok || needToken && vals.Get("sectok") == "" {
		return nil, fmt.Errorf("dokuwiki: form %q on %s has no sectok", formID, u)
	}
	return vals, nil
}

func formFields(page, formID string) (url.Values, bool) {
	z := html.NewTokenizer(strings.NewReader(page))
	vals := url.Values{}
	inForm, found := false, false
	textarea := ""
	for {
		switch z.Next() {
		case html.ErrorToken:
			return vals, found
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			attr := func(k string) (string, bool) {
				for _, a := range tok.Attr {
					if a.Key == k {
						return a.Val, true
					}
				}
				return "", false
			}
			switch tok.Data {
			case "form":
				id, _ := attr("id")
				inForm = id == formID
				found = found || inForm
			case "input":
				if !inForm {
					continue
				}
				name, _ := attr("name")
				typ, _ := attr("type")
				if name == "" || typ == "submit" || typ == "button" || typ == "file" {
					continue
				}
				if typ == "checkbox" || typ == "radio" {
					if _, checked := attr("checked"); !checked {
						continue
					}
				}
				v, _ := attr("value")
				vals.Add(name, v)
			case "textarea":
				if inForm {
					textarea, _ = attr("name")
					vals.Set(textarea, "")
				}
			}
		case html.TextToken:
			if textarea != "" {
				vals.Set(textarea, vals.Get(textarea)+string(z.Text()))
			}
		case html.EndTagToken:
			tok := z.Token()
			switch tok.Data {
			case "form":
				inForm = false
			case "textarea":
				textarea = ""
			}
		}
	}
}

// msgText pulls DokuWiki's error/info messages out of a page, for errors.
func msgText(page string) string {
	var out []string
	for _, cls := range []string{`class="error"`, `class="notify"`, `class="info"`, `class="success"`} {
		if i := strings.Index(page, cls); i >= 0 {
			s := page[i+len(cls):]
			if j := strings.Index(s, "</div>"); j >= 0 {
				s = s[:j]
			}
			out = append(out, strings.TrimSpace(strings.TrimPrefix(s, ">")))
		}
	}
	if len(out) == 0 {
		return "no message"
	}
	return strings.Join(out, " | ")
}
